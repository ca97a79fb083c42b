import { randomBytes } from 'node:crypto'
import { encodeFrame } from '@tandem/protocol'
import { afterEach, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { startHandPusher } from './hand-pusher.js'
import { PeerGroup, type PeerStatus, statusOf } from './peers.js'

/**
 * Entries frames with no entries say only what the sender holds: a feed
 * sends one when everything new it had for its peer was skipped (the peer
 * pulls those writes from their origin directly). They are bounded at both
 * ends: a feed sends at most one per peerVvFrameMs, whatever the rate of
 * its group commits, and a link that receives them faster than it handles
 * them takes the newest vector into the one already queued rather than
 * queueing a task for each.
 */
describe('multi-master entries frames with no entries', () => {
  let group: PeerGroup | undefined
  const cleanups: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    await group?.teardown()
    group = undefined
    for (const c of cleanups.splice(0).reverse()) await c()
  })

  it('a feed that skips every new write for its peer sends at most one a peerVvFrameMs', async () => {
    // Long enough that no feed may send a second one during the test.
    group = await new PeerGroup().start({ size: 3, conflict: 'lww', args: ['--tune', 'peerVvFrameMs=600000'] })
    const g = group
    const origin0 = (await g.status(0)).multi!.origin
    const node1 = (await g.status(1)).nodeId
    const node2 = (await g.status(2)).nodeId
    const feeds = (s: PeerStatus) => s.multi!.peers.map((p) => p.pulling).filter((p) => p !== null)
    const totals = async () => {
      let vvFrames = 0
      let directSkipped = 0
      for (const i of [1, 2]) {
        for (const f of feeds(await g.status(i))) {
          vvFrames += f.vvFrames
          directSkipped += f.directSkipped
        }
      }
      return { vvFrames, directSkipped }
    }
    // Nodes 1 and 2 each skip node 0's writes for the other: both pull them from node 0.
    await waitFor(
      async () => {
        const s1 = await g.status(1)
        const s2 = await g.status(2)
        return (
          s1.multi!.peers.find((p) => p.nodeId === node2)?.pulling?.skipping.includes(origin0) === true &&
          s2.multi!.peers.find((p) => p.nodeId === node1)?.pulling?.skipping.includes(origin0) === true
        )
      },
      { what: 'nodes 1 and 2 to skip node 0’s writes for each other', timeoutMs: 30_000 },
    )
    const before = await totals()

    // Small group commits one after another: each one a feed skips whole
    // sent an entries frame with no entries before the bound.
    const db = await g.client(0)
    for (let i = 0; i < 200; i++) await db.put(`k${i}`, `v${i}`)
    await g.waitConverged()
    const after = await totals()
    expect(after.directSkipped - before.directSkipped).toBeGreaterThanOrEqual(100)
    // At most one per feed (two feeds), the first ones at once.
    expect(after.vvFrames - before.vvFrames).toBeLessThanOrEqual(2)
    // Each still hears what the other holds (heartbeats carry it too).
    await waitFor(async () => (await g.status(2)).multi!.peers.find((p) => p.nodeId === node1)?.vv[origin0] === 200, {
      what: 'node 2 to hear that node 1 holds node 0’s 200 writes',
    })
  })

  it('a peer sending them in a tight loop costs the link one queued task per burst, and the link stays up', async () => {
    // A pusher written by hand: it answers the node's link with a continue,
    // then writes 20,000 entries frames with no entries in one go.
    const frames = 20_000
    const fakeOrigin = randomBytes(16).toString('hex')
    const node = await startHandPusher({
      origin: fakeOrigin,
      prefix: 'tandem-mm-vvflood-',
      cleanups,
      burst: (ws) => {
        for (let i = 1; i <= frames; i++)
          ws.send(encodeFrame({ type: 'entries', entries: [], head: 0, vv: { [fakeOrigin]: 0 } }))
      },
    })

    await waitFor(async () => (await statusOf(node)).multi!.peers[0].vvFrames.received === frames, {
      what: 'the node to read every frame the pusher sent',
      timeoutMs: 60_000,
    })
    const link = (await statusOf(node)).multi!.peers[0]
    expect(link.link).toBe('streaming')
    // Frames that came together took one task: most were merged.
    expect(link.vvFrames.merged).toBeGreaterThanOrEqual(frames / 2)
  })
})
