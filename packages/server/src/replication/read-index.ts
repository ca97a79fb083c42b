import { TandemError } from '@tandem/protocol'

/**
 * The read index: what a linearizable read waits for before the master
 * answers it (the idea of etcd's ReadIndex, with the master's lease standing
 * in for etcd's heartbeat round, as in etcd's lease-based reads).
 *
 * A read on the master may already see a group commit whose batch is
 * written but whose callback has not run: so the seq it could have seen is
 * the store's `writingSeq` when the read completes, not `lastSeq` when it
 * began. A get of one key depends on less: only on the write that last
 * changed that key, whose seq its record carries (a missing key, or a
 * record without one, falls back to `writingSeq`). A later write to other
 * keys, not yet held by a majority, does not hold it up; a later write to
 * the same key that the read did not see is after it in any order. The
 * read is answered once a majority of the group holds the seq it depends
 * on (`committedSeq()`): nothing it shows can then be rolled back by a
 * fail-over (rule 2 of failover.ts), and no write acknowledged before it
 * began is missing from it (this master's store holds every write it
 * acknowledged, and while its lease holds no other master takes writes).
 * The node checks its lease again when it replies.
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
 * epochStartSeq() is 0. Once a majority holds an entry of this epoch, it
 * holds every entry before it too, so a read that depends on an older seq
 * is answered at once.
 *
 * A read whose seq a majority already holds costs two comparisons (the
 * host keeps `committedSeq()` up to date as acks arrive, not per read): no
 * wait, no promise. Reads waiting for the same seq share one wait; reads
 * that arrive while the barrier is being written share that barrier; nothing
 * is timed per read.
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
  /** The last seq this node has written or is writing (the store's writingSeq). */
  headSeq(): number
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
   * Null when a read that depends on the writes up to `seq` may be answered
   * now; else a promise that resolves once it may (or rejects).
   */
  confirm(seq: number): Promise<void> | null {
    const start = this.host.epochStartSeq()
    const target = Math.max(seq, start)
    if (this.host.committedSeq() >= target) {
      this.stats.immediate++
      return null
    }
    if (this.host.headSeq() < start) return this.afterBarrier(seq)
    this.stats.waited++
    return this.waitFor(target)
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

  private afterBarrier(seq: number): Promise<void> {
    if (!this.barrier) {
      this.stats.barriers++
      this.barrier = this.host.writeBarrier().finally(() => {
        this.barrier = null
      })
    }
    return this.barrier.then((barrierSeq) => this.confirm(Math.max(barrierSeq, seq)) ?? undefined)
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
