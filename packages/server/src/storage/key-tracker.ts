import type { AbstractChainedBatch, AbstractSublevel } from 'abstract-level'
import type { Level } from 'level'
import { ConvergenceDigest } from './convergence.js'
import { DECODE_SPAN, isTombstoneRecord, type KeyRecord, readRecord, siblingCountOf } from './record.js'
import type { VersionVectorObject } from './version-vector.js'

/**
 * What a multi-master store keeps about its keys besides their records,
 * updated in the same batch as every change to a key:
 *
 * - the convergence digest (convergence.ts);
 * - the tombstone index: every key that is deleted but still held as a
 *   tombstone, with what must be stable before it may be collected (the
 *   deleting write's dot under lww, the whole causal context under vclock)
 *   and when it was deleted, so collection and its backlog need no scan
 *   of the data;
 * - counts for status: tombstones, keys with concurrent values.
 *
 * A group keeps its changes apart (a KeyGroup, from begin()) and adds them
 * to the current state once its batch is written, so that a group that
 * fails leaves all of it as it was, and a group may be built while the one
 * before it is being written (pipelined group commit): its changes do not
 * depend on that one's. Its batch persists the state as it will be with
 * them (pending()), read once the group before is written.
 *
 *   tomb  user key -> {"r": {origin: counter}, "t": hlc}
 */

type Db = Level<Buffer, Buffer>
type Batch = AbstractChainedBatch<Db, Buffer, Buffer>
type Sublevel = AbstractSublevel<Db, string | Buffer | Uint8Array, Buffer, Buffer>

export interface KeyCounts {
  /** Deleted keys still held as tombstones. */
  tombstones: number
  /** Keys holding more than one concurrent value. */
  siblingKeys: number
  /** The most concurrent values one key has held since the data dir was created. */
  maxSiblings: number
}

/** A tombstone's entry in the index. */
interface TombstoneInfo {
  /** Per origin, the counter every member must hold before the tombstone may go. */
  r: VersionVectorObject
  /** HLC timestamp of the delete. */
  t: number
}

export class KeyTracker {
  readonly digest: ConvergenceDigest
  counts: KeyCounts
  readonly tombPrefix: Buffer
  /**
   * Tombstones put into the index by the groups written since this tracker
   * was made, counted once their batch is in LevelDB (KeyGroup.commit,
   * tombsWritten). Only a group puts one, so while this stays the same an
   * index read empty stays empty.
   */
  tombsAdded = 0

  constructor(
    readonly tombs: Sublevel,
    digest: ConvergenceDigest,
    counts: KeyCounts,
    readonly maxSiblings: number,
  ) {
    this.digest = digest
    this.counts = counts
    this.tombPrefix = Buffer.from(tombs.prefix)
  }

  /** Starts a group's changes. */
  begin(): KeyGroup {
    return new KeyGroup(this)
  }
}

/** Where pending() adds a group's digest changes to the current digest, to encode them: one for every group. */
const scratchDigest = new ConvergenceDigest()

/** One group's changes to what the tracker keeps: from nothing, added to the tracker's state once written. */
export class KeyGroup {
  /** The group's changes to the digest's sums (mod 2^64), from zero. */
  private readonly delta = new ConvergenceDigest()
  private tombstones = 0
  /** Tombstones the group puts into the index (tombstones above is the net count). */
  private tombsPut = 0
  private siblingKeys = 0
  /** The most concurrent values a key of the group holds. */
  private most = 0
  /** Keys of the group whose values number more than maxSiblings. */
  readonly overCap: Buffer[] = []

  constructor(private readonly tracker: KeyTracker) {}

  /**
   * The key `key` (user bytes; from `keyStart`, as in a data key) goes from
   * record `before` to `after` (undefined: none) in this group's batch;
   * `afterSpan` as ConvergenceDigest.change takes it.
   */
  change(
    batch: Batch,
    key: Uint8Array,
    before: Buffer | undefined,
    after: Buffer | undefined,
    hlc: number,
    keyStart = 0,
    afterSpan = DECODE_SPAN,
  ): void {
    this.delta.change(key, before, after, keyStart, afterSpan)
    // Read from the records' headers: only a new tombstone's record is decoded.
    const wasTomb = before !== undefined && isTombstoneRecord(before)
    const isTomb = after !== undefined && isTombstoneRecord(after)
    const nowCount = after === undefined ? 0 : siblingCountOf(after)
    // Only what keeps the key itself (the tombstone index, the keys over the cap) needs a view of its bytes.
    if (keyStart !== 0 && (isTomb || wasTomb || nowCount > this.tracker.maxSiblings)) key = key.subarray(keyStart)
    if (isTomb) {
      const info: TombstoneInfo = { r: requirement(readRecord(after)), t: hlc }
      batch.put(Buffer.concat([this.tracker.tombPrefix, key]), Buffer.from(JSON.stringify(info)))
      this.tombsPut++
    } else if (wasTomb) {
      batch.del(Buffer.concat([this.tracker.tombPrefix, key]))
    }
    this.tombstones += (isTomb ? 1 : 0) - (wasTomb ? 1 : 0)
    const wasSiblings = before !== undefined && siblingCountOf(before) > 1 ? 1 : 0
    this.siblingKeys += (nowCount > 1 ? 1 : 0) - wasSiblings
    if (nowCount > this.most) this.most = nowCount
    if (nowCount > this.tracker.maxSiblings) this.overCap.push(Buffer.from(key))
  }

  /**
   * The digest and counts as they will be once the group is written, to
   * persist with it: the current state with the group's changes (the
   * counts null when the group leaves them as they are). Read
   * once every group before it is written (its own changes are then the
   * only ones not yet in the current state).
   */
  pending(): { digest: Buffer; counts: KeyCounts | null } {
    scratchDigest.copyFrom(this.tracker.digest)
    scratchDigest.add(this.delta)
    return { digest: scratchDigest.encode(), counts: this.countsChanged() ? this.countsAfter() : null }
  }

  /**
   * Whether the group changes the counts: puts over keys that are neither
   * tombstones nor hold concurrent values (most groups) leave them as
   * persisted, and their batch need not write them again.
   */
  private countsChanged(): boolean {
    return this.tombstones !== 0 || this.siblingKeys !== 0 || this.most > this.tracker.counts.maxSiblings
  }

  /**
   * The group's batch is written: its changes join the current state.
   * `written` false: they join before the batch is in LevelDB (a snapshot
   * chunk's, current at once), and the caller calls tombsWritten() once it
   * is, so that a collection pass that reads the index meanwhile and finds
   * it empty does not take it for empty after the write.
   */
  commit(written = true): void {
    this.tracker.digest.add(this.delta)
    this.tracker.counts = this.countsAfter()
    if (written) this.tombsWritten()
  }

  /** The group's tombstones are in the index (see KeyTracker.tombsAdded). */
  tombsWritten(): void {
    this.tracker.tombsAdded += this.tombsPut
  }

  private countsAfter(): KeyCounts {
    const counts = this.tracker.counts
    return {
      tombstones: counts.tombstones + this.tombstones,
      siblingKeys: counts.siblingKeys + this.siblingKeys,
      maxSiblings: Math.max(counts.maxSiblings, this.most),
    }
  }
}

/** What must be stable before a tombstone may be collected. */
function requirement(record: KeyRecord): VersionVectorObject {
  if (record.body.kind === 'siblings') return record.body.context
  const v = record.version
  return v ? { [v.origin]: v.counter } : {}
}

export function decodeTombstoneInfo(bytes: Uint8Array): TombstoneInfo {
  return JSON.parse(Buffer.from(bytes).toString('utf8')) as TombstoneInfo
}
