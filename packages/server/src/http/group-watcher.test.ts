import type { NodeStatus, ReplicaStatus } from '@tandem/protocol'
import { describe, expect, it } from 'vitest'
import { DEFAULT_TUNING, type Tuning } from '../tuning.js'
import { GroupWatcher } from './group-watcher.js'
import type { SelfReport } from './self-report.js'

// The watcher's bookkeeping with reports made up here and a driven clock:
// one node per node id whatever address names it, the dead kept and then
// forgotten, and a bound on how many nodes it follows.

function status(
  nodeId: string,
  address: string,
  extra: Partial<NodeStatus> & Record<string, unknown> = {},
): NodeStatus {
  return {
    nodeId,
    role: 'replica',
    epoch: 1,
    seq: 10,
    upstream: null,
    readOnly: true,
    replicas: [],
    keys: 0,
    diskBytes: 100,
    log: { oldestSeq: 1, newestSeq: 10, entries: 10 },
    address,
    ...extra,
  }
}

function report(s: NodeStatus, at: number): SelfReport {
  return { at, status: s, requests: {}, diskBytes: 100, version: '0', rollbackFiles: [] }
}

function replica(nodeId: string, addr: string): ReplicaStatus {
  return { nodeId, addr, ackedSeq: 10, lagEntries: 0, lagMs: 0, link: 'streaming' }
}

class Fake {
  now = 1_000_000
  self: NodeStatus = status('A', 'a:1')
  /** What each address answers; an address absent here refuses. */
  readonly answers = new Map<string, () => NodeStatus>()
  readonly asked: string[] = []
  readonly watcher: GroupWatcher

  constructor(tuning: Tuning = DEFAULT_TUNING) {
    this.watcher = new GroupWatcher({
      selfReport: () => report(this.self, this.now),
      fetchReport: async (address) => {
        this.asked.push(address)
        const answer = this.answers.get(address)
        if (!answer) throw Object.assign(new Error('fetch failed'), { cause: { code: 'ECONNREFUSED' } })
        return report(answer(), this.now)
      },
      now: () => this.now,
      tuning,
    })
  }
}

describe('group watcher', () => {
  it('makes one node of the addresses that reach it: a route through a proxy and its advertised address', async () => {
    const f = new Fake()
    // A follows B through a proxy; B advertises b:2 and lists A as its replica.
    f.self = status('A', 'a:1', { upstream: 'proxy:9', link: { state: 'streaming', lagEntries: 1, lagMs: 2 } })
    const b = () => status('B', 'b:2', { role: 'master', readOnly: false, replicas: [replica('A', 'a:1')] })
    f.answers.set('proxy:9', b)
    f.answers.set('b:2', b)
    await f.watcher.refresh()
    const view = await f.watcher.refresh()
    expect(view.nodes.map((n) => `${n.key}@${n.address}`).sort()).toEqual(['A@a:1', 'B@b:2'])
    expect(view.master).toBe('B')
    expect(view.edges).toEqual([
      { from: 'B', to: 'A', kind: 'stream', state: 'streaming', lagEntries: 0, lagMs: 0, stale: false },
    ])
    // Once known, B is asked at its advertised address, once a tick.
    f.asked.length = 0
    await f.watcher.refresh()
    expect(f.asked).toEqual(['b:2'])
  })

  it('keeps drawing a node that stops answering, then forgets it once nobody names it for five minutes', async () => {
    const f = new Fake()
    f.self = status('A', 'a:1', { role: 'master', readOnly: false, replicas: [replica('C', 'c:3')] })
    f.answers.set('c:3', () => status('C', 'c:3', { upstream: 'a:1' }))
    await f.watcher.refresh()
    const seenAt = f.now
    f.answers.delete('c:3')
    f.self = status('A', 'a:1', { role: 'master', readOnly: false })
    f.now += 1000
    let view = await f.watcher.refresh()
    const c = view.nodes.find((n) => n.key === 'C')
    expect(c).toMatchObject({ reachable: false, lastSeenAt: seenAt, error: 'ECONNREFUSED', role: 'replica' })
    // Its last report still says it streamed from A: drawn, as stale.
    expect(view.edges).toEqual([expect.objectContaining({ from: 'A', to: 'C', stale: true })])
    f.now += 4 * 60_000
    view = await f.watcher.refresh()
    expect(view.nodes.map((n) => n.key).sort()).toEqual(['A', 'C'])
    f.now += 2 * 60_000
    view = await f.watcher.refresh()
    expect(view.nodes.map((n) => n.key)).toEqual(['A'])
    expect(view.edges).toEqual([])
  })

  it(`follows at most ${DEFAULT_TUNING.consoleMaxNodes} nodes and says when it leaves some out`, async () => {
    const f = new Fake()
    const many = Array.from({ length: 100 }, (_, i) => replica(`R${i}`, `r:${i}`))
    f.self = status('A', 'a:1', { role: 'master', readOnly: false, replicas: many })
    const view = await f.watcher.refresh()
    expect(view.nodes).toHaveLength(DEFAULT_TUNING.consoleMaxNodes)
    expect(view.truncated).toBe(true)
    // The cap is the node's consoleMaxNodes (--tune).
    const small = new Fake({ ...DEFAULT_TUNING, consoleMaxNodes: 5 })
    small.self = f.self
    expect((await small.watcher.refresh()).nodes).toHaveLength(5)
  })

  it('follows only HOST:PORT addresses: a reported address cannot steer its requests elsewhere', async () => {
    const f = new Fake()
    const odd = ['evil.example/steal?:80', 'user:pw@evil.example:80', 'evil.example:80#', 'host:99999', 'a b:1']
    f.self = status('A', 'a:1', {
      role: 'master',
      readOnly: false,
      replicas: [
        ...odd.map((addr, i) => replica(`X${i}`, addr)),
        replica('G', '[::1]:7379'),
        replica('H', 'h.local:7380'),
      ],
    })
    await f.watcher.refresh()
    expect(f.asked.sort()).toEqual(['[::1]:7379', 'h.local:7380'])
  })

  it('turns counters into rates over the node’s own time, and starts again after a restart', async () => {
    const f = new Fake()
    let writes = 1000
    let groups = 100
    let get = 50
    const selfReport = () => ({
      ...report(status('A', 'a:1', { commit: { writes, groups, avgGroupSize: 10 } }), f.now),
      requests: { get, put: 7 },
    })
    const watcher = new GroupWatcher({
      selfReport,
      fetchReport: () => Promise.reject(new Error('none')),
      now: () => f.now,
      tuning: DEFAULT_TUNING,
    })
    let view = await watcher.refresh()
    expect(view.nodes[0]).toMatchObject({ writesPerSec: null, readsPerSec: null, avgGroup: 10 })
    f.now += 2000
    writes += 400
    groups += 100
    get += 300
    view = await watcher.refresh()
    expect(view.nodes[0]).toMatchObject({ writesPerSec: 200, readsPerSec: 150, avgGroup: 4 })
    // A restarted node's counters begin again: no negative rate.
    f.now += 1000
    writes = 5
    groups = 1
    get = 0
    view = await watcher.refresh()
    expect(view.nodes[0]).toMatchObject({ writesPerSec: null, readsPerSec: null })
  })
  it('judges a multi-master mesh as tandem converged does: cursors without zeros, then digests', async () => {
    const f = new Fake()
    const multi = (vv: Record<string, number>, digest: string, peer: string, peerId: string) => ({
      role: 'peer' as const,
      readOnly: false,
      mode: 'multi',
      multi: {
        conflict: 'lww',
        vv,
        digest,
        digestAlarm: null,
        peers: [{ addr: peer, nodeId: peerId, link: 'streaming', lagEntries: 3, lagMs: 7 }],
      },
    })
    f.self = status('A', 'a:1', multi({ a: 2, b: 1 }, 'd1', 'b:2', 'B'))
    let b = status('B', 'b:2', multi({ a: 2, b: 1, c: 0 }, 'd1', 'a:1', 'A'))
    f.answers.set('b:2', () => b)
    let view = await f.watcher.refresh()
    expect(view.mesh).toEqual({ converged: true, digest: 'd1', peers: ['A', 'B'], reason: null })
    expect(view.edges.map((e) => `${e.from}>${e.to} ${e.kind} ${e.state} ${e.lagEntries}/${e.lagMs}`).sort()).toEqual([
      'A>B peer streaming 3/7',
      'B>A peer streaming 3/7',
    ])
    b = status('B', 'b:2', multi({ a: 2, b: 1 }, 'd2', 'a:1', 'A'))
    view = await f.watcher.refresh()
    expect(view.mesh).toMatchObject({
      converged: false,
      digest: null,
      reason: 'b:2 holds another digest at the same cursors',
    })
    f.answers.delete('b:2')
    view = await f.watcher.refresh()
    expect(view.mesh).toMatchObject({ converged: false, reason: 'b:2 does not answer' })
    expect(view.nodes.find((n) => n.key === 'B')?.multi?.digest).toBe('d2')
  })

  it('asks no node for a report once stopped, though a tick in progress learns of new ones', async () => {
    // The console's watcher stops when its last console closes, and the nodes'
    // report streams are closed then: a tick still running must not open new ones
    // (nothing would close them until another console opens).
    const asked: string[] = []
    let answerB: (r: SelfReport) => void = () => {}
    const watcher = new GroupWatcher({
      selfReport: () => report(status('A', 'a:1', { upstream: 'b:1' }), 1_000_000),
      fetchReport: (address) => {
        asked.push(address)
        if (address === 'b:1') return new Promise<SelfReport>((resolve) => (answerB = resolve))
        return Promise.resolve(report(status('C', address), 1_000_000))
      },
      now: () => 1_000_000,
      tuning: { ...DEFAULT_TUNING, consolePollWaitMs: 60_000 },
    })
    const viewed = new Promise<void>((resolve) => {
      watcher.onView = () => resolve()
    })
    watcher.start()
    for (const deadline = Date.now() + 5000; !asked.includes('b:1'); ) {
      if (Date.now() > deadline) throw new Error('the watcher never asked b:1')
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    watcher.stop()
    // B answers after the stop, naming its replica C.
    answerB(report(status('B', 'b:1', { role: 'master', replicas: [replica('C', 'c:1')] }), 1_000_000))
    await viewed
    expect(asked).toEqual(['b:1'])
    watcher.close()
  })
})
