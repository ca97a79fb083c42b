import { TandemClient, TandemError, type WatchEvent } from '@tandem/client'
import { decodeFrame, encodeFrame } from '@tandem/protocol'
import { afterAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { type NodeProcess, startNode } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'

/** Takes `n` events from a watch (failing after `timeoutMs`). */
async function take(watch: AsyncIterator<WatchEvent>, n: number, timeoutMs = 20_000): Promise<WatchEvent[]> {
  const out: WatchEvent[] = []
  const deadline = Date.now() + timeoutMs
  while (out.length < n) {
    const left = deadline - Date.now()
    let timer: NodeJS.Timeout | undefined
    const next = await Promise.race([
      watch.next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`only ${out.length} of ${n} events in ${timeoutMs} ms`)), left)
      }),
    ]).finally(() => clearTimeout(timer))
    if (next.done) break
    out.push(next.value)
  }
  return out
}

/** An event as [seq, type, key, value]: a binary value as `bin:HEX`, a delete's as null. */
const brief = (e: WatchEvent) => [
  e.seq,
  e.type,
  e.key,
  e.value === undefined ? null : typeof e.value === 'string' ? e.value : `bin:${Buffer.from(e.value).toString('hex')}`,
]

describe('watch (change feed) on one node and its replica', () => {
  const dirs: { path: string; remove(): void }[] = []
  const nodes: NodeProcess[] = []
  const clients: TandemClient[] = []
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()))
    await Promise.all(nodes.map((n) => n.stop()))
    for (const d of dirs) d.remove()
  })
  const node = async (args: string[] = []) => {
    const dir = tempDir('tandem-watch-')
    dirs.push(dir)
    const n = await startNode(dir.path, args)
    nodes.push(n)
    return n
  }
  const client = async (servers: string[], options: { direct?: boolean } = {}) => {
    const db = await TandemClient.connect({ servers, ...options })
    clients.push(db)
    return db
  }

  it('delivers puts and deletes in log order, filtered by key or prefix, a batch under one seq', async () => {
    const master = await node()
    const db = await client([master.address])
    await db.put('a:1', 'one')
    const all = db.watch({ fromSeq: 1 })
    const prefixed = db.watch({ prefix: 'a:', fromSeq: 1 })
    const single = db.watch({ key: 'b', fromSeq: 1 })
    // From now on only: starts after the node's head when the watch begins.
    const fromNow = db.watch({})
    await waitFor(() => fromNow.seq !== null, { what: 'the watch from now to start' })
    const bytes = new Uint8Array([0, 1, 255])
    await db.put('b', bytes)
    await db.batch([
      { type: 'put', key: 'a:2', value: 'two' },
      { type: 'del', key: 'a:1' },
      { type: 'put', key: 'c', value: 'three' },
    ])
    await db.del('b')
    expect((await take(all, 5)).map(brief)).toEqual([
      [1, 'put', 'a:1', 'one'],
      [2, 'put', 'b', 'bin:0001ff'],
      [3, 'put', 'a:2', 'two'],
      [3, 'del', 'a:1', null],
      [3, 'put', 'c', 'three'],
    ])
    expect((await take(all, 1)).map(brief)).toEqual([[4, 'del', 'b', null]])
    expect((await take(prefixed, 3)).map(brief)).toEqual([
      [1, 'put', 'a:1', 'one'],
      [3, 'put', 'a:2', 'two'],
      [3, 'del', 'a:1', null],
    ])
    expect((await take(single, 2)).map(brief)).toEqual([
      [2, 'put', 'b', 'bin:0001ff'],
      [4, 'del', 'b', null],
    ])
    expect((await take(fromNow, 1))[0].seq).toBe(2)
    // A binary value comes back binary, a string a string.
    const [, second] = await take(db.watch({ fromSeq: 1 }), 2)
    expect(second.value).toBeInstanceOf(Uint8Array)
    // Position: every event up to seq 4 was received.
    await waitFor(() => all.seq === 4, { what: 'the watch position to reach 4' })
    for (const w of [all, prefixed, single, fromNow]) w.close()
    // A closed watch ends its iterator.
    expect(await all.next()).toEqual({ value: undefined, done: true })
  })

  it('answers TRIMMED, naming the oldest seq, for a seq the log no longer holds', async () => {
    const master = await node(['--log-retention', '10', '--log-trim-interval', '50'])
    const db = await client([master.address])
    for (let i = 0; i < 60; i++) await db.put(`k${i}`, String(i))
    const status = await waitFor(
      async () => {
        const s = await db.status()
        return (s.logStart as number) > 20 ? s : null
      },
      { what: 'the log to be trimmed' },
    )
    const err = await db
      .watch({ fromSeq: 1 })
      .next()
      .then(
        () => null,
        (e: unknown) => e,
      )
    expect(err).toBeInstanceOf(TandemError)
    expect((err as TandemError).code).toBe('TRIMMED')
    expect((err as TandemError).details.oldestSeq).toBeGreaterThanOrEqual(status.logStart as number)
    // From the oldest seq it names, the watch works. The trimmer runs every
    // 50 ms until 10 entries are left, so the log may have moved on again
    // by the time the watch starts: then it names a later oldest seq, never
    // an earlier one, and one of these tries finds the log settled.
    let from = (err as TandemError).details.oldestSeq as number
    for (let attempt = 0; ; attempt++) {
      const watched = await take(db.watch({ fromSeq: from }), 60 - from + 1).catch((e: unknown) => e)
      if (!(watched instanceof TandemError) || watched.code !== 'TRIMMED' || attempt === 20) {
        expect(watched).toEqual(
          Array.from({ length: 60 - from + 1 }, (_, i) => expect.objectContaining({ seq: from + i })),
        )
        break
      }
      expect(watched.details.oldestSeq as number).toBeGreaterThan(from)
      from = watched.details.oldestSeq as number
    }
  })

  it('tells a watcher that cannot keep up that it fell behind, after every event up to there, with none skipped', async () => {
    const master = await node(['--log-retention', '500', '--log-trim-interval', '50'])
    const db = await client([master.address])
    // The watcher takes nothing while 64 MiB is written: its buffer fills, the
    // node stops reading the log for it, and the log is trimmed past it.
    const watch = db.watch({ fromSeq: 1, maxBuffered: 50 })
    await waitFor(() => watch.seq !== null, { what: 'the watch to start' })
    const value = 'x'.repeat(16 * 1024)
    const writes = 4000
    let next = 0
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next < writes) {
          const i = next++
          await db.put(`k${i}`, value)
        }
      }),
    )
    await waitFor(async () => ((await db.status()).logStart as number) > 2000, { what: 'the log to be trimmed' })
    const seqs: number[] = []
    let failure: unknown = null
    try {
      for await (const event of watch) seqs.push(event.seq)
    } catch (err) {
      failure = err
    }
    expect((failure as TandemError)?.code).toBe('TRIMMED')
    // Every event before the error, in order from seq 1, none skipped, and
    // far fewer than were written: the rest was never read for it.
    expect(seqs.length).toBeGreaterThan(0)
    expect(seqs.length).toBeLessThan(writes)
    const last = seqs[seqs.length - 1]
    expect(seqs).toEqual(Array.from({ length: last }, (_, i) => i + 1))
    expect((failure as TandemError).details.oldestSeq).toBeGreaterThan(last + 1)
  })

  it('serves a watch on a replica, which follows the master through its log', async () => {
    const master = await node()
    const replica = await node(['--replicaof', master.address])
    const db = await client([master.address])
    const onReplica = await client([replica.address], { direct: true })
    const watch = onReplica.watch({ prefix: 'r', fromSeq: 1 })
    for (let i = 0; i < 20; i++) await db.put(`r${i}`, String(i))
    const events = await take(watch, 20)
    expect(events.map((e) => [e.seq, e.key])).toEqual(Array.from({ length: 20 }, (_, i) => [i + 1, `r${i}`]))
    watch.close()
  })

  it('refuses bad watch requests with a clear code, and needs the token with --auth-token', async () => {
    const master = await node(['--auth-token', 'sesame'])
    const refused = await client([master.address]).catch((e: unknown) => e)
    expect((refused as TandemError).code).toBe('UNAUTHORIZED')
    const db = await TandemClient.connect({ servers: [master.address], authToken: 'sesame' })
    clients.push(db)
    const both = await db
      .watch({ key: 'a', prefix: 'b' })
      .next()
      .catch((e: unknown) => e)
    expect((both as TandemError).code).toBe('INVALID')
    // A raw socket without the token is refused at the upgrade.
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`ws://${master.address}/watch`)
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
      ws.on('open', () => resolve(101))
    })
    expect(status).toBe(401)
    // A request on a raw socket: the first reply, and how the socket closed
    // (the client closes it, 1005, after a reply that is not an error).
    const ask = (request: Record<string, unknown>) =>
      new Promise<{ reply: unknown; closed: number }>((resolve) => {
        const ws = new WebSocket(`ws://${master.address}/watch`, { headers: { authorization: 'Bearer sesame' } })
        let reply: unknown = null
        ws.on('open', () => ws.send(encodeFrame(request)))
        ws.on('message', (data) => {
          reply ??= decodeFrame(data as Buffer)
          if ((reply as { type?: string }).type !== 'error') ws.close()
        })
        ws.on('close', (code) => resolve({ reply, closed: code }))
      })
    // A malformed request gets INVALID, and the socket is closed.
    expect(await ask({ type: 'watch', fromSeq: -3 })).toMatchObject({
      reply: { type: 'error', error: { code: 'INVALID' } },
      closed: 1000,
    })
    // A resume from a position this master's log does not hold: ROLLEDBACK, naming the last seq they share.
    await db.put('x', '1')
    await db.put('y', '2')
    const epoch = (await db.status()).epoch
    expect(await ask({ type: 'watch', fromSeq: 6, after: { seq: 5, epoch } })).toMatchObject({
      reply: { type: 'error', error: { code: 'ROLLEDBACK', seq: 2 } },
    })
    expect(await ask({ type: 'watch', fromSeq: 2, after: { seq: 1, epoch: epoch + 7 } })).toMatchObject({
      reply: { type: 'error', error: { code: 'ROLLEDBACK', seq: 0 } },
    })
    // The same position with the right epoch resumes: the first message says where the watch is.
    expect(await ask({ type: 'watch', fromSeq: 2, after: { seq: 1, epoch } }).then((r) => r.reply)).toMatchObject({
      type: 'progress',
      to: 1,
      epoch,
    })
  })
})
