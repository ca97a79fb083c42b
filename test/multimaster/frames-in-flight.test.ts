import { afterEach, describe, expect, it } from 'vitest'
import { PrometheusText } from '../helpers/prometheus.js'
import { waitFor } from '../helpers/wait.js'
import { PeerGroup } from './peers.js'

/**
 * Rule: a peer feed leaves at most peerFramesInFlight entries frames
 * unacknowledged by a peer that counts them (its acks' `frames`); what
 * commits meanwhile waits and goes in one frame when the ack comes, except
 * a full batch, which goes at once. A stopped peer (SIGSTOP) acks nothing,
 * so the frames its feed sends while a run of small group commits lands are
 * counted exactly: one a commit before, one in all after (or one a full
 * batch). Nothing is lost by holding: the peer gets every write once it runs.
 */
describe('multi-master: entries frames in flight on a peer feed', () => {
  let group: PeerGroup | undefined
  afterEach(async () => {
    await group?.teardown()
    group = undefined
  })

  /** Node 0's feed to node 1, as node 0's status shows it. */
  const feedOf = async (g: PeerGroup) => {
    const pulling = (await g.status(0)).multi!.peers[0].pulling
    if (pulling === null) throw new Error('node 1 does not pull from node 0')
    return pulling
  }

  /** 200 puts on node 0, one group commit each, while node 1 is stopped; node 0's feed's frames and holds meanwhile. */
  const writeWhileStopped = async (g: PeerGroup) => {
    const db0 = await g.client(0)
    await db0.put('warm', 'up')
    await g.waitConverged(30_000)
    const origin0 = (await g.status(0)).multi!.origin
    // Node 1's ack of that frame (which counts it) has reached node 0's feed.
    await waitFor(async () => ((await feedOf(g)).ackedVv[origin0] ?? 0) >= 1, {
      what: 'node 1 to ack node 0’s first write',
      timeoutMs: 30_000,
    })
    const before = await feedOf(g)
    await g.nodes[1].kill('SIGSTOP')
    let during: typeof before
    try {
      for (let i = 0; i < 200; i++) await db0.put(`k${i}`, `v${i}`)
      during = await feedOf(g)
    } finally {
      await g.nodes[1].kill('SIGCONT')
    }
    const [s0, s1] = await g.waitConverged(60_000)
    expect(s1.digest).toBe(s0.digest)
    const db1 = await g.client(1)
    expect(await db1.get('k0')).toBe('v0')
    expect(await db1.get('k199')).toBe('v199')
    return { before, during, after: await feedOf(g) }
  }

  /** Entries frames node `i` timed in the peer_send stage (its feeds' hand-offs to their sockets). */
  const peerSends = async (g: PeerGroup, i: number) => {
    const metrics = new PrometheusText(await (await fetch(`http://${g.nodes[i].address}/metrics`)).text())
    return metrics.value('tandem_write_stage_seconds_count', { stage: 'peer_send' }) ?? 0
  }

  it('holds what commits behind an unacked frame and sends it in one frame once the peer acks', async () => {
    // A long --repl-timeout: node 0's feed must not give the stopped node up (a new feed counts anew).
    group = await new PeerGroup().start({
      size: 2,
      conflict: 'lww',
      args: ['--repl-timeout', '120s', '--tune', 'peerFramesInFlight=1'],
    })
    const sendsBefore = await peerSends(group, 0)
    const { before, during, after } = await writeWhileStopped(group)
    // One frame went (the first commit's); the 199 commits after it waited.
    expect(during.frames - before.frames).toBe(1)
    expect(during.heldBack - before.heldBack).toBeGreaterThanOrEqual(100)
    // Once node 1 ran and acked it, what waited went together (a frame or two).
    expect(after.frames - before.frames).toBeLessThanOrEqual(3)
    // Each entries frame node 0's feed sent is timed once, from its first entry's commit (the wait above included).
    expect((await peerSends(group, 0)) - sendsBefore).toBe(after.frames - before.frames + 1)
  })

  it('sends a full batch at once, unacked frames or not', async () => {
    group = await new PeerGroup().start({
      size: 2,
      conflict: 'lww',
      args: ['--repl-timeout', '120s', '--tune', 'replBatchEntries=20,peerFramesInFlight=1'],
    })
    const { before, during } = await writeWhileStopped(group)
    // The first commit's frame, then one each time 20 entries waited.
    const sent = during.frames - before.frames
    expect(sent).toBeGreaterThanOrEqual(8)
    expect(sent).toBeLessThanOrEqual(12)
  })
})
