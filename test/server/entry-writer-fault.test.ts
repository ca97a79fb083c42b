import { createLogger, loadConfig, TandemServer } from '@tandem/server'
import { afterEach, describe, expect, it } from 'vitest'
import { PrometheusText } from '../helpers/prometheus.js'
import { tempDir } from '../helpers/temp-dir.js'

/** The byteLength every Uint8Array has, read past an own property that shadows it. */
const byteLengthOf = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype), 'byteLength')
  ?.get as (this: Uint8Array) => number

/**
 * Rule: a throw inside the hand-written log-entry writer (a bug in it) costs
 * that entry its hand-written encoding, not the write: msgpackr writes it,
 * the writer starts over, and the throw is logged and counted in
 * tandem_entry_writer_faults_total; the node goes on taking writes.
 *
 * No input is known to make the writer throw, so the fault is injected into
 * a real server in this process (LevelDB on disk): a put's value whose
 * byteLength throws once, when the writer reads it (writeBytes of the
 * generic writer, or writePutEntry, which writes a plain put's entry in
 * place in its log block).
 */
describe('a throw inside the log-entry writer', () => {
  const cleanups: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })

  it('is logged and counted, the write succeeds, and the node goes on taking writes', async () => {
    const dir = tempDir('tandem-writer-fault-')
    cleanups.push(() => dir.remove())
    const lines: Record<string, unknown>[] = []
    const logger = createLogger({
      level: 'error',
      format: 'json',
      write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>),
    })
    const server = await TandemServer.start(loadConfig(['--port', '0', '--data-dir', dir.path], {}), logger)
    cleanups.push(() => server.close())
    const faults = async () => {
      const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text()
      return new PrometheusText(text).value('tandem_entry_writer_faults_total', {})
    }
    const before = await faults()
    expect(before).toBeTypeOf('number')

    const value = new Uint8Array([1, 2, 3, 250])
    let thrown = 0
    Object.defineProperty(value, 'byteLength', {
      get(this: Uint8Array) {
        if (thrown === 0 && /writeBytes|writePutEntry/.test(new Error().stack ?? '')) {
          thrown++
          throw new Error('injected: the entry writer failed')
        }
        return byteLengthOf.call(this)
      },
    })
    const node = server.node as unknown as {
      put: (key: string, value: unknown, options: object) => Promise<unknown>
      get: (key: string) => Promise<unknown>
    }
    await node.put('faulty', value, {})
    expect(thrown).toBe(1)
    expect(Buffer.from((await node.get('faulty')) as Uint8Array)).toEqual(Buffer.from([1, 2, 3, 250]))
    for (let i = 0; i < 3; i++) await node.put(`after${i}`, `v${i}`, {})
    expect(await node.get('after2')).toBe('v2')

    expect(await faults()).toBe((before as number) + 1)
    const logged = lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('the log entry writer threw'))
    expect(logged).toHaveLength(1)
    expect(String(logged[0].stack)).toMatch(/injected: the entry writer failed/)
  })
})
