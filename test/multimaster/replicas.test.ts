import { afterEach, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { firstDifference, PeerGroup, scanNode, statusOf } from './peers.js'

/**
 * A multi-master node's log is a linear log of what it applied, so read
 * replicas follow it as they follow a master (--replicaof), and replicas of
 * replicas too. They apply its entries with its conflict policy and end with
 * the same records: the same convergence digest.
 */
const groups: PeerGroup[] = []
afterEach(async () => {
  await Promise.all(groups.splice(0).map((g) => g.teardown()))
})

describe('read replicas under a multi-master node', () => {
  for (const conflict of ['lww', 'vclock'] as const) {
    it(`a replica and a replica of it converge to the masters' digest (${conflict})`, async () => {
      const group = new PeerGroup()
      groups.push(group)
      await group.start({ size: 2, conflict })
      const replica = await group.startExtra(['--replicaof', group.nodes[0].address])
      const leaf = await group.startExtra(['--replicaof', replica.address])
      const dbs = [await group.client(0), await group.client(1)]
      group.isolate(0) // concurrent writes on both sides: conflicts, siblings
      for (let i = 0; i < 60; i++) {
        const db = dbs[i % 2]
        const key = `k${i % 13}`
        if (i % 7 === 3) await db.del(key)
        else await db.put(key, `v${i}`)
      }
      group.healAll()
      const [m] = await group.waitConverged()
      await waitFor(
        async () => {
          const [r, l] = await Promise.all([statusOf(replica), statusOf(leaf)])
          return r.digest === m.digest && l.digest === m.digest && r.seq === l.seq
        },
        { what: 'the replica and its replica to reach the masters’ digest' },
      )
      // The kept key count is the same on every node and is what a scan
      // finds; deleted keys held as tombstones (not collected yet, or
      // already collected) are not keys.
      const nodes = [group.nodes[0], group.nodes[1], replica, leaf]
      const expectCounts = async () => {
        const keys = (await scanNode(group.nodes[0])).size
        expect(keys).toBeGreaterThan(0)
        const statuses = await Promise.all(nodes.map((n) => statusOf(n)))
        expect(statuses.map((s) => s.keys)).toEqual(nodes.map(() => keys))
      }
      await expectCounts()
      // Tombstones collected on the master are collected down the tree too.
      await waitFor(async () => (await statusOf(group.nodes[0])).multi!.tombstones.count === 0, {
        what: 'the masters to collect their tombstones',
      })
      const master = await statusOf(group.nodes[0])
      await waitFor(async () => (await statusOf(leaf)).seq === master.seq, { what: 'the leaf to follow' })
      expect((await statusOf(leaf)).digest).toBe(master.digest)
      expect((await statusOf(leaf)).records).toMatchObject({ tombstones: 0 })
      // Collecting a tombstone removes no key: the counts have not moved.
      await expectCounts()
      const [ms, rs, ls] = await Promise.all([scanNode(group.nodes[0]), scanNode(replica), scanNode(leaf)])
      expect(firstDifference(rs, ms)).toBeNull()
      expect(firstDifference(ls, ms)).toBeNull()
      // Replicas stay read-only.
      expect((await statusOf(replica)).role).toBe('replica')
    })
  }
})
