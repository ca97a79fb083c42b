import { createLogger, loadConfig, TandemServer } from '@tandem/server'
import { afterEach, describe, expect, it } from 'vitest'
import { PrometheusText } from '../helpers/prometheus.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'
import { command, RawResp } from '../resp/raw.js'
import { RawClient } from '../single-node/raw-client.js'

/**
 * Rule: a throw in a client connection's work that runs with nothing above
 * it (the tick that flushes its replies, the callback of a request's
 * promise) closes that connection alone, logged and counted in
 * tandem_handler_errors_total; it is never an uncaught exception or an
 * unhandled rejection, which would end the node with every connection.
 *
 * No input is known to make these throw, so the faults are injected into a
 * real server in this process (HTTP and RESP ports on 127.0.0.1, port 0,
 * LevelDB on disk): the request-latency histogram both flushes observe
 * into throws once, or the node's read answers a value that cannot be
 * encoded, or fails with an error that cannot be read.
 */
describe('a throw in a connection’s flush tick or promise callback', () => {
  const cleanups: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })

  async function start() {
    const escaped: unknown[] = []
    const onEscaped = (err: unknown) => escaped.push(err)
    process.on('unhandledRejection', onEscaped)
    process.on('uncaughtException', onEscaped)
    cleanups.push(() => {
      process.off('unhandledRejection', onEscaped)
      process.off('uncaughtException', onEscaped)
    })
    const dir = tempDir('tandem-conn-guard-')
    cleanups.push(() => dir.remove())
    const lines: Record<string, unknown>[] = []
    const logger = createLogger({
      level: 'error',
      format: 'json',
      write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>),
    })
    const server = await TandemServer.start(
      loadConfig(['--port', '0', '--resp-port', '0', '--data-dir', dir.path], {}),
      logger,
    )
    cleanups.push(() => server.close())
    const address = `127.0.0.1:${server.port}`
    const respPort = server.resp?.respPort as number
    // The histogram every reply is timed into when its connection flushes (WebSocket API and RESP).
    const latency = (server as unknown as { latency: { observe: (op: string, seconds: number) => void } }).latency
    const failNextObserve = () => {
      latency.observe = () => {
        delete (latency as { observe?: unknown }).observe
        throw new Error('injected: the flush failed')
      }
    }
    const handlerErrors = async (link: string) => {
      const text = await (await fetch(`http://${address}/metrics`)).text()
      return new PrometheusText(text).value('tandem_handler_errors_total', { link }) ?? 0
    }
    const logged = (link: string) =>
      lines.filter((l) => l.msg === 'a connection handler threw; that connection is closed' && l.link === link).length
    return { server, address, respPort, escaped, failNextObserve, handlerErrors, logged }
  }

  it('closes that WebSocket client with 1011 and serves the others', async () => {
    const t = await start()
    const bystander = await RawClient.open(t.address)
    expect((await bystander.request({ id: 1, op: 'put', key: 'k', value: 'v' })).result).toBeDefined()
    const before = await t.handlerErrors('client')

    // The flush tick: the reply goes out, timing it throws.
    const flushed = await RawClient.open(t.address)
    t.failNextObserve()
    flushed.send({ id: 1, op: 'ping' })
    expect((await flushed.closed(30_000)).code).toBe(1011)

    // A request's promise settles with a result that cannot be encoded (its reply is made in the callback).
    const settled = await RawClient.open(t.address)
    const node = t.server.node as unknown as { getMeta: (key: string) => Promise<unknown> }
    const getMeta = node.getMeta
    node.getMeta = async () => ({
      get value(): unknown {
        throw new Error('injected: the result cannot be encoded')
      },
      seq: 1,
    })
    settled.send({ id: 1, op: 'get', key: 'k', meta: true })
    expect((await settled.closed(30_000)).code).toBe(1011)
    node.getMeta = getMeta

    expect((await bystander.request({ id: 2, op: 'get', key: 'k' })).result).toBe('v')
    expect((await bystander.request({ id: 3, op: 'get', key: 'k', meta: true })).result).toMatchObject({ value: 'v' })
    expect(
      await waitFor(async () => (await t.handlerErrors('client')) - before === 2 || undefined, {
        what: 'both throws counted',
      }),
    ).toBe(true)
    expect(t.logged('client')).toBe(2)
    expect(t.escaped).toEqual([])
    bystander.terminate()
  })

  it('closes that RESP client with an error and serves the others', async () => {
    const t = await start()
    const bystander = await RawResp.open(t.respPort)
    cleanups.push(() => bystander.close())
    await bystander.write(command('SET', 'k', 'v'))
    await bystander.until((text) => text === '+OK\r\n')
    const before = await t.handlerErrors('resp')

    // The flush tick: timing the reply throws before it is written.
    const flushed = await RawResp.open(t.respPort)
    cleanups.push(() => flushed.close())
    t.failNextObserve()
    await flushed.write(command('PING'))
    await flushed.closedByServer(30_000)
    expect(flushed.text).toBe('-ERR internal error; closing the connection\r\n')

    // A command's promise fails with an error whose message cannot be read (its reply is made in the callback).
    const settled = await RawResp.open(t.respPort)
    cleanups.push(() => settled.close())
    // DEL reads the key, then deletes it in a batch: the batch fails.
    const node = t.server.node as unknown as { batch: (...args: unknown[]) => Promise<unknown> }
    const batch = node.batch
    node.batch = async () => {
      throw {
        get message(): string {
          throw new Error('injected: the error cannot be read')
        },
      }
    }
    await settled.write(command('DEL', 'k'))
    await settled.closedByServer(30_000)
    expect(settled.text).toBe('-ERR internal error; closing the connection\r\n')
    node.batch = batch

    bystander.received.length = 0
    await bystander.write(command('GET', 'k'))
    await bystander.until((text) => text === '$1\r\nv\r\n')
    expect(
      await waitFor(async () => (await t.handlerErrors('resp')) - before === 2 || undefined, {
        what: 'both throws counted',
      }),
    ).toBe(true)
    expect(t.logged('resp')).toBe(2)
    expect(t.escaped).toEqual([])
  })
})
