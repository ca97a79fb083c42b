import { TandemError, type WriteConcern } from '@tandem/protocol'

/**
 * Tracks the seq each downstream link has durably applied and answers
 * "have N replicas reached seq S?" for w=N writes and `wait`.
 *
 * Acks are kept per link (one upstream feed), not per claimed node id:
 * the feed decides what an ack may count for (only while it streams the
 * current history, only up to what it has sent, never past the head) and
 * takes its acks with it when it closes. A node id counts once however
 * many links claim it, so two sockets saying they are the same replica
 * never add up to two replicas.
 *
 * Waiters are kept in no particular order: there are at most as many as
 * in-flight write requests, which the API bounds, and each ack checks them
 * in one pass.
 */
export interface AckSource {
  /** The node id the link announced in its hello. */
  readonly nodeId: string
}

interface Waiter {
  seq: number
  count: number
  /** Only acks from replicas this accepts count (w='majority' in a fail-over group: its members). */
  from?: (replicaId: string) => boolean
  resolve: () => void
  reject: (err: unknown) => void
  timer: NodeJS.Timeout
}

export class AckTracker {
  private readonly acked = new Map<AckSource, number>()
  /** Links per node id; while none has two, counting needs no de-duplication. */
  private readonly linksPerId = new Map<string, number>()
  private sharedIds = 0
  private waiters = new Set<Waiter>()
  /**
   * Bumped whenever an answer of required(), countAtLeast() or seqHeldBy()
   * may change (an ack moved a link forward, a link came or went), so
   * callers can cache them in between.
   */
  changes = 0
  /** Called after an ack moved a link forward (watches in a fail-over group wait for a majority). */
  onAdvance: () => void = () => {}

  /** How many replicas a write concern needs, given the replicas attached now. */
  required(w: WriteConcern | undefined): number {
    if (w === undefined) return 0
    if (w === 'majority') {
      // A majority of the master plus its direct replicas; the master is one of them.
      return Math.floor((this.linksPerId.size + 1) / 2 + 1) - 1
    }
    return w
  }

  /** Distinct replicas (those `from` accepts, when given) whose acks reach `seq`. */
  countAtLeast(seq: number, from?: (replicaId: string) => boolean): number {
    if (this.sharedIds === 0) {
      let n = 0
      for (const [source, s] of this.acked) if (s >= seq && (from === undefined || from(source.nodeId))) n++
      return n
    }
    const ids = new Set<string>()
    for (const [source, s] of this.acked) {
      if (s >= seq && (from === undefined || from(source.nodeId))) ids.add(source.nodeId)
    }
    return ids.size
  }

  /**
   * The highest seq that at least `count` distinct replicas (those `from`
   * accepts, when given) hold; 0 when fewer than `count` have acked
   * anything. Called on every ack while a fail-over group has watches: a
   * group has a handful of links.
   */
  seqHeldBy(count: number, from?: (replicaId: string) => boolean): number {
    if (count <= 0) return Number.MAX_SAFE_INTEGER
    const best = new Map<string, number>()
    for (const [source, s] of this.acked) {
      if (from !== undefined && !from(source.nodeId)) continue
      if (s > (best.get(source.nodeId) ?? 0)) best.set(source.nodeId, s)
    }
    if (best.size < count) return 0
    return [...best.values()].sort((a, b) => b - a)[count - 1]
  }

  /** Registers a link that has said who it is; it counts for nothing until it acks. */
  attach(source: AckSource): void {
    if (this.acked.has(source)) return
    this.changes++
    this.acked.set(source, 0)
    const links = (this.linksPerId.get(source.nodeId) ?? 0) + 1
    this.linksPerId.set(source.nodeId, links)
    if (links === 2) this.sharedIds++
  }

  /** Records that the link's replica durably holds everything up to `seq` (the feed has already bounded it). */
  ack(source: AckSource, seq: number): void {
    const prev = this.acked.get(source)
    if (prev === undefined) this.attach(source)
    else if (seq <= prev) return
    this.changes++
    this.acked.set(source, seq)
    for (const w of this.waiters) {
      if (this.countAtLeast(w.seq, w.from) >= w.count) this.settle(w)
    }
    this.onAdvance()
  }

  /** The link is gone: its acks no longer count. */
  forget(source: AckSource): void {
    if (!this.acked.delete(source)) return
    this.changes++
    const links = (this.linksPerId.get(source.nodeId) ?? 1) - 1
    if (links === 0) this.linksPerId.delete(source.nodeId)
    else this.linksPerId.set(source.nodeId, links)
    if (links === 1) this.sharedIds--
  }

  /**
   * Resolves when `count` replicas (those `from` accepts, when given) have
   * acked `seq`; rejects with TIMEOUT after timeoutMs.
   */
  waitFor(seq: number, count: number, timeoutMs: number, from?: (replicaId: string) => boolean): Promise<void> {
    if (count <= 0 || this.countAtLeast(seq, from) >= count) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        seq,
        count,
        from,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter)
          reject(
            new TandemError(
              'TIMEOUT',
              `write ${seq} is committed on this node but reached ${this.countAtLeast(seq, from)} of ${count} replicas within ${timeoutMs} ms; it stays committed`,
              { details: { seq } },
            ),
          )
        }, timeoutMs),
      }
      this.waiters.add(waiter)
    })
  }

  /** Fails every waiter (shutdown, demotion). */
  failAll(err: TandemError): void {
    for (const w of this.waiters) {
      clearTimeout(w.timer)
      w.reject(err)
    }
    this.waiters.clear()
  }

  private settle(w: Waiter): void {
    clearTimeout(w.timer)
    this.waiters.delete(w)
    w.resolve()
  }
}
