import { TandemError } from '@tandem/protocol'

/**
 * Group commit: writes that arrive while a LevelDB batch is being written
 * wait in a queue and all go out together in the next batch. One fsync then
 * covers every writer in the group, which is what makes durable writes fast.
 *
 * The committer knows nothing of what a write is; the Store hands it a
 * `commit(group, built, join)` function that turns a group into one atomic
 * batch. Groups are written strictly one after another, so their order is
 * the log order.
 *
 * Pipelining: a commit may call `built()` as it hands its batch to the disk,
 * when the next group may be built while it is written (a commit that does
 * not call it is waited for, and the next group forms once it is written,
 * with every write that came meanwhile). The committer then hands the next
 * group to `commit` at once, or at the first write to come (unless that
 * write may not join: then once the write before is done), and that commit
 * keeps taking the writes that arrive (`join`) until the batch before it is
 * written: so it holds every write that came during that write, as it
 * would have had it waited, but is read and built during it. `commit`
 * itself sees to it that its batch goes to the disk only once the one
 * before it is written, built on what that one holds: not beside it, to
 * queue behind it in LevelDB. Each batch write runs on a thread of the
 * pool, and LevelDB queues writers in the order their threads take its
 * lock, not the order they were handed over; a thread preempted between
 * the two lets the later batch in first (a key's older value over its
 * newer one, the stored lastSeq going back). At most two groups
 * are under way: one being written, the next being built. If the one being
 * written fails, the one built on it answers RETRY: its writes (those it
 * joined too) go back to the head of the queue, to be built again on what
 * the store then holds. A group's writes are answered once the group built
 * on it is handed to the disk (or settles without it): answering first
 * would run every write's continuation and reply in the microtasks between
 * the write's end and the next batch's hand-over, and the disk would idle
 * meanwhile.
 */

/** A commit's answer for a group built on a group that then failed: its writes are queued again. */
export const RETRY: unique symbol = Symbol('retry')

/** What a commit building during the write before it uses to take the writes that arrive meanwhile. */
export interface GroupJoin<T> {
  /** Resolves once a write is queued (at once if one is), after that turn's I/O callbacks. */
  arrival(): Promise<void>
  /**
   * Moves the queued writes that may join (options.joins), from the head,
   * into the group, up to maxGroup by weight; null once the group is full
   * or the head may not join (then the rest wait for the next group).
   */
  take(): T[] | null
}

export interface CommitStats {
  groups: number
  /** Writes committed, counted by weight (entries, for replicated frames). */
  writes: number
  largestGroup: number
  /** Groups built while the one before was being written (pipelined). */
  overlapped: number
}

interface Pending<T, R> {
  item: T
  resolve: (result: R) => void
  reject: (err: unknown) => void
  /** When it was submitted (options.now), 0 when not timed. */
  at: number
}

/** A group handed to the disk learns here of the group built on it, once that one starts. */
interface NextGroup {
  /** Settles once that group is handed to the disk (true) or settles without it (false). */
  handedOver: Promise<boolean> | null
}

interface GroupCommitterOptions<T> {
  /** Most writes in one LevelDB batch, counted by `weight`; more wait for the next one. */
  maxGroup: number
  /** How many writes an item counts for (default 1): an item of several entries weighs as many. */
  weight?: (item: T) => number
  /** Most writes waiting at once; beyond it submit() fails with BUSY. */
  maxQueued: number
  /** Monotonic ms, to time how long a group's oldest write waited (see `waited`). */
  now?: () => number
  /** Told, as each group starts, how long its oldest write waited for it, in ms. */
  waited?: (ms: number) => void
  /** Whether a queued write may join a group being built during a write (see GroupJoin); none if unset. */
  joins?: (item: T) => boolean
}

export class GroupCommitter<T, R> {
  private queue: Pending<T, R>[] = []
  private running = false
  private idleWaiters: (() => void)[] = []
  /** Set while the loop or a joining commit waits for a write to be queued. */
  private onArrival: (() => void) | null = null
  readonly stats: CommitStats = { groups: 0, writes: 0, largestGroup: 0, overlapped: 0 }

  constructor(
    /**
     * Writes a group as one batch and returns each item's result; an Error
     * in place of a result refuses that item alone (the rest of the group
     * is written). A rejection fails the whole group.
     */
    private readonly commit: (
      group: T[],
      built: () => void,
      join: GroupJoin<T>,
    ) => Promise<(R | Error)[] | typeof RETRY>,
    private readonly options: GroupCommitterOptions<T>,
  ) {}

  get queued(): number {
    return this.queue.length
  }

  submit(item: T): Promise<R> {
    if (this.queue.length >= this.options.maxQueued) {
      return Promise.reject(new TandemError('BUSY', `write queue is full (${this.options.maxQueued} writes waiting)`))
    }
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject, at: this.options.now?.() ?? 0 })
      if (this.onArrival !== null) {
        // Taken from the check phase on, with the rest of this turn's writes (as below).
        const arrival = this.onArrival
        this.onArrival = null
        setImmediate(arrival)
      } else if (!this.running) {
        this.running = true
        // Start once this turn's I/O callbacks have all run (the check
        // phase), not on a microtask: with many unpipelined clients each
        // request arrives in its own socket callback, and a microtask start
        // would commit the turn's first write alone while the rest wait a
        // whole commit for the next group. A lone write waits no longer:
        // the loop goes from its I/O callbacks straight to the check phase.
        setImmediate(this.start)
      }
    })
  }

  /** Resolves once nothing is queued or being written. */
  idle(): Promise<void> {
    if (!this.running) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  /**
   * How many queued items the next group takes (at least one, then up to
   * maxGroup by weight), and how many writes they weigh together.
   */
  private nextGroup(): { take: number; writes: number } {
    const { maxGroup, weight } = this.options
    if (!weight) {
      const take = Math.min(this.queue.length, maxGroup)
      return { take, writes: take }
    }
    let writes = weight(this.queue[0].item)
    let take = 1
    while (take < this.queue.length) {
      const w = weight(this.queue[take].item)
      if (writes + w > maxGroup) break
      writes += w
      take++
    }
    return { take, writes }
  }

  private readonly start = (): void => void this.run()

  /** Resolves once a write is queued (see GroupJoin.arrival). */
  private arrival(): Promise<void> {
    return new Promise((resolve) => {
      if (this.queue.length > 0) setImmediate(resolve)
      else this.onArrival = resolve
    })
  }

  private async run(): Promise<void> {
    /** The group handed to the disk with built(), until it settles. */
    let writing: Promise<boolean> | null = null
    /** Where the group being written learns of the group built on it (see settle). */
    let writingNext: NextGroup | null = null
    for (;;) {
      if (this.queue.length === 0) {
        if (writing === null) break
        // A group is being written: the next one starts at the first write to come.
        const settled = await Promise.race([writing.then(() => true), this.arrival().then(() => false)])
        this.onArrival = null
        if (settled) {
          writing = null
          writingNext = null
        }
        continue
      }
      if (writing !== null && !this.options.joins?.(this.queue[0].item)) {
        // A write that may not be built on another waits for it, and takes what comes meanwhile.
        await writing
        writing = null
        writingNext = null
        continue
      }
      const { take, writes } = this.nextGroup()
      const group = take === this.queue.length ? this.queue : this.queue.slice(0, take)
      this.queue = group === this.queue ? [] : this.queue.slice(take)
      const { now, waited } = this.options
      if (now && waited) waited(now() - group[0].at)
      if (writing !== null) this.stats.overlapped++
      let built!: () => void
      const isBuilt = new Promise<void>((resolve) => (built = resolve))
      const weight = { writes }
      const next: NextGroup = { handedOver: null }
      const done = this.settle(
        group,
        weight,
        this.commit(
          group.map((p) => p.item),
          built,
          { arrival: () => this.arrival(), take: () => this.join(group, weight) },
        ),
        next,
      )
      const handedOver = Promise.race([isBuilt.then(() => true), done.then(() => false)])
      if (writingNext !== null) writingNext.handedOver = handedOver
      const written = await handedOver
      this.onArrival = null
      writing = written ? done : null
      writingNext = written ? next : null
    }
    this.running = false
    const waiters = this.idleWaiters
    this.idleWaiters = []
    for (const w of waiters) w()
  }

  /** Moves queued writes that may join into `group` (see GroupJoin.take). */
  private join(group: Pending<T, R>[], weight: { writes: number }): T[] | null {
    const { joins, maxGroup } = this.options
    if (!joins) return null
    const items: T[] = []
    let take = 0
    while (take < this.queue.length) {
      const item = this.queue[take].item
      const w = this.options.weight?.(item) ?? 1
      if (!joins(item) || weight.writes + w > maxGroup) break
      weight.writes += w
      group.push(this.queue[take])
      items.push(item)
      take++
    }
    if (take > 0) this.queue = take === this.queue.length ? [] : this.queue.slice(take)
    return take === 0 && this.queue.length > 0 ? null : items
  }

  /** Answers a group's writes once its commit settles; whether it was written. */
  private async settle(
    group: Pending<T, R>[],
    weight: { writes: number },
    outcome: Promise<(R | Error)[] | typeof RETRY>,
    next: NextGroup,
  ): Promise<boolean> {
    let results: (R | Error)[] | typeof RETRY
    try {
      results = await outcome
    } catch (err) {
      for (const p of group) p.reject(err)
      return false
    }
    if (results === RETRY) {
      this.queue = group.concat(this.queue)
      return false
    }
    // A group built on this one goes to the disk first: its last steps
    // (the rest of its build, its batch handed to LevelDB) would otherwise
    // wait behind this group's answers (each write's continuation, its
    // reply), a turn of microtasks in which the disk idles.
    if (next.handedOver !== null) await next.handedOver
    // Counted by weight: a replicated frame counts as the entries it holds.
    this.stats.groups++
    this.stats.writes += weight.writes
    if (weight.writes > this.stats.largestGroup) this.stats.largestGroup = weight.writes
    for (let i = 0; i < group.length; i++) {
      const result = results[i]
      if (result instanceof Error) group[i].reject(result)
      else group[i].resolve(result)
    }
    return true
  }
}
