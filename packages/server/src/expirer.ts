import type { Store } from './storage/store.js'
import type { Tuning } from './tuning.js'
import type { Logger } from './util/logger.js'

/**
 * Removes expired keys on the master. Expiry is decided here, once, and
 * written as an ordinary log entry of deletes: replicas apply it like any
 * write, so every node and the log agree on when a key went away, and a
 * replica promoted by a fail-over takes over from its own index. (Reads
 * on any node already treat a key past its time as missing.)
 *
 * The cost is bounded: every tick, at most expiryMaxPerTick keys of the
 * earliest due go into one write, and a tick while that write is still
 * committing does nothing. A key written again meanwhile is left alone
 * (Store.expire checks each key when the write commits).
 */
export class Expirer {
  private timer: NodeJS.Timeout | null = null
  private writing = false

  constructor(
    private readonly store: Store,
    /** Whether this node takes writes now (master with its lease). */
    private readonly canWrite: () => boolean,
    private readonly logger: Logger,
    private readonly tuning: Pick<Tuning, 'expiryTickMs' | 'expiryMaxPerTick'>,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => this.tick(), this.tuning.expiryTickMs).unref()
  }

  private tick(): void {
    if (this.writing || this.store.status !== 'open' || !this.canWrite()) return
    const now = this.store.now()
    const next = this.store.expiry.next()
    if (next === undefined || next > now) return
    const due = this.store.expiry.takeDue(now, this.tuning.expiryMaxPerTick)
    if (due.length === 0) return
    this.writing = true
    this.store
      .expire(due.map(([key]) => key))
      // Keys the write left alone (written again, or not yet due after the
      // clock stepped back) keep their heap entry; deleted ones are skipped.
      .then(() => this.store.expiry.requeue(due))
      .catch((err) => {
        // Lost the lease, a full disk, a closing store: the keys stay due and are tried again.
        this.store.expiry.requeue(due)
        this.logger.debug('expiry write failed; will retry', { err, keys: due.length })
      })
      .finally(() => {
        this.writing = false
      })
  }

  close(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
  }
}
