import type { AbstractChainedBatch, AbstractSublevel } from 'abstract-level'
import type { Level } from 'level'
import { ConvergenceDigest } from './convergence.js'
import { isTombstoneRecord, type KeyRecord, readRecord, siblingCountOf } from './record.js'
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
 * A group that fails leaves all of it as it was: changes go to a pending
 * copy that commit() makes current once the batch is written.
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
  private readonly pendingDigest = new ConvergenceDigest()
  private pendingCounts: KeyCounts
  private readonly tombPrefix: Buffer
  /** Keys of the group in progress whose values number more than maxSiblings. */
  overCap: Buffer[] = []

  constructor(
    readonly tombs: Sublevel,
    digest: ConvergenceDigest,
    counts: KeyCounts,
    private readonly maxSiblings: number,
  ) {
    this.digest = digest
    this.counts = counts
    this.pendingCounts = { ...counts }
    this.pendingDigest.copyFrom(digest)
    this.tombPrefix = Buffer.from(tombs.prefix)
  }

  /** Starts a group: pending state from the current one. */
  begin(): void {
    this.pendingDigest.copyFrom(this.digest)
    this.pendingCounts = { ...this.counts }
    this.overCap = []
  }

  /** The key `key` (user bytes) goes from record `before` to `after` (undefined: none) in this group's batch. */
  change(batch: Batch, key: Uint8Array, before: Buffer | undefined, after: Buffer | undefined, hlc: number): void {
    this.pendingDigest.change(key, before, after)
    // Read from the records' headers: only a new tombstone's record is decoded.
    const wasTomb = before !== undefined && isTombstoneRecord(before)
    const isTomb = after !== undefined && isTombstoneRecord(after)
    if (isTomb) {
      const info: TombstoneInfo = { r: requirement(readRecord(after)), t: hlc }
      batch.put(Buffer.concat([this.tombPrefix, key]), Buffer.from(JSON.stringify(info)))
    } else if (wasTomb) {
      batch.del(Buffer.concat([this.tombPrefix, key]))
    }
    this.pendingCounts.tombstones += (isTomb ? 1 : 0) - (wasTomb ? 1 : 0)
    const wasSiblings = before !== undefined && siblingCountOf(before) > 1 ? 1 : 0
    const nowCount = after === undefined ? 0 : siblingCountOf(after)
    this.pendingCounts.siblingKeys += (nowCount > 1 ? 1 : 0) - wasSiblings
    if (nowCount > this.pendingCounts.maxSiblings) this.pendingCounts.maxSiblings = nowCount
    if (nowCount > this.maxSiblings) this.overCap.push(Buffer.from(key))
  }

  /** The pending digest and counts, to persist with the group. */
  pending(): { digest: Buffer; counts: KeyCounts } {
    return { digest: this.pendingDigest.encode(), counts: this.pendingCounts }
  }

  /** The group's batch is written: its changes are the current state. */
  commit(): void {
    this.digest.copyFrom(this.pendingDigest)
    this.counts = this.pendingCounts
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
