import { afterEach, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { FailoverGroup, statusOf, WriteLoad } from './group.js'

describe('fail-over rules under partial partitions', () => {
  let group: FailoverGroup
  afterEach(() => group.teardown())

  it('a flapping link between the master and one replica does not depose the master', async () => {
    // Rule 3: a member votes only once it has itself lost the master, and a
    // member cut off alone cannot win; it must not disrupt the healthy
    // master either when the link comes back (it asks first whether it
    // could win, before raising its epoch).
    group = await new FailoverGroup().start({ size: 3 })
    const master = await group.waitForMaster()
    const m = group.index(master)
    const b = (m + 1) % 3
    const before = await statusOf(master)
    const db = await group.client()
    const load = new WriteLoad([{ db, node: -1 }], { w: 'majority' }).start()
    await waitFor(() => load.acked.length >= 50, { what: '50 writes' })

    group.cut(m, b)
    // Counted, not timed: the cut-off replica's election timer fires twice,
    // and each time it asks first whether it could win (or, were rule 3
    // broken, stands for a new epoch, which the checks below catch).
    await waitFor(
      async () => {
        const elections = (await statusOf(group.nodes[b])).failover?.elections
        return elections !== undefined && elections.preVotesLost + elections.started >= 2
      },
      { what: 'the cut-off replica to try for an election twice' },
    )
    // The master kept its lease through the other replica.
    const ackedWhileCut = load.acked.length
    await waitFor(() => load.acked.length >= ackedWhileCut + 20, { what: 'writes to go on while the link is cut' })
    group.healAll()
    const masterId = before.nodeId
    await waitFor(
      async () => {
        const s = await statusOf(group.nodes[b])
        return s.failover?.master.nodeId === masterId && s.link?.state === 'streaming'
      },
      { what: 'the replica to follow the master again' },
    )
    const acked = load.acked.length
    await waitFor(() => load.acked.length >= acked + 50, { what: 'writes to go on after healing' })
    await load.stop()
    const after = await statusOf(master)
    expect(after.role).toBe('master')
    expect(after.epoch).toBe(before.epoch)
    expect(master.logs.filter((l) => l.msg === 'stepping down: a newer epoch exists')).toEqual([])
  })

  it('a member that voted for a new master acknowledges no later write of the old one', async () => {
    // Rules 2 and 6: a w:'majority' write is acknowledged only when a
    // majority holds it, and every electable candidate holds it. A voter
    // that kept applying (and acking) the old master's stream after it
    // voted would break this: the candidate may lack entries that the
    // voter's ack then lets the old master acknowledge.
    //
    // Set-up, with M the master and A, B the replicas: A's stream from M is
    // 2 s late; B's is not. Then M's heartbeats to both and B's link to M
    // are cut (A still reaches M, so its acks do). M's lease lapses; B's log
    // is ahead of A's, so B wins with A's vote; B's first heartbeat reaches
    // A 2 x 220 ms later. Entries M committed after the cut reach A in that
    // gap: acking them would acknowledge writes B does not have.
    group = await new FailoverGroup().start({ size: 3 })
    const master = await group.waitForMaster()
    const m = group.index(master)
    const [a, b] = [0, 1, 2].filter((i) => i !== m)
    const firstEpoch = (await statusOf(master)).epoch
    const writers = await Promise.all(Array.from({ length: 24 }, () => group.client()))
    const load = new WriteLoad(
      writers.map((db) => ({ db, node: -1 })),
      { w: 'majority', timeoutMs: 4000 },
    ).start()
    group.proxies[a][m].delay(2050, 'fromTarget')
    group.proxies[a][b].delay(220)
    group.proxies[b][a].delay(220)
    await waitFor(() => load.acked.length >= 200, { what: '200 writes' })
    group.proxies[m][a].cut()
    group.proxies[m][b].cut()
    group.proxies[b][m].cut()
    const cutAt = Date.now()
    // Elected, not yet writable: with A 220 ms away, B's heartbeats cannot
    // renew the lease its votes gave it until the links are healed.
    const newMaster = await waitFor(
      async () => {
        for (const n of [group.nodes[a], group.nodes[b]]) {
          const s = await statusOf(n, { timeoutMs: 500 }).catch(() => null)
          if (s?.role === 'master' && s.epoch > firstEpoch) return n
        }
        return undefined
      },
      // With every vote 440 ms away the election can take several rounds on a busy machine.
      { what: 'a new master among the replicas', intervalMs: 50, timeoutMs: 60_000 },
    )
    group.healAll()
    for (const row of group.proxies) for (const p of row) p?.delay(0)
    const healedAt = Date.now()
    await waitFor(() => load.acked.filter((r) => r.sentAt > healedAt).length >= 50, {
      what: 'writes on the new master',
    }).catch(async (err) => {
      throw new Error(`${(err as Error).message}\n${await group.describe()}`)
    })
    await load.stop()
    const data = await group.waitConverged()
    const lost = load.acked.filter((r) => r.key.startsWith('u:') && data.get(r.key) !== r.value)
    console.log(
      `rules: ${load.acked.length} w:majority writes acknowledged, ${load.uncertain.length} uncertain, ${lost.length} lost ` +
        `(acknowledged at ${lost.map((r) => r.ackedAt - cutAt).join(', ')} ms after the cut); new master ${group.index(newMaster)} (B is ${b})`,
    )
    expect(lost.map((r) => r.key)).toEqual([])
  })

  it("counts only the group's members towards a w:'majority' write", async () => {
    // Rules 1 and 2 rest on this: a w:'majority' write is on a majority of
    // the voters. A replica outside the group (a read replica following the
    // master) can ack, but no election asks it, so its ack must not count.
    group = await new FailoverGroup().start({ size: 3 })
    const master = await group.waitForMaster()
    const m = group.index(master)
    const outsider = await group.extraReplica(master.address)
    const direct = await group.client({ servers: [master.address], direct: true })
    // Waits for both members to stream from the master just elected.
    await direct.put('warm', 'up', { w: 'majority', timeoutMs: 15_000 })
    await waitFor(async () => (await statusOf(master)).replicas.length === 3, { what: 'three replicas streaming' })
    // The members' replication links to the master (and their requests to
    // it) are cut; its heartbeats still reach them, so it keeps its lease.
    for (let i = 0; i < 3; i++) if (i !== m) group.proxies[i][m].cut()
    await waitFor(async () => (await statusOf(master)).replicas.length === 1, {
      what: 'only the outsider to be streaming',
    })
    const outcome = await direct.put('only-outsider', 'x', { w: 'majority', timeoutMs: 1500 }).then(
      () => 'ACKNOWLEDGED',
      (err: { code?: string }) => err.code,
    )
    expect(outcome).toBe('TIMEOUT')
    // The outsider did get the write (its ack was there, and did not count).
    const head = (await statusOf(master)).seq
    await waitFor(async () => (await statusOf(outsider)).seq === head, { what: 'the outsider to hold the write' })
    group.healAll()
  })
})
