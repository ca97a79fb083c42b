import { afterEach, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { PeerGroup } from './peers.js'

/**
 * Rules 1 and 2 of the multi-master notes: a delete is a write (a tombstone
 * with its version), and a tombstone is collected only once causally
 * stable, never on a timer: while one peer is cut off, a put it took from
 * before the delete (by the clocks) must still find the tombstone when it
 * arrives, or the key would come back.
 */
const groups: PeerGroup[] = []
afterEach(async () => {
  await Promise.all(groups.splice(0).map((g) => g.teardown()))
})

describe('tombstones under last-writer-wins', () => {
  it('are kept while a peer is cut off, so its older put loses when it arrives; collected once stable', async () => {
    const group = new PeerGroup()
    groups.push(group)
    // Node 2's clock runs 300 ms behind (within --max-clock-offset): its puts stamp older.
    await group.start({ size: 3, conflict: 'lww', clockOffsetOf: (i) => (i === 2 ? -300 : 0) })
    const a = await group.client(0)
    const c = await group.client(2)
    await a.put('k', 'v1')
    await group.waitConverged()

    group.isolate(2)
    // The cut-off peer's put is taken first, so it is older than the delete by the clocks
    // whatever the load (its clock, behind, only widens the gap): the delete must win it.
    const late = await c.put('k', 'from the cut-off peer')
    const deleted = await a.del('k')
    expect(await a.get('k')).toBeUndefined()
    expect(late.hlc!).toBeLessThan(deleted.hlc!)

    // Node 0 and 1 hold the tombstone through several collection passes: node 2 has not acked it.
    await waitFor(
      async () => {
        for (const i of [0, 1]) if ((await group.status(i)).multi!.tombstones.count !== 1) return false
        return true
      },
      { what: 'nodes 0 and 1 to hold the tombstone' },
    )
    const before = (await group.status(0)).multi!.tombstones.passes
    await waitFor(async () => (await group.status(0)).multi!.tombstones.passes >= before + 3, {
      what: 'three collection passes',
    })
    for (const i of [0, 1]) expect((await group.status(i)).multi!.tombstones.count).toBe(1)

    group.healAll()
    await group.waitConverged()
    for (let i = 0; i < 3; i++) {
      const db = await group.client(i)
      expect(await db.get('k'), `node ${i}`).toBeUndefined()
    }
    // Once every node holds it and everything older, it goes, everywhere.
    await waitFor(
      async () => {
        for (let i = 0; i < 3; i++) if ((await group.status(i)).multi!.tombstones.count !== 0) return false
        return true
      },
      { what: 'the tombstone to be collected on every node' },
    )
    for (let i = 0; i < 3; i++) {
      const db = await group.client(i)
      expect(await db.get('k'), `node ${i} after collection`).toBeUndefined()
    }
    const statuses = await group.waitConverged()
    expect(statuses.every((s) => s.multi!.tombstones.collected >= 1)).toBe(true)
  })

  it('a delete that comes back through a merged snapshot does not resurrect the key', async () => {
    const group = new PeerGroup()
    groups.push(group)
    // A tiny log, trimmed often: a peer cut off long enough needs a snapshot.
    await group.start({ size: 2, conflict: 'lww', args: ['--log-retention', '20', '--log-trim-interval', '100'] })
    const a = await group.client(0)
    const b = await group.client(1)
    for (let i = 0; i < 10; i++) await a.put(`k${i}`, `v${i}`)
    await group.waitConverged()
    group.isolate(1)
    for (let i = 0; i < 10; i += 2) await a.del(`k${i}`)
    for (let i = 0; i < 100; i++) await a.put(`filler${i}`, 'x')
    await b.put('only-on-b', 'b')
    // Node 0's log no longer holds the deletes: node 1 must join a snapshot, which carries the tombstones.
    await waitFor(async () => (await group.status(0)).logStart > 20, { what: 'node 0 to trim its log' })
    group.healAll()
    const statuses = await group.waitConverged()
    expect(statuses[1].multi!.peers[0].snapshots).toBeGreaterThanOrEqual(1)
    for (let i = 0; i < 10; i++) {
      expect(await b.get(`k${i}`), `k${i}`).toBe(i % 2 === 0 ? undefined : `v${i}`)
    }
    expect(await a.get('only-on-b')).toBe('b')
  })
})
