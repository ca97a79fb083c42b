import { TandemClient, TandemError } from '@tandem/client'
import { afterEach, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { respPortOf } from '../resp/helpers.js'
import { command, RawResp } from '../resp/raw.js'
import { FailoverGroup, statusOf } from './group.js'

/** The code a call failed with, or 'ok:<value>' when it did not fail. */
async function outcome(call: Promise<unknown>): Promise<string> {
  try {
    return `ok:${String(await call)}`
  } catch (err) {
    return err instanceof TandemError ? err.code : String(err)
  }
}

describe('reads under a partition', () => {
  let group: FailoverGroup
  const direct: TandemClient[] = []
  const opened: RawResp[] = []
  afterEach(async () => {
    for (const r of opened.splice(0)) r.close()
    await Promise.all(direct.splice(0).map((c) => c.close()))
    await group.teardown()
  })

  it('a master cut off from its group shows no write a majority lacks, and serves lease and linearizable reads only while it holds its lease', async () => {
    // The read index: a linearizable read is answered only once a majority
    // holds every write it could see, by a master that holds its lease as
    // it replies; so the cut-off master's own write is never shown, and
    // once its lease lapses it answers NOMASTER (a new master may exist).
    // A long lease (2.8 s) leaves room for the write and the read below to land within it.
    group = await new FailoverGroup().start({
      size: 3,
      args: ['--failover-timeout', '4000', '--heartbeat-interval', '100', '--resp-port', '0'],
    })
    const master = await group.waitForMaster()
    const m = group.index(master)
    const resp = await RawResp.open(respPortOf(master))
    opened.push(resp)
    const db = await group.client({ timeoutMs: 15_000 })
    await db.put('k', 'before', { w: 'majority' })
    await db.put('other', 'o', { w: 'majority' })
    const old = await TandemClient.connect({ servers: [master.address], direct: true, timeoutMs: 15_000 })
    direct.push(old)
    expect(await old.get('k', { consistency: 'linearizable' })).toBe('before')

    group.isolate(m)
    // Taken by the master alone (w: 0) while its lease still holds.
    await old.put('k', 'dirty')
    // A get depends only on the write that last changed its key: 'other'
    // was confirmed by a majority (which the master remembers after the
    // replication links drop), and while the lease holds no other master
    // can have taken a write, so the read is answered at once although the
    // later write to 'k' is held by no majority.
    expect(await old.get('other', { consistency: 'linearizable' })).toBe('o')
    expect(await old.get('k', { consistency: 'local' })).toBe('dirty')
    // Both wait for a majority that never answers, then fail as the lease
    // lapses; so does a Redis GET, which gets the default consistency.
    const [explicit, byDefault, redisGet] = await Promise.all([
      outcome(old.get('k', { consistency: 'linearizable' })),
      outcome(old.get('k')),
      respReply(resp, 'GET', 'k'),
    ])
    expect(explicit).toBe('NOMASTER')
    expect(byDefault).toBe('NOMASTER')
    expect(redisGet).toMatch(/^-NOMASTER /)
    await waitFor(async () => (await statusOf(master)).failover?.lease.held === false, {
      what: 'the old master to see its lease lapse',
    })
    expect(await outcome(old.get('k', { consistency: 'lease' }))).toBe('NOMASTER')
    expect(await outcome(old.mget(['k'], { consistency: 'linearizable' }))).toBe('NOMASTER')
    expect(await outcome(collect(old.scan({ consistency: 'lease' })))).toBe('NOMASTER')
    // local is what it always was: the node's own data, whatever its state.
    expect(await old.get('k', { consistency: 'local' })).toBe('dirty')

    // The SDK (which knew the old master) finds the new one and reads what a majority holds.
    await group.waitForMaster(
      group.nodes.filter((_, i) => i !== m),
      'the majority side to elect a master',
    )
    expect(await db.get('k')).toBe('before')
    expect(await db.get('k', { consistency: 'lease' })).toBe('before')
    expect(await db.mget(['k'])).toEqual(['before'])
    expect(await collect(db.scan({ prefix: 'k' }))).toBe('k=before')

    group.healAll()
    await waitFor(
      async () => {
        const s = await statusOf(master)
        return s.role === 'replica' && s.link?.state === 'streaming'
      },
      { what: 'the old master to follow the new one' },
    )
    // What it showed to local reads only is in its rollback file.
    const rolledBack = group.rollbackEntries(m).flatMap((e) => e.ops.map((op) => `${op.key}=${String(op.value)}`))
    expect(rolledBack).toContain('k=dirty')
    // A replica refuses lease and linearizable reads, naming the master; local ones it serves.
    expect(await outcome(old.get('k', { consistency: 'linearizable' }))).toBe('READONLY')
    expect(await old.get('k', { consistency: 'local' })).toBe('before')
    // A Redis GET on a replica is a local read, as readFrom 'replica' asks.
    expect(await respReply(resp, 'GET', 'k')).toBe('$6\r\nbefore\r\n')
  })

  it('--min-replicas: a master that has not heard its replicas for --max-lag takes no write, even after a quiet spell', async () => {
    // A replica cut off while nothing is written lacks no entry, so its lag
    // in entries says nothing: it is judged by when it was last heard. The
    // lease (2.8 s here) would stop writes only much later.
    group = await new FailoverGroup().start({
      size: 3,
      args: ['--failover-timeout', '4000', '--min-replicas', '2', '--max-lag', '600'],
    })
    const master = await group.waitForMaster()
    const old = await TandemClient.connect({ servers: [master.address], direct: true, timeoutMs: 5000 })
    direct.push(old)
    await waitFor(async () => (await statusOf(master)).replicas.filter((r) => r.link === 'streaming').length === 2, {
      what: 'both replicas to stream',
    })
    // A replica's lag can pass 600 ms on a loaded machine: a refused first write is retried.
    await waitFor(async () => (await outcome(old.put('a', '1'))).startsWith('ok:'), {
      what: 'a first write to be taken',
    })

    // Packets dropped, connections kept: nothing but silence tells the master.
    group.isolate(group.index(master), 'stall')
    await waitFor(
      async () => {
        const s = await statusOf(master)
        return s.replicas.length === 2 && s.replicas.every((r) => (r.lastHeardMsAgo ?? 0) > 600)
      },
      { what: 'the master to go 600 ms without hearing either replica', intervalMs: 10 },
    )
    expect((await statusOf(master)).failover?.lease.held).toBe(true)
    expect(await outcome(old.put('a', '2'))).toBe('NOREPLICAS')
    expect(await old.get('a', { consistency: 'local' })).toBe('1')
  })
})

async function collect(scan: AsyncGenerator<[string, unknown]>): Promise<string> {
  const out: string[] = []
  for await (const [k, v] of scan) out.push(`${k}=${String(v)}`)
  return out.join(',')
}

/** Sends one Redis command on `conn` and returns its whole reply (a simple one: error or bulk string). */
async function respReply(conn: RawResp, ...args: string[]): Promise<string> {
  conn.received.length = 0
  await conn.write(command(...args))
  const text = await conn.until((t) => /^(-[^\r]*|\$-1|\$\d+\r\n[^\r]*)\r\n/.test(t), 15_000, `a reply to ${args[0]}`)
  return text
}
