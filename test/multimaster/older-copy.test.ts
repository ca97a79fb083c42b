import { afterEach, describe, expect, it } from 'vitest'
import type { FaultProxy } from '../helpers/fault-proxy.js'
import { waitFor } from '../helpers/wait.js'
import { PeerGroup } from './peers.js'

/**
 * Rule checked: a node never issues again a counter of its own that another
 * node holds, even when the writes it lost are held only by a peer it
 * cannot reach, and even when that peer does not forward them to the peer
 * it can reach (because that one streams the origin directly).
 *
 * Three masters. Node 0 is the origin, node 1 the forwarder (it holds every
 * write of node 0), node 2 a peer that says it pulls node 0's writes from
 * node 0 itself, so node 1 may skip forwarding them to it, and that lags:
 * its link from node 0 stalls while node 0 writes. Node 0's run then
 * freezes (SIGSTOP: its sockets stay open, so node 1's links to it still
 * stream) cut off from node 1, and a new run starts from an older copy of
 * its data dir, reaching node 2 only. Had the new run taken the writes
 * node 2 lacks as never written, its new writes would reuse their counters,
 * and node 1 would keep the old writes under them: a lasting divergence.
 * Instead the new run takes no writes until it has them back, and after
 * healing every node holds the old writes and the new.
 */
describe('multi-master origin restarted from an older copy of its data dir', () => {
  let group: PeerGroup
  afterEach(() => group?.teardown())

  /** Drops the proxy's connections (its owners dial again) and forwards again. */
  const reset = (proxy: FaultProxy) => {
    proxy.cut('refuse')
    proxy.heal()
  }

  it('takes no writes until it has back the writes only a cut-off peer held, and the group converges', async () => {
    // A claim to pull an origin directly lasts a minute here, so a reconnect
    // keeps it across the whole restart (the window is a tunable).
    const args = ['--tune', 'peerDirectSilenceMs=60000']
    group = await new PeerGroup().start({ size: 3, conflict: 'lww', args })
    const origin0 = (await group.status(0)).multi!.origin
    const a = await group.client(0)
    for (let i = 0; i < 20; i++) await a.put(`early:${i}`, `v${i}`)
    await group.waitConverged()

    // The copy: node 0's data dir as it is now.
    const copy = await group.copyOfDataDir(0)
    const node2 = (await group.status(2)).nodeId
    await waitFor(
      async () => {
        const s = await group.status(1)
        return (
          s.multi!.peers.every((p) => p.link === 'streaming') &&
          s.multi!.peers.some((p) => p.nodeId === node2 && p.pulling?.direct.includes(origin0) === true)
        )
      },
      { what: 'node 1 to stream from both and hear that node 2 pulls from node 0 directly', timeoutMs: 30_000 },
    )

    // Node 2 stops hearing node 0; node 1 gets all of node 0's new writes.
    group.proxies[2][0]!.cut('stall')
    const b = await group.client(0)
    for (let i = 0; i < 30; i++) await b.put(`late:${i}`, `v${i}`)
    const held = (await group.status(0)).vv[origin0]
    await waitFor(async () => (await group.status(1)).vv[origin0] === held, {
      what: 'node 1 to hold all of node 0’s writes',
    })
    // Whether node 2 holds them (forwarded) or only heard node 1 say it
    // does, it has heard it before node 0's new run can reach it.
    await waitFor(async () => (await group.status(2)).multi!.peers[1].vv[origin0] === held, {
      what: 'node 2 to hear that node 1 holds them',
    })

    // Node 0's run freezes, cut off from node 1 both ways (stalled: node
    // 1's sockets to it stay open). A new run starts from the copy.
    const old = group.nodes[0]
    await old.kill('SIGSTOP')
    group.proxies[0][1]!.cut('stall')
    group.proxies[1][0]!.cut('stall')
    // A node that reaches no peer within peerStartupGraceMs takes writes
    // alone (it cannot know what it lost); on a loaded machine the new run's
    // first link can take longer than the default 2 s.
    const fresh = await group.newRunOf(0, copy, ['--tune', 'peerStartupGraceMs=60000'], [1, 2])
    try {
      await fresh.start()
      // Node 2's link to node 0 reaches the new run.
      reset(group.proxies[2][0]!)
      await waitFor(async () => !(await group.status(0)).readOnly, {
        what: 'the new run of node 0 to take writes',
        timeoutMs: 60_000,
      })
      // It takes writes only with every write of its old run back: its
      // first new write's counter comes after them. (Not status vv: it is
      // the committed vector, and the node may take writes as soon as the
      // group applying the last of them is built, before it is committed.)
      const c = await group.client(0)
      const first = await c.put('new:0', 'v0')
      expect(first.originSeq).toBeGreaterThan(held)
      for (let i = 1; i < 30; i++) await c.put(`new:${i}`, `v${i}`)

      // Healed: node 1 reaches the new run (the old one's sockets are reset).
      reset(group.proxies[0][1]!)
      reset(group.proxies[1][0]!)
      await group.waitConverged(90_000)
      for (let n = 0; n < 3; n++) {
        const db = await group.client(n)
        for (let i = 0; i < 30; i++) {
          expect(await db.get(`late:${i}`), `node ${n} late:${i}`).toBe(`v${i}`)
          expect(await db.get(`new:${i}`), `node ${n} new:${i}`).toBe(`v${i}`)
        }
      }
    } finally {
      await old.kill('SIGKILL')
    }
  })

  it('takes writes again once the cut-off peer that held its lost writes is forgotten', async () => {
    // Node 0's new run refuses writes because node 2 heard node 1 hold
    // writes of node 0 that the copy lacks. Node 1 is then gone for good and
    // forgotten (the operator gives up what only it held): node 0 must take
    // writes again without a restart, or it refuses them for ever.
    const args = ['--tune', 'peerDirectSilenceMs=60000']
    group = await new PeerGroup().start({ size: 3, conflict: 'lww', args })
    const origin0 = (await group.status(0)).multi!.origin
    const origin1 = (await group.status(1)).multi!.origin
    const a = await group.client(0)
    for (let i = 0; i < 20; i++) await a.put(`early:${i}`, `v${i}`)
    await group.waitConverged()

    const copy = await group.copyOfDataDir(0)
    // Node 1 must skip forwarding node 0's writes to node 2 (so that node 2
    // lacks them): it does once node 2's claim to pull node 0 directly names
    // the new run of node 0, and that run pulls from node 1 (status
    // pulling.skipping). A claim lasts across reconnects, so right after the
    // restart node 2 still names the old run, and its link to the new one
    // may still be in its handshake: a stall then would freeze that
    // handshake, and node 1 would forward everything.
    const node2 = (await group.status(2)).nodeId
    const feedTo2 = async () => (await group.status(1)).multi!.peers.find((p) => p.nodeId === node2)?.pulling
    await waitFor(async () => (await feedTo2())?.skipping.includes(origin0) === true, {
      what: 'node 1 to skip forwarding node 0’s writes to node 2 (it pulls them from the new run directly)',
      timeoutMs: 30_000,
    })
    const skippedBefore = (await feedTo2())!.directSkipped

    // Node 2 stops hearing node 0; node 1 gets all of node 0's new writes
    // and does not forward them to node 2, which hears that node 1 holds them.
    group.proxies[2][0]!.cut('stall')
    const b = await group.client(0)
    for (let i = 0; i < 30; i++) await b.put(`late:${i}`, `v${i}`)
    const held = (await group.status(0)).vv[origin0]
    await waitFor(async () => (await group.status(2)).multi!.peers[1].vv[origin0] === held, {
      what: 'node 2 to hear that node 1 holds node 0’s writes',
    })
    expect((await feedTo2())!.directSkipped - skippedBefore).toBeGreaterThan(0)
    expect((await group.status(2)).vv[origin0] ?? 0).toBeLessThan(held)

    // Node 1 is gone for good, then node 0's old run (node 1 first: had node
    // 0's run gone first, node 1 would have forwarded its writes to node 2).
    // A new run of node 0 starts from the copy and reaches node 2 only.
    await group.nodes[1].kill('SIGKILL')
    await group.nodes[0].kill('SIGKILL')
    expect((await group.status(2)).vv[origin0] ?? 0).toBeLessThan(held)
    const fresh = await group.newRunOf(0, copy, ['--tune', 'peerStartupGraceMs=60000'], [1, 2])
    await fresh.start()
    reset(group.proxies[2][0]!)
    await waitFor(async () => (await group.status(0)).multi!.peers[1].link === 'streaming', {
      what: 'the new run of node 0 to stream from node 2',
      timeoutMs: 60_000,
    })
    // Node 2 told it that node 1 holds more of its writes than it has.
    const c = await group.client(0)
    await expect(c.put('refused', 'x')).rejects.toMatchObject({ code: 'UNAVAILABLE' })

    // The operator forgets node 1 on node 2 (the new run of node 0 never
    // knew node 1's origin: it started from a copy made before it was heard of).
    const d2 = await group.client(2)
    await d2.forget(origin1, { force: true })
    await waitFor(async () => !(await group.status(0)).readOnly, {
      what: 'node 0 to take writes once node 1 is forgotten',
      timeoutMs: 30_000,
    })
    await c.put('after', 'x')
    await waitFor(async () => (await (await group.client(2)).get('after')) === 'x', {
      what: 'node 2 to get the write',
    })
  })
})
