import { isHostPort } from '@tandem/protocol'
import type { Tuning } from '../tuning.js'
import { systemClock } from '../util/clock.js'
import type { EdgeView, EpochView, GroupSnapshot, GroupView, LagSample, MeshView, NodeView } from './group-view.js'
import type { SelfReport } from './self-report.js'

/**
 * GroupWatcher: the one poller behind every console open on this node.
 *
 * A node knows only its own view (its upstream, its downstreams, its
 * fail-over members). To draw the whole group, the watcher starts from this
 * node's report and follows every address the reports name (upstream,
 * master, replicas, members, peers), taking each node's report once a
 * tick (fetchReport: pushed by the node, see report-feed.ts). Consoles share the watcher: it runs while at
 * least one is open and its view is encoded once per tick for all of them,
 * so twenty open tabs cost the nodes what one does.
 *
 * Nodes are keyed by node id once they have answered, so that the several
 * addresses of one node (its advertised address, the routes other members
 * use, a proxy) make one node. A node that stops answering keeps its last
 * report, drawn as stale with the time it was last seen, and is forgotten
 * only when nobody has named it for consoleForgetMs.
 */

/** The watcher's tunables (see tuning.ts). */
type WatcherTuning = Pick<
  Tuning,
  | 'consoleTickMs'
  | 'consolePollTimeoutMs'
  | 'consolePollWaitMs'
  | 'consoleMaxNodes'
  | 'consoleForgetMs'
  | 'consoleLagSamples'
  | 'consoleMaxEpochs'
  | 'consoleRateWindowMs'
>

interface WatcherSource {
  /** This node's report, made locally. */
  selfReport(): SelfReport
  /** Another node's report, fetched from HOST:PORT; fails when it takes longer than timeoutMs. */
  fetchReport(address: string, timeoutMs: number): Promise<SelfReport>
  now?: () => number
  tuning: WatcherTuning
}

type WatcherStatus = 'idle' | 'watching' | 'closed'

interface Watched {
  key: string
  nodeId: string | null
  address: string
  report: SelfReport | null
  reachable: boolean
  lastSeenAt: number | null
  error: string | null
  polling: Promise<void> | null
  /** Last time any report named this node (or it answered). */
  namedAt: number
  rates: { writesPerSec: number | null; readsPerSec: number | null; avgGroup: number | null }
  prev: { at: number; writes: number; groups: number; reads: number } | null
}

interface Reference {
  addr: string
  nodeId?: string | null
}

const READ_OPS = ['get', 'mget', 'scan']

/**
 * HOST:PORT as nodes advertise themselves (see isHostPort). Addresses come
 * from other nodes' reports and end up in a URL the watcher fetches with
 * the node's token: anything else (a path, credentials, a query) is not
 * followed.
 */
function isNodeAddress(addr: string): boolean {
  let ok = checkedAddresses.get(addr)
  if (ok === undefined) {
    if (checkedAddresses.size >= MAX_CHECKED_ADDRESSES) checkedAddresses.clear()
    ok = isHostPort(addr)
    checkedAddresses.set(addr, ok)
  }
  return ok
}

/**
 * Addresses checked so far: every report of every tick names the same few
 * nodes again, and parsing each one was a visible part of a tick. Cleared
 * when full, so a stream of odd addresses cannot grow it.
 */
const checkedAddresses = new Map<string, boolean>()
const MAX_CHECKED_ADDRESSES = 1024

export class GroupWatcher {
  status: WatcherStatus = 'idle'
  /** Called with each new view (once per tick). */
  onView: (view: GroupView) => void = () => {}
  /** Called when a tick fails (it runs from a timer: nothing above it would hear); the next tick runs anyway. */
  onTickFailed: (err: unknown) => void = () => {}
  private readonly nodes = new Map<string, Watched>()
  /** HOST:PORT -> node id, learned from answers and from the ids reports give beside addresses. */
  private readonly aliases = new Map<string, string>()
  private readonly series = new Map<string, LagSample[]>()
  private selfKey = ''
  private tick = 0
  private truncated = false
  private timer: NodeJS.Timeout | null = null
  /** Counts stops, so that a tick finishing after one does not schedule the next. */
  private run = 0
  private last: GroupView | null = null
  private readonly now: () => number
  private readonly tuning: WatcherTuning

  constructor(private readonly source: WatcherSource) {
    this.now = source.now ?? systemClock.wall
    this.tuning = source.tuning
  }

  /** Starts ticking (the first tick at once). Idempotent. */
  start(): void {
    if (this.status !== 'idle') return
    this.status = 'watching'
    this.schedule(0)
  }

  /** Stops ticking; what it learned is kept for the next start. */
  stop(): void {
    if (this.status !== 'watching') return
    this.status = 'idle'
    this.run++
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
  }

  close(): void {
    this.stop()
    this.status = 'closed'
  }

  /** The last view and every lag series, for a console that just connected (null before the first tick). */
  snapshot(): GroupSnapshot | null {
    if (!this.last) return null
    return { view: this.last, series: this.lagSeries() }
  }

  /** The last view (null before the first tick). */
  get lastView(): GroupView | null {
    return this.last
  }

  /** Every lag series, as a snapshot carries them. */
  lagSeries(): GroupSnapshot['series'] {
    return Object.fromEntries(this.series)
  }

  private schedule(delay: number): void {
    // A stop and a start during a tick must not leave two chains of ticks.
    const run = this.run
    this.timer = setTimeout(() => {
      const started = this.now()
      void this.runTick()
        .catch((err: unknown) => {
          try {
            this.onTickFailed(err)
          } catch {}
        })
        .finally(() => {
          if (this.status === 'watching' && run === this.run) {
            this.schedule(Math.max(0, this.tuning.consoleTickMs - (this.now() - started)))
          }
        })
    }, delay)
    this.timer.unref()
  }

  /** Runs one tick now, outside the schedule, and returns its view (tests drive the watcher this way). */
  async refresh(): Promise<GroupView> {
    await this.runTick()
    return this.last as GroupView
  }

  private async runTick(): Promise<void> {
    const started = this.now()
    // A stop during the tick ends its polling: the reports' streams were closed
    // with the last console, and a poll now would open one nothing closes.
    const run = this.run
    const self = this.source.selfReport()
    const selfEntry = this.entry(self.status.address ? String(self.status.address) : '', self.status.nodeId)
    if (selfEntry) {
      this.selfKey = selfEntry.key
      this.onReport(selfEntry, self)
    }
    // Poll, learn the names the answers give, and poll the new ones, within the tick's budget.
    const polledThisTick = new Set<Watched>()
    for (let round = 0; round < 4 && run === this.run; round++) {
      this.discover()
      const pending: Promise<void>[] = []
      for (const w of this.nodes.values()) {
        if (w.key === this.selfKey || polledThisTick.has(w)) continue
        polledThisTick.add(w)
        pending.push(w.polling ?? this.poll(w))
      }
      const left = this.tuning.consolePollWaitMs - (this.now() - started)
      if (pending.length === 0 || left <= 0) break
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        Promise.all(pending),
        new Promise((resolve) => {
          timer = setTimeout(resolve, left)
        }),
      ])
      clearTimeout(timer)
    }
    this.discover()
    this.forget()
    if (this.status === 'closed') return
    this.tick++
    this.last = this.buildView()
    this.onView(this.last)
  }

  private poll(w: Watched): Promise<void> {
    const polling = (async () => {
      try {
        const report = await this.source.fetchReport(w.address, this.tuning.consolePollTimeoutMs)
        this.onReport(w, report)
      } catch (err) {
        w.reachable = false
        w.error = describeError(err, this.tuning.consolePollTimeoutMs)
      } finally {
        w.polling = null
      }
    })()
    w.polling = polling
    return polling
  }

  // ---- identity ----------------------------------------------------------

  /** The entry for a node named by address (and maybe id), created when new; null past consoleMaxNodes. */
  private entry(named: string, nodeId?: string | null): Watched | null {
    const addr = isNodeAddress(named) ? named : ''
    if (nodeId && addr) this.aliases.set(addr, nodeId)
    const id = nodeId || this.aliases.get(addr) || null
    const key = id ?? `@${addr}`
    let w = this.nodes.get(key)
    if (id) {
      // The node was first named by an address only: it is this one.
      const byAddr = this.nodes.get(`@${addr}`)
      if (byAddr) {
        this.nodes.delete(byAddr.key)
        if (!w) {
          w = byAddr
          w.key = key
          w.nodeId = id
          this.nodes.set(key, w)
        }
      }
    }
    if (!w) {
      if (!addr && !id) return null
      if (this.nodes.size >= this.tuning.consoleMaxNodes) {
        this.truncated = true
        return null
      }
      w = {
        key,
        nodeId: id,
        address: addr,
        report: null,
        reachable: false,
        lastSeenAt: null,
        error: null,
        polling: null,
        namedAt: this.now(),
        rates: { writesPerSec: null, readsPerSec: null, avgGroup: null },
        prev: null,
      }
      this.nodes.set(key, w)
    }
    if (!w.address && addr) w.address = addr
    return w
  }

  private onReport(polled: Watched, report: SelfReport): void {
    const s = report.status
    const advertised = typeof s.address === 'string' && isNodeAddress(s.address) ? s.address : polled.address
    if (polled.address) this.aliases.set(polled.address, s.nodeId)
    // The answer may come from a node already known under its id (polled here by another address).
    let w = polled
    if (polled.key !== s.nodeId) {
      this.nodes.delete(polled.key)
      const known = this.nodes.get(s.nodeId)
      if (known) w = known
      else {
        w.key = s.nodeId
        this.nodes.set(w.key, w)
      }
    }
    w.nodeId = s.nodeId
    w.address = advertised
    this.aliases.set(advertised, s.nodeId)
    w.reachable = true
    w.error = null
    w.lastSeenAt = this.now()
    w.namedAt = w.lastSeenAt
    this.updateRates(w, report)
    w.report = report
  }

  private updateRates(w: Watched, report: SelfReport): void {
    const commit = report.status.commit as { writes?: number; groups?: number; avgGroupSize?: number } | undefined
    const writes = commit?.writes ?? 0
    const groups = commit?.groups ?? 0
    const reads = READ_OPS.reduce((sum, op) => sum + (report.requests[op] ?? 0), 0)
    const prev = w.prev
    // A restarted node's counters start again from zero.
    if (!prev || report.at <= prev.at || writes < prev.writes || reads < prev.reads) {
      w.prev = { at: report.at, writes, groups, reads }
      w.rates = { writesPerSec: null, readsPerSec: null, avgGroup: commit?.avgGroupSize ?? null }
      return
    }
    const window = report.at - prev.at
    if (window < this.tuning.consoleRateWindowMs) return
    const perSec = (n: number) => Math.round((n / window) * 1000 * 10) / 10
    w.rates = {
      writesPerSec: perSec(writes - prev.writes),
      readsPerSec: perSec(reads - prev.reads),
      avgGroup:
        groups > prev.groups
          ? Math.round(((writes - prev.writes) / (groups - prev.groups)) * 10) / 10
          : (commit?.avgGroupSize ?? null),
    }
    w.prev = { at: report.at, writes, groups, reads }
  }

  /** Every node a report names. Stale reports name nodes too: a dead master's replicas are still worth drawing. */
  private discover(): void {
    const now = this.now()
    for (const w of [...this.nodes.values()]) {
      if (!w.report) continue
      for (const ref of references(w.report)) {
        if (!isNodeAddress(ref.addr)) continue
        const named = this.entry(ref.addr, ref.nodeId)
        if (named && w.reachable) named.namedAt = now
      }
    }
  }

  private forget(): void {
    const cutoff = this.now() - this.tuning.consoleForgetMs
    for (const w of [...this.nodes.values()]) {
      if (w.key === this.selfKey || w.reachable || w.polling) continue
      if (w.namedAt < cutoff && (w.lastSeenAt ?? 0) < cutoff) {
        this.nodes.delete(w.key)
        for (const k of this.series.keys())
          if (k === w.key || k.startsWith(`${w.key}>`) || k.endsWith(`>${w.key}`)) this.series.delete(k)
      }
    }
    if (this.nodes.size < this.tuning.consoleMaxNodes) this.truncated = false
  }

  /** The key of the node at `addr` if it is known, without creating one. */
  private keyOf(addr: string | null | undefined, nodeId?: string | null): string | null {
    if (nodeId && this.nodes.has(nodeId)) return nodeId
    if (!addr) return null
    const id = this.aliases.get(addr)
    if (id && this.nodes.has(id)) return id
    return this.nodes.has(`@${addr}`) ? `@${addr}` : null
  }

  // ---- the view ----------------------------------------------------------

  private buildView(): GroupView {
    const now = this.now()
    const nodes = [...this.nodes.values()]
    const edges = this.edges(nodes)
    const samples: Record<string, LagSample> = {}
    for (const e of edges) {
      if (e.stale || e.lagEntries === null || e.lagMs === null) continue
      const key = e.kind === 'stream' ? e.to : `${e.from}>${e.to}`
      const sample: LagSample = [now, e.lagEntries, e.lagMs]
      samples[key] = sample
      let series = this.series.get(key)
      if (!series) this.series.set(key, (series = []))
      series.push(sample)
      const kept = this.tuning.consoleLagSamples
      if (series.length > kept) series.splice(0, series.length - kept)
    }
    let master: Watched | null = null
    for (const w of nodes) {
      const s = w.report?.status
      if (!w.reachable || s?.role !== 'master') continue
      if (!master || s.epoch > (master.report?.status.epoch ?? 0)) master = w
    }
    return {
      tick: this.tick,
      at: now,
      self: this.selfKey,
      master: master?.key ?? null,
      truncated: this.truncated,
      nodes: nodes.map((w) => this.nodeView(w, edges)),
      edges,
      history: this.history(nodes),
      mesh: meshOf(nodes),
      samples,
    }
  }

  private nodeView(w: Watched, edges: EdgeView[]): NodeView {
    const r = w.report
    const s = r?.status
    const failover = s?.failover as
      | { lease?: { held: boolean; remainingMs: number }; elections?: { started: number; won: number } }
      | null
      | undefined
    const link = s?.link as { state: string; lagEntries: number; lagMs: number } | null | undefined
    const rollbacks = s?.rollbacks as { count: number; entries: number; lastFile: string | null } | undefined
    const upstreamEdge = edges.find((e) => e.kind === 'stream' && e.to === w.key)
    return {
      key: w.key,
      nodeId: w.nodeId,
      address: w.address,
      reachable: w.reachable,
      lastSeenAt: w.lastSeenAt,
      error: w.reachable ? null : w.error,
      role: s?.role ?? null,
      epoch: s?.epoch ?? null,
      seq: s?.seq ?? null,
      readOnly: s?.readOnly ?? null,
      upstream: upstreamEdge?.from ?? null,
      member: Boolean(failover),
      lease: s?.role === 'master' && failover?.lease ? failover.lease : null,
      elections: failover?.elections ? { started: failover.elections.started, won: failover.elections.won } : null,
      link: link ? { state: link.state, lagEntries: link.lagEntries, lagMs: link.lagMs } : null,
      sync: (s?.sync as NodeView['sync']) ?? null,
      rollbacks: rollbacks ? { ...rollbacks, files: r?.rollbackFiles ?? [] } : null,
      writesPerSec: w.reachable ? w.rates.writesPerSec : null,
      readsPerSec: w.reachable ? w.rates.readsPerSec : null,
      avgGroup: w.rates.avgGroup,
      keys: typeof s?.keys === 'number' ? s.keys : null,
      diskBytes: r?.diskBytes ?? null,
      uptimeMs: typeof s?.uptimeMs === 'number' ? s.uptimeMs : null,
      version: r?.version ?? null,
      mode: typeof s?.mode === 'string' ? s.mode : null,
      multi: multiOf(r),
    }
  }

  /**
   * Who streams from whom: each downstream's own upstream, with the lag its
   * upstream measures (acked seqs) when the upstream answers, and the
   * upstreams' replica lists for downstreams that do not answer. Peers of
   * a multi-master mesh are edges too, one per direction.
   */
  private edges(nodes: Watched[]): EdgeView[] {
    const edges: EdgeView[] = []
    const has = new Set<string>()
    for (const w of nodes) {
      const s = w.report?.status
      if (!s?.upstream) continue
      const from = this.keyOf(s.upstream)
      if (!from || from === w.key) continue
      const link = s.link as { state: string; lagEntries: number; lagMs: number } | null | undefined
      const seen = this.replicaEntry(from, w.nodeId)
      edges.push({
        from,
        to: w.key,
        kind: 'stream',
        state: (w.reachable ? link?.state : seen?.link) ?? link?.state ?? 'unknown',
        lagEntries: seen?.lagEntries ?? link?.lagEntries ?? null,
        lagMs: seen?.lagMs ?? link?.lagMs ?? null,
        stale: !w.reachable && !seen,
      })
      has.add(w.key)
    }
    for (const u of nodes) {
      if (!u.reachable || !u.report) continue
      for (const r of u.report.status.replicas) {
        const to = this.keyOf(r.addr, r.nodeId)
        if (!to || has.has(to) || to === u.key) continue
        has.add(to)
        edges.push({
          from: u.key,
          to,
          kind: 'stream',
          state: r.link ?? 'unknown',
          lagEntries: r.lagEntries,
          lagMs: r.lagMs,
          stale: false,
        })
      }
      // Each node reports the links it pulls on: one edge per direction, from the peer pulled from.
      for (const p of peersOf(u.report)) {
        const from = this.keyOf(p.addr, p.nodeId)
        if (!from || from === u.key) continue
        edges.push({
          from,
          to: u.key,
          kind: 'peer',
          state: p.state ?? 'unknown',
          lagEntries: p.lagEntries ?? null,
          lagMs: p.lagMs ?? null,
          stale: false,
        })
      }
    }
    return edges
  }

  /** What upstream `from` reports about its downstream `nodeId`, when it answers. */
  private replicaEntry(from: string, nodeId: string | null) {
    const u = this.nodes.get(from)
    if (!nodeId || !u?.reachable || !u.report) return undefined
    return u.report.status.replicas.find((r) => r.nodeId === nodeId)
  }

  /** The newest history among the nodes that answer (the longest at the highest epoch). */
  private history(nodes: Watched[]): EpochView[] {
    let best: HistoryEntry[] = []
    for (const w of nodes) {
      if (!w.reachable) continue
      const h = (w.report?.status.history as HistoryEntry[] | undefined) ?? []
      const lastOf = (x: HistoryEntry[]) => x[x.length - 1]?.epoch ?? -1
      if (lastOf(h) > lastOf(best) || (lastOf(h) === lastOf(best) && h.length > best.length)) best = h
    }
    return best.slice(-this.tuning.consoleMaxEpochs).map((e) => ({
      epoch: e.epoch,
      startSeq: e.startSeq,
      by: e.by,
      byKey: this.nodes.has(e.by) ? e.by : null,
      at: typeof e.at === 'number' ? e.at : null,
      why: typeof e.why === 'string' ? e.why : null,
    }))
  }
}

interface HistoryEntry {
  epoch: number
  startSeq: number
  by: string
  at?: number
  why?: string
}

interface PeerEntry {
  addr: string
  nodeId?: string
  state?: string
  lagEntries?: number
  lagMs?: number
}

/** The multi-master part of a status (`multi`), or null on a node of another mode. */
function multiStatus(report: SelfReport | null): Record<string, unknown> | null {
  const multi = report?.status.multi
  return typeof multi === 'object' && multi !== null ? (multi as Record<string, unknown>) : null
}

/**
 * A multi-master node's peer links as its status lists them
 * (`multi.peers`: addr, nodeId, link state, lag in entries and ms of this
 * node behind that peer). Read field by field: reports come from other
 * nodes, maybe of another version.
 */
function peersOf(report: SelfReport): PeerEntry[] {
  const peers = multiStatus(report)?.peers
  if (!Array.isArray(peers)) return []
  const out: PeerEntry[] = []
  for (const p of peers) {
    if (typeof p !== 'object' || p === null) continue
    const o = p as Record<string, unknown>
    if (typeof o.addr !== 'string' || o.addr.length === 0) continue
    out.push({
      addr: o.addr,
      nodeId: typeof o.nodeId === 'string' ? o.nodeId : undefined,
      state: typeof o.link === 'string' ? o.link : undefined,
      lagEntries: typeof o.lagEntries === 'number' ? o.lagEntries : undefined,
      lagMs: typeof o.lagMs === 'number' ? o.lagMs : undefined,
    })
  }
  return out
}

function multiOf(report: SelfReport | null): NodeView['multi'] {
  const m = multiStatus(report)
  if (!m) return null
  const vv: Record<string, number> = {}
  if (typeof m.vv === 'object' && m.vv !== null) {
    for (const [origin, n] of Object.entries(m.vv)) if (typeof n === 'number') vv[origin] = n
  }
  return {
    conflict: typeof m.conflict === 'string' ? m.conflict : null,
    vv,
    digest: typeof m.digest === 'string' ? m.digest : null,
    digestAlarm: typeof m.digestAlarm === 'string' ? m.digestAlarm : null,
  }
}

/** Cursors as text, zeros left out (a node that has seen nothing of an origin may not list it). */
function cursorsText(vv: Record<string, number>): string {
  return Object.keys(vv)
    .filter((origin) => vv[origin] > 0)
    .sort()
    .map((origin) => `${origin}:${vv[origin]}`)
    .join(',')
}

/** Convergence of the multi-master nodes in view, by the rule of `tandem converged` (see MeshView). */
function meshOf(nodes: Watched[]): MeshView | null {
  const peers = nodes.filter((w) => multiStatus(w.report) !== null)
  if (peers.length === 0) return null
  let reason: string | null = null
  let first: { cursors: string; digest: string | null } | null = null
  for (const w of peers) {
    const m = multiOf(w.report) as NonNullable<NodeView['multi']>
    const mine = { cursors: cursorsText(m.vv), digest: m.digest }
    if (!w.reachable) reason ??= `${w.address} does not answer`
    else if (mine.digest === null) reason ??= `${w.address} reports no digest`
    else if (!first) first = mine
    else if (mine.cursors !== first.cursors) reason ??= `${w.address} holds other cursors`
    else if (mine.digest !== first.digest) reason ??= `${w.address} holds another digest at the same cursors`
  }
  return {
    converged: reason === null,
    digest: reason === null ? (first?.digest ?? null) : null,
    peers: peers.map((w) => w.key),
    reason,
  }
}

/** Every node a report names, with its id when the report gives one. */
function references(report: SelfReport): Reference[] {
  const s = report.status
  const refs: Reference[] = []
  const add = (addr: unknown, nodeId?: unknown) => {
    if (typeof addr === 'string' && addr) refs.push({ addr, nodeId: typeof nodeId === 'string' ? nodeId : null })
  }
  add(s.upstream)
  add(s.master)
  for (const r of s.replicas) add(r.addr, r.nodeId)
  const failover = s.failover as
    | {
        members?: { route?: string; nodeId?: string | null }[]
        master?: { addr?: string | null; nodeId?: string | null }
      }
    | null
    | undefined
  for (const m of failover?.members ?? []) add(m.route, m.nodeId)
  add(failover?.master?.addr, failover?.master?.nodeId)
  for (const p of peersOf(report)) add(p.addr, p.nodeId)
  return refs
}

function describeError(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; code?: string; message?: string; cause?: { code?: string; message?: string } }
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return `no answer in ${timeoutMs} ms`
  return e?.cause?.code ?? e?.code ?? e?.cause?.message ?? e?.message ?? String(err)
}
