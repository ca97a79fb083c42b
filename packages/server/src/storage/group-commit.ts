import { TandemError } from '@tandem/protocol'

/**
 * Group commit: writes that arrive while a LevelDB batch is being written
 * wait in a queue and all go out together in the next batch. One fsync then
 * covers every writer in the group, which is what makes durable writes fast.
 *
 * The committer knows nothing of what a write is; the Store hands it a
 * `commit(group)` function that turns a group into one atomic batch. Groups
 * are committed strictly one after another, so their order is the log order.
 */
export interface CommitStats {
  groups: number
  /** Writes committed, counted by weight (entries, for replicated frames). */
  writes: number
  largestGroup: number
}

interface Pending<T, R> {
  item: T
  resolve: (result: R) => void
  reject: (err: unknown) => void
  /** When it was submitted (options.now), 0 when not timed. */
  at: number
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
}

export class GroupCommitter<T, R> {
  private queue: Pending<T, R>[] = []
  private running = false
  private idleWaiters: (() => void)[] = []
  readonly stats: CommitStats = { groups: 0, writes: 0, largestGroup: 0 }

  constructor(
    /**
     * Writes a group as one batch and returns each item's result; an Error
     * in place of a result refuses that item alone (the rest of the group
     * is written). A rejection fails the whole group.
     */
    private readonly commit: (group: T[]) => Promise<(R | Error)[]>,
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
      if (!this.running) {
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

  private async run(): Promise<void> {
    while (this.queue.length > 0) {
      const { take, writes } = this.nextGroup()
      const group = take === this.queue.length ? this.queue : this.queue.slice(0, take)
      this.queue = group === this.queue ? [] : this.queue.slice(take)
      const { now, waited } = this.options
      if (now && waited) waited(now() - group[0].at)
      let results: (R | Error)[]
      try {
        results = await this.commit(group.map((p) => p.item))
      } catch (err) {
        for (const p of group) p.reject(err)
        continue
      }
      // Counted by weight: a replicated frame counts as the entries it holds.
      this.stats.groups++
      this.stats.writes += writes
      if (writes > this.stats.largestGroup) this.stats.largestGroup = writes
      for (let i = 0; i < group.length; i++) {
        const result = results[i]
        if (result instanceof Error) group[i].reject(result)
        else group[i].resolve(result)
      }
    }
    this.running = false
    const waiters = this.idleWaiters
    this.idleWaiters = []
    for (const w of waiters) w()
  }
}
