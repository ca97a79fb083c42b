import { hlcWallMs } from '../storage/hlc.js'
import type { KeyTracker } from '../storage/key-tracker.js'
import { decodeTombstoneInfo } from '../storage/key-tracker.js'
import type { Store } from '../storage/store.js'
import { vvCovers } from '../storage/version-vector.js'
import type { Logger } from '../util/logger.js'
import type { StabilityTracker } from './stability.js'

/**
 * Collects tombstones once they are causally stable (stability.ts), never
 * on a timer: a tombstone whose requirement the stable vector covers is
 * dropped through the Store's committer (Store.collect), which checks again
 * that the key still holds that tombstone and logs the collection for this
 * node's replicas. Each pass reads at most `pageKeys` tombstones from the
 * index, going on from where the last one stopped, so a large backlog costs
 * a bounded amount per pass.
 *
 * What is stuck is visible: status shows the tombstones pending, the age of
 * the oldest, and which member holds collection up (a peer that never
 * answered, one that never reached all of its own peers, or one whose rows
 * stopped before a pending tombstone: a dead peer, see forgotten.ts).
 */
export class TombstoneCollector {
  readonly stats = { collected: 0, passes: 0 }
  /** Why nothing can be collected now, or null. */
  blockedBy: string | null = null
  private oldestHlc = 0
  /** The oldest pending tombstone of the round of passes in progress. */
  private roundOldest = 0
  private timer: NodeJS.Timeout | null = null
  private running = false
  private after: Buffer | null = null
  /**
   * The tracker, and its tombsAdded, when a round read the index from its
   * start and found nothing: until either changes the index is still
   * empty, and a pass reads nothing. Reading it anyway opened a LevelDB
   * iterator on the event loop every pass; that takes LevelDB's lock, which
   * its compaction and write threads hold across file work, and under load
   * it held the loop for up to 0.45 s (a --cpu-prof of 2 masters taking
   * puts and no deletes).
   */
  private emptyAt: { tracker: KeyTracker; added: number } | null = null

  constructor(
    private readonly store: Store,
    private readonly stability: StabilityTracker,
    private readonly logger: Logger,
    private readonly intervalMs: number,
    private readonly pageKeys: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.pass(), this.intervalMs)
    this.timer.unref()
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
  }

  /** Age of the oldest tombstone still pending at the last full round of passes, ms (0: none). */
  oldestAgeMs(): number {
    return this.oldestHlc === 0 ? 0 : Math.max(0, this.store.clock.wall() - hlcWallMs(this.oldestHlc))
  }

  /** One pass: a page of the index, and what of it is stable goes. */
  async pass(): Promise<number> {
    const keys = this.store.keys as KeyTracker | null
    if (this.running || keys === null || this.store.status !== 'open') return 0
    this.running = true
    try {
      this.stats.passes++
      const stable = this.stability.stable()
      let waiting: string | null = 'blockedBy' in stable ? stable.blockedBy : null
      if (this.emptyAt !== null && this.emptyAt.tracker === keys && this.emptyAt.added === keys.tombsAdded) {
        this.blockedBy = waiting
        return 0
      }
      this.emptyAt = null
      const fromStart = this.after === null
      const added = keys.tombsAdded
      if (fromStart) this.roundOldest = 0
      const range = this.after ? { gt: this.after, limit: this.pageKeys } : { limit: this.pageKeys }
      const due: Buffer[] = []
      let last: Buffer | null = null
      let seen = 0
      for await (const [key, value] of keys.tombs.iterator(range)) {
        last = key
        seen++
        const info = decodeTombstoneInfo(value)
        if ('vv' in stable && vvCovers(stable.vv, info.r)) due.push(key)
        else {
          if (this.roundOldest === 0 || info.t < this.roundOldest) this.roundOldest = info.t
          if (waiting === null) {
            const member = this.stability.waitingFor(info.r)
            if (member !== null) waiting = `${member} (no row of it covers a pending tombstone)`
          }
        }
      }
      this.blockedBy = waiting
      // A page short of pageKeys ends a round: the next starts from the beginning.
      this.after = seen < this.pageKeys ? null : last
      if (fromStart && seen === 0) this.emptyAt = { tracker: keys, added }
      let collected = 0
      if (due.length > 0 && 'vv' in stable) {
        collected = await this.store.collect(due, stable.vv)
        this.stats.collected += collected
      }
      if (this.after === null) this.oldestHlc = this.roundOldest
      return collected
    } catch (err) {
      this.logger.warn('tombstone collection failed; will retry', { err: (err as Error).message })
      return 0
    } finally {
      this.running = false
    }
  }
}
