import { TandemError, type WriteConcern } from '@tandem/protocol'

/**
 * Tracks the seq each downstream has durably applied and answers "have N of
 * them reached seq S?" for w=N writes and `wait`. Waiters are kept sorted
 * by nothing in particular: there are at most as many as in-flight write
 * requests, which the API bounds, and each ack checks them in one pass.
 */
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
  private readonly acked = new Map<string, number>()
  private waiters = new Set<Waiter>()

  /** Number of direct replicas known (connected or recently connected). */
  get replicaCount(): number {
    return this.acked.size
  }

  /** How many replicas a write concern needs, given the replicas attached now. */
  required(w: WriteConcern | undefined): number {
    if (w === undefined) return 0
    if (w === 'majority') {
      // A majority of the master plus its direct replicas; the master is one of them.
      return Math.floor((this.acked.size + 1) / 2 + 1) - 1
    }
    return w
  }

  countAtLeast(seq: number, from?: (replicaId: string) => boolean): number {
    let n = 0
    for (const [id, s] of this.acked) if (s >= seq && (from === undefined || from(id))) n++
    return n
  }

  ack(replicaId: string, seq: number): void {
    const prev = this.acked.get(replicaId) ?? 0
    if (seq <= prev && this.acked.has(replicaId)) return
    this.acked.set(replicaId, seq)
    for (const w of this.waiters) {
      if (this.countAtLeast(w.seq, w.from) >= w.count) this.settle(w)
    }
  }

  forget(replicaId: string): void {
    this.acked.delete(replicaId)
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
