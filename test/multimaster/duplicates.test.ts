import type { TandemClient } from '@tandem/client'
import type { MultiPeerStatus } from '@tandem/protocol'
import { afterEach, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { PeerGroup, type PeerStatus } from './peers.js'

/**
 * Duplicate traffic in a mesh. Every node pulls from every peer, and each
 * peer sends whatever of its log the puller lacks, whatever the origin: in a
 * full mesh of three a write would reach a node from its origin and again
 * forwarded by the third node, and its own writes would come back from the
 * peers it sent them to. A feed sends what the peer is known to hold only
 * once (what the peer reported, on either link, in the same run of its
 * process), and does not forward an origin the peer streams directly while
 * the same run of that origin pulls from the feed's node (see peer-feed.ts).
 * Never at the cost of an entry the peer lacks: a peer restarted with fewer
 * of its own writes than its old socket reported gets them back, a stalled
 * or cut link's writes arrive through the third node (and an origin
 * restarted from an older copy: older-copy.test.ts).
 */
describe('multi-master duplicate traffic', () => {
  let group: PeerGroup
  afterEach(() => group?.teardown())

  /** `count` puts on one node, `inFlight` at a time, on keys of its own. */
  async function load(db: TandemClient, name: string, count: number, inFlight = 16): Promise<void> {
    let next = 0
    const worker = async () => {
      while (next < count) {
        const i = next++
        await db.put(`${name}:${i % 500}`, `${name}-${i}`)
      }
    }
    await Promise.all([...Array(inFlight)].map(worker))
  }

  const counts = (s: PeerStatus) => ({ received: s.multi!.received, duplicates: s.multi!.duplicates })

  /** Every link of the group streams and every feed knows which origins its peer streams directly. */
  async function waitDirect(size: number): Promise<void> {
    await waitFor(
      async () => {
        for (let i = 0; i < size; i++) {
          const peers = (await group.status(i)).multi!.peers
          const ready = (p: MultiPeerStatus) =>
            p.link === 'streaming' && p.pulling?.state === 'streaming' && p.pulling.direct.length === size - 1
          if (!peers.every(ready)) return false
        }
        return true
      },
      { what: 'every link to stream and every feed to know its peer’s direct links', timeoutMs: 30_000 },
    )
  }

  it('a node of a 3-master mesh under write load receives few entries it already holds', async () => {
    group = await new PeerGroup().start({ size: 3, conflict: 'lww' })
    await waitDirect(3)
    const before = await Promise.all([0, 1, 2].map((i) => group.status(i)))
    const perNode = 1500
    const clients = await Promise.all([0, 1, 2].map((i) => group.client(i)))
    await Promise.all(clients.map((db, i) => load(db, `n${i}`, perNode)))
    const after = await group.waitConverged()

    for (let i = 0; i < 3; i++) {
      const was = counts(before[i])
      const now = counts(after[i])
      const received = now.received - was.received
      const duplicates = now.duplicates - was.duplicates
      // Every write of the two others arrives at least once.
      expect(received, `node ${i} received`).toBeGreaterThanOrEqual(2 * perNode)
      // When each node forwarded every origin's writes to the third, about
      // a third to a half of these were already held. (Not 0: a link silent
      // for peerDirectSilenceMs on a loaded machine drops its claim, and the
      // third node forwards until it is made again.)
      expect(duplicates, `node ${i}: ${duplicates} of ${received} received were already held`).toBeLessThanOrEqual(
        Math.ceil(0.05 * received),
      )
    }
  })

  it('with the link between two masters cut both ways, both keep writing and the third relays', async () => {
    group = await new PeerGroup().start({ size: 3, conflict: 'lww' })
    await waitDirect(3)
    const [origin0, origin1] = await Promise.all([0, 1].map(async (i) => (await group.status(i)).multi!.origin))
    group.cut(0, 1)
    const [a, b] = await Promise.all([group.client(0), group.client(1)])
    await Promise.all([load(a, 'n0', 300, 4), load(b, 'n1', 300, 4)])
    const held0 = (await group.status(0)).vv[origin0]
    const held1 = (await group.status(1)).vv[origin1]
    await waitFor(
      async () => {
        const [s0, s1] = await Promise.all([group.status(0), group.status(1)])
        return s1.vv[origin0] === held0 && s0.vv[origin1] === held1
      },
      { what: 'nodes 0 and 1 to get each other’s writes through node 2', timeoutMs: 60_000 },
    )
    for (let i = 0; i < 300; i++) {
      expect(await b.get(`n0:${i}`), `n0:${i} on node 1`).toBe(`n0-${i}`)
      expect(await a.get(`n1:${i}`), `n1:${i} on node 0`).toBe(`n1-${i}`)
    }
    group.healAll()
    await group.waitConverged()
  })

  it('a master of two under write load gets none of its own writes back from its peer', async () => {
    group = await new PeerGroup().start({ size: 2, conflict: 'lww' })
    await waitFor(
      async () => {
        for (let i = 0; i < 2; i++) {
          if ((await group.status(i)).multi!.peers.some((p) => p.link !== 'streaming')) return false
        }
        return true
      },
      { what: 'both links to stream', timeoutMs: 30_000 },
    )
    const before = await Promise.all([0, 1].map((i) => group.status(i)))
    const perNode = 1500
    const clients = await Promise.all([0, 1].map((i) => group.client(i)))
    await Promise.all(clients.map((db, i) => load(db, `n${i}`, perNode)))
    const after = await group.waitConverged()

    for (let i = 0; i < 2; i++) {
      const was = counts(before[i])
      const now = counts(after[i])
      const received = now.received - was.received
      const duplicates = now.duplicates - was.duplicates
      // Every write of the other arrives at least once.
      expect(received, `node ${i} received`).toBeGreaterThanOrEqual(perNode)
      // With two masters the only entries a node can receive twice are its
      // own, echoed back: the peer knows it holds them from what it reports
      // on its link to the peer, in the frames that carried them.
      expect(duplicates, `node ${i}: ${duplicates} of ${received} received were already held`).toBeLessThanOrEqual(
        Math.ceil(0.01 * received),
      )
    }
  })

  it('after a partition, a feed steps over the writes it took from the peer it feeds, unread', async () => {
    // A feed sends nothing its peer holds (peer-feed.ts). Once the peer
    // holds every write up to this node's newest resume point, the feed
    // goes past it without reading the entries: after a partition, the
    // other side's writes that a node applies are not read back one by one
    // only to be dropped. Batches of 500 entries: at most one batch read
    // mixes the node's own last writes with the peer's first.
    const batch = 500
    group = await new PeerGroup().start({ size: 2, conflict: 'lww', args: ['--tune', `replBatchEntries=${batch}`] })
    await waitFor(
      async () => {
        for (let i = 0; i < 2; i++) {
          if ((await group.status(i)).multi!.peers.some((p) => p.link !== 'streaming')) return false
        }
        return true
      },
      { what: 'both links to stream', timeoutMs: 30_000 },
    )
    group.cut(0, 1)
    const perNode = 3000
    const clients = await Promise.all([0, 1].map((i) => group.client(i)))
    await Promise.all(clients.map((db, i) => load(db, `n${i}`, perNode)))
    group.healAll()
    const after = await group.waitConverged()
    for (let i = 0; i < 2; i++) {
      const peer = after[i].multi!.peers.find((p) => p.nodeId === after[1 - i].nodeId)
      const pulling = peer?.pulling
      expect(pulling, `node ${i}: the feed its peer pulls from`).toBeTruthy()
      // Node i holds the peer's 3000 writes behind its own: its feed to
      // that peer passed over them (it read and dropped every one before).
      expect(pulling!.filtered, `node ${i}: entries read and dropped`).toBeLessThan(batch)
      expect(pulling!.skipped, `node ${i}: entries stepped over`).toBeGreaterThan(perNode - batch)
    }
  })

  it('writes of an origin whose link to a node stalls still reach that node through the third peer', async () => {
    group = await new PeerGroup().start({ size: 3, conflict: 'lww' })
    const origin0 = (await group.status(0)).multi!.origin
    const node2 = (await group.status(2)).nodeId
    // Node 2 says it pulls node 0's writes from node 0 itself, so node 1
    // stops forwarding them to it.
    await waitFor(
      async () =>
        (await group.status(1)).multi!.peers.some(
          (p) => p.nodeId === node2 && p.pulling?.direct.includes(origin0) === true,
        ),
      { what: 'node 1 to learn that node 2 pulls from node 0 directly', timeoutMs: 30_000 },
    )
    const a = await group.client(0)
    for (let i = 0; i < 20; i++) await a.put(`before:${i}`, `v${i}`)
    await group.waitConverged()

    // Node 2's link from node 0 stalls: open, silent. Node 0's later writes
    // reach node 1, and node 2 only through node 1.
    group.proxies[2][0]!.cut('stall')
    for (let i = 0; i < 20; i++) await a.put(`after:${i}`, `v${i}`)
    const held = (await group.status(0)).vv[origin0]
    await waitFor(async () => (await group.status(2)).vv[origin0] === held, {
      what: 'node 2 to get node 0’s writes through node 1',
      timeoutMs: 30_000,
    })
    const c = await group.client(2)
    for (let i = 0; i < 20; i++) expect(await c.get(`after:${i}`), `after:${i}`).toBe(`v${i}`)
    group.healAll()
    await group.waitConverged()
  })

  it('a peer restarted with fewer of its own writes than its old run reported, whose old socket is still open, gets them all back', async () => {
    group = await new PeerGroup().start({ size: 2, conflict: 'lww' })
    const a = await group.client(0)
    for (let i = 0; i < 20; i++) await a.put(`early:${i}`, `v${i}`)
    await group.waitConverged()
    // A copy of node 0's data dir as it is now: started later, it holds
    // fewer of node 0's own writes than node 1 does (a lost tail).
    const copy = await group.copyOfDataDir(0)
    const again = await group.client(0)
    for (let i = 0; i < 30; i++) await again.put(`late:${i}`, `v${i}`)
    const origin0 = (await group.status(0)).multi!.origin
    const held = (await group.status(0)).vv[origin0]
    // Node 1 holds them all, and node 0 has said so on node 1's link to it.
    await waitFor(
      async () => {
        const s = await group.status(1)
        return s.vv[origin0] === held && s.multi!.peers[0].vv[origin0] === held
      },
      { what: 'node 1 to hold node 0’s writes and hear node 0 report them' },
    )

    // Node 0's run freezes: its sockets stay open and silent, so node 1's
    // link to it keeps that run's report. A new run of node 0 starts from
    // the copy and pulls from node 1.
    const old = group.nodes[0]
    await old.kill('SIGSTOP')
    const fresh = await group.newRunOf(0, copy, [], [])
    try {
      await fresh.start()
      // Node 1's feed must send the new run what it lost; it gets them back
      // (and only then takes writes again).
      await waitFor(async () => (await group.status(0)).vv[origin0] === held, {
        what: 'the new run of node 0 to get its lost writes back from node 1',
        timeoutMs: 30_000,
      })
      const restored = await group.client(0)
      for (let i = 0; i < 30; i++) expect(await restored.get(`late:${i}`), `late:${i}`).toBe(`v${i}`)
      await waitFor(async () => !(await group.status(0)).readOnly, { what: 'node 0 to take writes again' })
      // The old run's socket was open throughout, its report unchanged.
      const stale = (await group.status(1)).multi!.peers[0]
      expect(stale.link).toBe('streaming')
      expect(stale.vv[origin0]).toBe(held)
    } finally {
      await old.kill('SIGKILL')
    }
  })
})
