import { systemClock } from '../util/clock.js'

/**
 * When a read (a get; a group commit's reads of the keys it writes) may
 * read LevelDB synchronously, on the event loop.
 *
 * A synchronous read costs a fraction of a thread-pool read: no snapshot
 * taken on the main thread, no work queued to libuv's pool and no
 * completion back through it. LevelDB answers it from memory when the key
 * is in a memtable, or its block is in LevelDB's block cache or the OS page
 * cache; otherwise the read waits for the disk (a table file opened, a
 * block read) and the event loop waits with it.
 *
 * So every synchronous read is timed, and the time of those slower than
 * `slowMs` (a read from memory takes microseconds) is charged to a budget
 * of `budgetMs` per `windowMs`. Once a window's budget is spent, reads go
 * through the thread pool until the window ends. The event loop thus waits
 * in slow synchronous reads for at most the budget (plus one read) per
 * window, however cold the data. A read the OS merely preempted is charged
 * too: it cannot be told apart from one that waited for the disk, and a
 * budget of a few percent of the window absorbs the odd preemption.
 */
export interface SyncReadOptions {
  /** A read slower than this is charged to the budget (default 0.5 ms). */
  slowMs?: number
  /** Time slow synchronous reads may take per window (default 100 ms). */
  budgetMs?: number
  /** Length of a budget window (default 1000 ms). */
  windowMs?: number
  /** Monotonic ms clock (the store passes its clock's now()). */
  now?: () => number
}

export class SyncReadGate {
  /** Synchronous reads that were slow, since start. */
  slowReads = 0
  /** Windows whose budget ran out, since start. */
  exhausted = 0
  private readonly slowMs: number
  private readonly budgetMs: number
  private readonly windowMs: number
  private readonly now: () => number
  private windowStart = Number.NEGATIVE_INFINITY
  private spentMs = 0

  constructor(options: SyncReadOptions = {}) {
    this.slowMs = options.slowMs ?? 0.5
    this.budgetMs = options.budgetMs ?? 100
    this.windowMs = options.windowMs ?? 1000
    this.now = options.now ?? systemClock.now
  }

  /** The clock reading to pass to `done`, or null when this read must go through the thread pool. */
  begin(): number | null {
    const now = this.now()
    if (now >= this.windowStart + this.windowMs) {
      this.windowStart = now
      this.spentMs = 0
    }
    return this.spentMs > this.budgetMs ? null : now
  }

  /** Records how long the synchronous read begun at `startedAt` took. */
  done(startedAt: number): void {
    const took = this.now() - startedAt
    if (took <= this.slowMs) return
    this.slowReads++
    const before = this.spentMs
    this.spentMs += took
    if (before <= this.budgetMs && this.spentMs > this.budgetMs) this.exhausted++
  }
}
