import { setImmediate as nextTurn } from 'node:timers/promises'
import { TandemClient, TandemError } from '@tandem/client'
import { afterEach, describe, expect, it } from 'vitest'
import { type NodeProcess, startNode } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'
import { RawClient } from './raw-client.js'

/**
 * Replies are bounded the way requests are: no frame over
 * --max-frame-bytes leaves the node (replies are split across frames, and
 * one that alone would not fit is TOOLARGE naming the limit), and a
 * connection holds at most its reply budget of reply bytes (counted as
 * they are built, with reads reserved before they run), whatever its
 * client does. The node reports what it held (status `clients`).
 */

const KiB = 1024
const MiB = 1024 * KiB
const FRAME = 8 * MiB

interface Clients {
  connections: number
  replyBytes: number
  peakReplyBytes: number
  partialFrameBytes: number
  peakPartialFrameBytes: number
}

async function clientsOf(node: NodeProcess): Promise<Clients> {
  const status = (await (await fetch(`http://${node.address}/status`)).json()) as { clients: Clients }
  return status.clients
}

async function metric(node: NodeProcess, sample: string): Promise<number> {
  const text = await (await fetch(`http://${node.address}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `))
  return line === undefined ? 0 : Number(line.slice(sample.length + 1))
}

describe('reply bounds', () => {
  const cleanups: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })

  async function setup(args: string[] = []): Promise<{ node: NodeProcess; db: TandemClient }> {
    const dir = tempDir()
    cleanups.push(() => dir.remove())
    const node = await startNode(dir.path, args)
    cleanups.push(() => node.stop())
    // Frames of several MiB keep a node busy for seconds on a loaded
    // machine: a liveness drop there would fail a write UNCERTAIN, which
    // says nothing about reply bounds.
    const db = await TandemClient.connect({ servers: [node.address], livenessTimeoutMs: 10_000, timeoutMs: 60_000 })
    cleanups.push(() => db.close())
    return { node, db }
  }

  async function raw(node: NodeProcess): Promise<RawClient> {
    const client = await RawClient.open(node.address)
    cleanups.push(() => client.terminate())
    return client
  }

  it('an mget whose values sum past the frame limit fails with TOOLARGE naming it; one that fits is answered', async () => {
    const { node, db } = await setup()
    const big = 'M'.repeat(MiB)
    await db.put('M', big)

    const client = await raw(node)
    const reply = await client.request({ id: 1, op: 'mget', keys: Array(40).fill('M') })
    expect(reply.error?.code).toBe('TOOLARGE')
    expect(reply.error?.message).toContain(`--max-frame-bytes ${FRAME}`)
    for (const size of client.frameSizes) expect(size).toBeLessThanOrEqual(FRAME)

    // Through the SDK: TOOLARGE, and the connection stays up for the next call.
    const err = await db.mget(Array(20).fill('M')).then(
      () => null,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(TandemError)
    expect((err as TandemError).code).toBe('TOOLARGE')
    const seven = await db.mget(Array(7).fill('M'))
    expect(seven).toHaveLength(7)
    for (const v of seven) expect(v).toBe(big)

    const clients = await clientsOf(node)
    expect(clients.peakReplyBytes).toBeLessThanOrEqual(FRAME + 64 * KiB)
  })

  it('pipelined gets of large values leave in frames under --max-frame-bytes, every reply whole', async () => {
    const { node, db } = await setup()
    const value = Buffer.alloc(MiB, 7)
    await db.put('M', value)
    const client = await raw(node)
    client.send(Array.from({ length: 30 }, (_, i) => ({ id: i, op: 'get', key: 'M' })))
    await client.until(() => client.replies.size === 30, '30 replies', 30_000)
    for (let i = 0; i < 30; i++) expect(Buffer.compare(client.replies.get(i)?.result as Buffer, value)).toBe(0)
    expect(client.frameSizes.length).toBeGreaterThanOrEqual(4)
    for (const size of client.frameSizes) expect(size).toBeLessThanOrEqual(FRAME)
  })

  it('a client that pipelines gets of large values and never reads gets a bounded number run; the node holds at most its reply budget', async () => {
    // Rule: reply bytes are counted as they are built and reads reserve
    // their reply before they run, so a connection's reply bytes stay under
    // --max-reply-buffer-bytes and the node stops reading its requests.
    const budget = MiB
    const valueBytes = 256 * KiB
    const { node, db } = await setup(['--max-reply-buffer-bytes', String(budget), '--max-in-flight', '256'])
    await db.put('big', 'v'.repeat(valueBytes))
    const before = await metric(node, 'tandem_requests_total{op="get"}')

    const flood = await raw(node)
    flood.tcp.pause()
    let sent = 0
    // Until 4 MiB of requests sit unsent in the client: the node has stopped reading it.
    while (flood.ws.bufferedAmount < 4 * MiB) {
      flood.send(Array.from({ length: 500 }, (_, i) => ({ id: sent + i, op: 'get', key: 'big' })))
      sent += 500
      await nextTurn()
      expect(sent, 'the node kept reading a client that does not read').toBeLessThan(2_000_000)
    }
    // Another client is served meanwhile.
    await db.put('other', 'x')
    expect(await db.get('other')).toBe('x')

    // Replies that can be anywhere: the budget, and the two kernel socket buffers.
    const kernelBytes = (await sysctlMax('net/ipv4/tcp_wmem')) + (await sysctlMax('net/ipv4/tcp_rmem'))
    const maxTaken = Math.ceil((budget + kernelBytes) / valueBytes) + 2
    const taken = (await metric(node, 'tandem_requests_total{op="get"}')) - before - 1
    expect(taken, `took ${taken} of ${sent} gets; at most ${maxTaken} fit`).toBeLessThanOrEqual(maxTaken)
    const clients = await clientsOf(node)
    expect(clients.peakReplyBytes, 'reply bytes one connection held').toBeLessThanOrEqual(budget + 64 * KiB)

    // Once it reads, its replies arrive whole, in frames under the limit.
    // Not necessarily in id order: a get read synchronously can overtake one
    // waiting for a getMany (every reply carries its request's id).
    flood.tcp.resume()
    const first100 = () => Array.from({ length: 100 }, (_, id) => id).every((id) => flood.replies.has(id))
    await flood.until(first100, 'the replies to ids 0..99', 60_000)
    for (let id = 0; id < 100; id++) expect(String(flood.replies.get(id)?.result).length).toBe(valueBytes)
    for (const size of flood.frameSizes) expect(size).toBeLessThanOrEqual(FRAME)
    flood.terminate()
    await waitFor(async () => (await clientsOf(node)).connections === 1, { what: 'the flood connection to go' })
    expect((await clientsOf(node)).peakReplyBytes).toBeLessThanOrEqual(budget + 64 * KiB)
  })

  it('the SDK reads replies as large as a node configured with a larger --max-frame-bytes sends', async () => {
    const { node } = await setup(['--max-frame-bytes', String(32 * MiB), '--max-value-bytes', String(17 * MiB)])
    // (No liveness check: a loaded machine may take seconds over a 17 MiB write.)
    const db = await TandemClient.connect({
      servers: [node.address],
      maxFrameBytes: 32 * MiB,
      livenessTimeoutMs: 0,
      timeoutMs: 60_000,
    })
    cleanups.push(() => db.close())
    const value = Buffer.alloc(17 * MiB, 3)
    await db.put('huge', value)
    const got = await db.get('huge')
    expect(Buffer.compare(Buffer.from(got as Uint8Array), value)).toBe(0)
  })

  it('the SDK splits calls made together across frames, and refuses one request over its frame limit with TOOLARGE', async () => {
    const { db } = await setup()
    const value = 'p'.repeat(MiB - 100)
    // 12 puts of ~1 MiB made together: more than one frame's worth.
    const seqs = await Promise.all(Array.from({ length: 12 }, (_, i) => db.put(`p${i}`, value)))
    expect(seqs).toHaveLength(12)
    expect(await db.get('p11')).toBe(value)
    const err = await db
      .batch(Array.from({ length: 9 }, (_, i) => ({ type: 'put' as const, key: `b${i}`, value })))
      .then(
        () => null,
        (e: unknown) => e,
      )
    expect((err as TandemError).code).toBe('TOOLARGE')
    expect(await db.get('b0')).toBeUndefined()
    await db.put('after', 'ok')
  })
})

/** The maximum of a `min default max` sysctl triple, in bytes. */
async function sysctlMax(name: string): Promise<number> {
  const { readFile } = await import('node:fs/promises')
  const text = await readFile(`/proc/sys/${name}`, 'utf8')
  return Number(text.trim().split(/\s+/).pop())
}
