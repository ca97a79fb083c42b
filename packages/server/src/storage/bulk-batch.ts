import type { Level } from 'level'

type ChainedBatch = ReturnType<Level<Buffer, Buffer>['batch']>

/** The private put every abstract-level chained batch implements (classic-level: a copy into its native batch). */
interface PrivatePut {
  _put(key: Buffer, value: Buffer, options: object): void
  _del(key: Buffer, options: object): void
}

const NO_OPTIONS = {}

/**
 * Puts many records into a chained batch of the root LevelDB without
 * abstract-level's per-put work: its public put() checks the batch's state,
 * the key and the value, spreads an operation object (options, encodings),
 * runs both through their encodings and prefixes the key, all before it
 * calls the implementation's _put(); for the records of a full sync, which
 * arrive by the million already as full LevelDB keys (storage prefix
 * included) and Buffers, that work is the part of each put the replica's
 * main thread can skip. Only for Buffers and keys of the root db, where
 * put() would pass them to _put() unchanged.
 *
 * The batch's write() writes nothing when its public count is 0, so the
 * first record goes through put(), which counts it. While the db has a
 * 'write' listener or a prewrite hook (tests watch what is written), every
 * record goes through put(), so that they see each one.
 */
export class BulkBatch {
  /** Whether a record may skip put(): once one was counted, and only while nothing watches the db's writes. */
  private direct = false
  private readonly watched: boolean

  constructor(
    db: Level<Buffer, Buffer>,
    readonly batch: ChainedBatch,
  ) {
    // abstract-level marks a hook with no function added as noop (not in its types).
    this.watched = db.listenerCount('write') > 0 || (db.hooks.prewrite as { noop?: boolean }).noop !== true
  }

  put(key: Buffer, value: Buffer): void {
    if (this.direct) {
      ;(this.batch as unknown as PrivatePut)._put(key, value, NO_OPTIONS)
    } else {
      this.batch.put(key, value)
      this.direct = !this.watched
    }
  }

  /** As put(), for a delete: the private _del (classic-level: a delete appended to its native batch). */
  del(key: Buffer): void {
    if (this.direct) {
      ;(this.batch as unknown as PrivatePut)._del(key, NO_OPTIONS)
    } else {
      this.batch.del(key)
      this.direct = !this.watched
    }
  }
}
