import { afterAll, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { FailoverGroup, scanAll, statusOf, WriteLoad } from './group.js'

describe('automatic fail-over after the master is killed', () => {
  const group = new FailoverGroup()
  afterAll(() => group.teardown())

  it('elects a new master, clients carry on, no acknowledged write is lost, the old master rejoins', async () => {
    // Rules: a majority elects a member whose log is at least as recent as
    // its voters' (so every w:'majority' write is on it); clients re-route
    // on their own; a returning master rolls back its divergent tail into a
    // rollback file and converges.
    await group.start({ size: 3 })
    const master = await group.waitForMaster()
    const oldIndex = group.index(master)
    const clients = await Promise.all([0, 1, 2, 3].map(() => group.client()))
    const load = new WriteLoad(
      clients.map((db) => ({ db, node: -1 })),
      { w: 'majority', timeoutMs: 2000 },
    ).start()
    await waitFor(() => load.acked.length >= 400, { what: '400 acknowledged writes' })

    await master.kill('SIGKILL')
    const killedAt = Date.now()
    const others = group.nodes.filter((n) => n !== master)
    const newMaster = await group.waitForMaster(others, 'a new master among the survivors')
    // Every client carries on by itself: each gets new acknowledgements.
    await waitFor(() => clients.every((_, i) => load.ackedBy(i, killedAt) >= 50), {
      what: 'every client to have 50 writes acknowledged after the kill',
    })
    await load.stop()
    const firstAfter = Math.min(...load.acked.filter((r) => r.ackedAt > killedAt).map((r) => r.ackedAt))
    console.log(
      `kill-master: first acknowledged write ${firstAfter - killedAt} ms after SIGKILL; ` +
        `${load.acked.length} acknowledged, ${load.uncertain.length} uncertain, errors ${JSON.stringify([...load.errors])}`,
    )

    // Every acknowledged write is on the new master (fresh keys; hot keys are overwritten).
    const onNew = await scanAll(newMaster.address)
    const missing = load.acked.filter((r) => r.key.startsWith('u:') && onNew.get(r.key) !== r.value)
    expect(missing.map((r) => r.key)).toEqual([])

    // The old master comes back as a replica, rolls back what it alone had, and converges.
    await master.start()
    const rejoined = await waitFor(
      async () => {
        const s = await statusOf(master)
        return s.role === 'replica' && s.link?.state === 'streaming' ? s : null
      },
      { what: 'the old master to follow the new one' },
    )
    const data = await group.waitConverged()
    const after = await statusOf(master)
    const rolledBack = group.rollbackEntries(oldIndex)
    console.log(
      `kill-master: old master rolled back ${after.rollbacks.entries} entries in ${after.rollbacks.count} file(s)`,
    )
    expect(after.rollbacks.entries).toBe(rolledBack.length)
    if (after.rollbacks.count > 0) expect(after.rollbacks.lastFile).toMatch(/rollback-.*\.jsonl$/)
    for (const r of load.acked) if (r.key.startsWith('u:')) expect(data.get(r.key)).toBe(r.value)
    expect(rejoined.failover?.master.nodeId).toBe((await statusOf(newMaster)).nodeId)
    expect(group.epochsWithTwoMasters()).toEqual([])
  })
})
