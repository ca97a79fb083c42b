import { afterAll, describe, expect, it } from 'vitest'
import type { NodeProcess } from '../helpers/node-process.js'
import { readOffline } from '../helpers/offline-store.js'
import { waitFor } from '../helpers/wait.js'
import { Cluster, firstDifference, scanAll, statusOf, WriteLoad, waitCaughtUp } from './cluster.js'

/**
 * A tree of depth 2: master M, replicas R1 and R2 of M, and S, a replica of
 * R1. 20,000 writes (put, del and batch on a shared key space, so order
 * matters) from concurrent SDK clients while the tree streams.
 */
describe('replication tree: master + 2 replicas + 1 sub-replica', () => {
  const cluster = new Cluster()
  afterAll(() => cluster.teardown())

  let master: NodeProcess
  let r1: NodeProcess
  let r2: NodeProcess
  let sub: NodeProcess

  it('streams 20,000 concurrent writes down the tree', async () => {
    ;({ master, r1, r2, sub } = await cluster.startTree())

    const load = await new WriteLoad([master.address], {
      clients: 8,
      inFlight: 4,
      total: 20_000,
      keySpace: 3000,
    }).start()
    await load.done()
    await load.stop()
    expect(load.failed).toBe(0)
    expect(load.acked).toBe(20_000)

    const head = await waitCaughtUp(master, [r1, r2, sub])
    // Every write is one log entry: 20,000 of them after the master's first epoch.
    expect(head).toBe(20_000)
    const [m, s1, s2, ss] = await Promise.all([master, r1, r2, sub].map(statusOf))
    // The sub-replica serves the same stream: same seq, same epoch history.
    for (const s of [s1, s2, ss]) {
      expect(s.role).toBe('replica')
      expect(s.history).toEqual(m.history)
      expect(s.link?.state).toBe('streaming')
    }
    expect(ss.upstream).toBe(r1.address)
    // A master lists each direct replica with its acked seq and lag.
    const listed = m.replicas.map((r: { addr: string }) => r.addr).sort()
    expect(listed).toEqual([r1.address, r2.address].sort())
    await waitFor(
      async () => (await statusOf(master)).replicas.every((r) => r.ackedSeq === head && r.lagEntries === 0),
      {
        what: 'both replicas to ack the head',
      },
    )
  })

  it('every node holds exactly the master’s data (full scans)', async () => {
    // Rule: a replica applies every entry, in seq order, once.
    const scans = await Promise.all([master, r1, r2, sub].map((n) => scanAll(n.address)))
    expect(scans[0].size).toBeGreaterThan(1000)
    for (const scan of scans.slice(1)) expect(firstDifference(scan, scans[0])).toBeNull()
  })

  it('every node’s log is the same sequence of entries, byte for byte', async () => {
    // Rule: a replica keeps the upstream's seqs and entries untouched, so a
    // tree of any depth holds one log.
    await Promise.all([sub, r1, r2, master].map((n) => n.stop()))
    const logs = []
    for (const n of [master, r1, r2, sub]) logs.push(await readOffline(n.dataDir))
    const [m, ...others] = logs
    expect(m.lastSeq).toBe(20_000)
    expect(m.logSeqs).toEqual(Array.from({ length: 20_000 }, (_, i) => i + 1))
    for (const log of others) {
      expect(log.lastSeq).toBe(m.lastSeq)
      expect(log.logSeqs).toEqual(m.logSeqs)
      const differing = log.raws.findIndex((raw, i) => !raw.equals(m.raws[i]))
      expect(differing).toBe(-1)
    }
  })
})
