/**
 * When a get may read LevelDB synchronously, on the event loop.
 *
 * A synchronous read costs a fraction of a thread-pool read: no snapshot
 * taken on the main thread, no work queued to libuv's pool and no
 * completion back through it. LevelDB answers it from memory when the key
 * is in a memtable, or its block is in LevelDB's block cache or the OS page
 * cache; otherwise the read waits for the disk (a table file opened, a
 * block read) and the event loop waits with it.
 *
 * So every synchronous read is timed, and one that took longer than
 * `slowMs` turns them off for `backoffMs`: reads go through the thread pool
 * meanwhile, then the next one tries again. The event loop thus waits for
 * the disk in at most one read per back-off, however cold the data is.
 */
export interface SyncReadOptions {
  /** A read slower than this went to the disk (default 1 ms; a page-cache hit takes microseconds). */
  slowMs?: number
  /** How long reads stay on the thread pool after a slow one (default 1000 ms). */
  backoffMs?: number
  /** Monotonic ms clock (performance.now by default). */
  now?: () => number
}

export class SyncReadGate {
  /** Synchronous reads that were slow, since start. */
  slowReads = 0
  private readonly slowMs: number
  private readonly backoffMs: number
  private readonly now: () => number
  /** Until when (clock ms) reads go through the thread pool. */
  private offUntil = Number.NEGATIVE_INFINITY

  constructor(options: SyncReadOptions = {}) {
    this.slowMs = options.slowMs ?? 1
    this.backoffMs = options.backoffMs ?? 1000
    this.now = options.now ?? (() => performance.now())
  }

  /** The clock reading to pass to `done`, or null when this read must go through the thread pool. */
  begin(): number | null {
    const now = this.now()
    return now < this.offUntil ? null : now
  }

  /** Records how long the synchronous read begun at `startedAt` took. */
  done(startedAt: number): void {
    const now = this.now()
    if (now - startedAt > this.slowMs) {
      this.slowReads++
      this.offUntil = now + this.backoffMs
    }
  }
}
