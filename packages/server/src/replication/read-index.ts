import { TandemError } from '@tandem/protocol'

/**
 * The read index: what a linearizable read waits for before the master
 * answers it (the idea of etcd's ReadIndex, with the master's lease standing
 * in for etcd's heartbeat round, as in etcd's lease-based reads).
 *
 * A read on the master completes on LevelDB's thread pool and may already
 * see a group commit whose batch is written but whose callback has not run:
 * so the seq it could have seen is the store's `writingSeq` when the read
 * completes, not `lastSeq` when it began. The read is answered once a
 * majority of the group holds that seq (`committedSeq()`): nothing it shows
 * can then be rolled back by a fail-over (rule 2 of failover.ts). The node
 * checks its lease again when it replies.
 *
 * That seq must also be one of this master's own epoch. A majority holding
 * an entry of an older epoch does not keep it from being replaced: a
 * candidate whose last entry is of a newer epoch than that one (written by
 * the master of an epoch in between, which never replicated it) outranks
 * every member of that majority, since rule 2 compares the epoch of the
 * last entry first, and its log then replaces theirs. So until this master
 * has an entry of its own epoch, a read writes an empty one, once (a
 * barrier; a Raft leader commits a no-op at the start of its term for the
 * same reason). Outside a fail-over group there are no elections, and
 * epochStartSeq() is 0.
 *
 * Reads waiting for the same seq share one wait; nothing is timed per read.
 * Waits are released by acks and commits (`advance()`), and one sweep timer,
 * running only while reads wait, fails them all when the node can no longer
 * serve them (`check()` throws: lease lapsed) or when one has waited
 * `maxWaitMs` (TIMEOUT: the majority does not answer though the lease
 * holds, e.g. replication links cut while member links are not).
 */

export interface ReadIndexHost {
  /** The highest seq a majority of the group holds, this node's durable copy included. */
  committedSeq(): number
  /** Seq at which this master's epoch began. */
  epochStartSeq(): number
  /** Commits an empty entry in the current epoch; resolves with its seq. */
  writeBarrier(): Promise<number>
  /** Throws unless the node may still serve linearizable reads. */
  check(): void
  /** Monotonic ms. */
  now(): number
}

interface ReadIndexOptions {
  /** Longest a read waits for the majority before it fails with TIMEOUT. */
  maxWaitMs: number
  /** How often waiting reads are checked against `check()` and `maxWaitMs`. */
  sweepMs: number
}

const DEFAULT_READ_INDEX_OPTIONS: ReadIndexOptions = { maxWaitMs: 5000, sweepMs: 50 }

interface Wait {
  seq: number
  since: number
  promise: Promise<void>
  resolve: () => void
  reject: (err: TandemError) => void
}

export class ReadIndex {
  /** Waits by seq, in ascending order of seq. */
  private waits: Wait[] = []
  private readonly bySeq = new Map<number, Wait>()
  private barrier: Promise<number> | null = null
  private sweeper: NodeJS.Timeout | null = null
  readonly stats = { immediate: 0, waited: 0, barriers: 0, failed: 0 }

  constructor(
    private readonly host: ReadIndexHost,
    private readonly options: ReadIndexOptions = DEFAULT_READ_INDEX_OPTIONS,
  ) {}

  /** Reads waiting now. */
  get waiting(): number {
    return this.waits.length
  }

  /**
   * Null when a read that could have seen up to `seenSeq` may be answered
   * now; else a promise that resolves once it may (or rejects).
   */
  confirm(seenSeq: number): Promise<void> | null {
    const start = this.host.epochStartSeq()
    if (seenSeq < start) return this.afterBarrier()
    if (this.host.committedSeq() >= seenSeq) {
      this.stats.immediate++
      return null
    }
    this.stats.waited++
    return this.waitFor(seenSeq)
  }

  /** Releases every wait whose seq a majority now holds (called on acks and commits). */
  advance(): void {
    if (this.waits.length === 0) return
    const committed = this.host.committedSeq()
    let n = 0
    while (n < this.waits.length && this.waits[n].seq <= committed) n++
    if (n === 0) return
    const done = this.waits.splice(0, n)
    for (const w of done) {
      this.bySeq.delete(w.seq)
      w.resolve()
    }
    if (this.waits.length === 0) this.stopSweeper()
  }

  /** Fails every waiting read (step-down, shutdown). */
  failAll(err: TandemError): void {
    const waits = this.waits
    this.waits = []
    this.bySeq.clear()
    this.stopSweeper()
    this.stats.failed += waits.length
    for (const w of waits) w.reject(err)
  }

  close(): void {
    this.failAll(new TandemError('UNAVAILABLE', 'node is shutting down'))
  }

  private afterBarrier(): Promise<void> {
    if (!this.barrier) {
      this.stats.barriers++
      this.barrier = this.host.writeBarrier().finally(() => {
        this.barrier = null
      })
    }
    return this.barrier.then((seq) => this.confirm(seq) ?? undefined)
  }

  private waitFor(seq: number): Promise<void> {
    const existing = this.bySeq.get(seq)
    if (existing) return existing.promise
    let resolve!: () => void
    let reject!: (err: TandemError) => void
    const promise = new Promise<void>((res, rej) => {
      resolve = res
      reject = rej
    })
    const wait: Wait = { seq, since: this.host.now(), promise, resolve, reject }
    this.bySeq.set(seq, wait)
    // Reads come in with a non-decreasing writingSeq, so this is almost always a push.
    let at = this.waits.length
    while (at > 0 && this.waits[at - 1].seq > seq) at--
    this.waits.splice(at, 0, wait)
    if (!this.sweeper) this.sweeper = setInterval(() => this.sweep(), this.options.sweepMs)
    return promise
  }

  private sweep(): void {
    try {
      this.host.check()
    } catch (err) {
      return this.failAll(
        err instanceof TandemError ? err : new TandemError('INTERNAL', String((err as Error)?.message ?? err)),
      )
    }
    const now = this.host.now()
    const expired = this.waits.filter((w) => now - w.since >= this.options.maxWaitMs)
    if (expired.length === 0) return
    this.waits = this.waits.filter((w) => now - w.since < this.options.maxWaitMs)
    this.stats.failed += expired.length
    for (const w of expired) {
      this.bySeq.delete(w.seq)
      w.reject(
        new TandemError(
          'TIMEOUT',
          `a majority of the group did not confirm seq ${w.seq} within ${this.options.maxWaitMs} ms; the read was not answered`,
        ),
      )
    }
    if (this.waits.length === 0) this.stopSweeper()
  }

  private stopSweeper(): void {
    if (this.sweeper) clearInterval(this.sweeper)
    this.sweeper = null
  }
}
