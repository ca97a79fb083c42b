import type { ApplyOp } from '../storage/entry-scan.js'
import type { EntryIdentity } from '../storage/log-entry.js'
import {
  compareBytes,
  DECODE_SPAN,
  PUT_RECORD_SPAN,
  readRecord,
  recordHlc,
  recordVersion,
  utf8LwwRecord,
  type Version,
  versionPutRecord,
  writeRecord,
} from '../storage/record.js'
import { type ConflictResolver, KEEP } from '../storage/resolver.js'
import type { WriteValue } from '../storage/text-bytes.js'

/**
 * Last-writer-wins: a key holds the one write with the greatest version,
 * compared as integers, field by field:
 *
 *   (hlc, origin by its UTF-8 bytes, counter)
 *
 * hlc is one integer below 2^53 (see hlc.ts), so the comparison is exact;
 * the origin breaks ties between nodes, the counter between two writes of
 * one origin (which an HLC never stamps alike anyway). A delete is a write
 * like any other: it leaves a tombstone with its version, so an older put
 * that arrives later still loses (see tombstone-gc.ts for when it goes).
 *
 * The same set of writes gives the same record, byte for byte, in whatever
 * order and however often they arrive: the record is the maximum.
 */
function compareVersions(a: Version, b: Version): number {
  if (a.hlc !== b.hlc) return a.hlc < b.hlc ? -1 : 1
  return compareBytes(a.origin, b.origin) || a.counter - b.counter
}

function versionOf(write: EntryIdentity): Version {
  return { hlc: write.hlc, counter: write.originSeq, origin: write.origin }
}

interface LwwStats {
  /** Writes that arrived older than what the key held: acknowledged somewhere, and gone. */
  lost: number
}

export class LwwResolver implements ConflictResolver {
  readonly name = 'lww'
  readonly readsCurrent = true
  readonly stats: LwwStats = { lost: 0 }

  resolve(op: ApplyOp, write: EntryIdentity, current: Buffer | undefined): Buffer | typeof KEEP {
    if (current !== undefined && this.holds(current, write)) return KEEP
    // The record straight from the write's fields: no version object for a write that wins. An op's
    // value is UTF-8 unless binary (see ApplyOp), so it is not checked again here.
    return utf8LwwRecord(write.hlc, write.originSeq, write.origin, op.value, op.binary, op.key)
  }

  /**
   * A value's record is utf8LwwRecord's, sealed for the op's key (a
   * version, then the value, which is UTF-8 unless binary): the span
   * versionPutRecord's records have. A tombstone's is left to be read.
   */
  recordSpan(op: ApplyOp): number {
    return op.value === null ? DECODE_SPAN : PUT_RECORD_SPAN
  }

  /**
   * resolve() of a put with no options that this node takes from a client,
   * its value as the write carries it: the same record, sealed for the
   * user key (`key` from `keyStart`), built from the value in place.
   */
  resolvePut(
    write: EntryIdentity,
    value: WriteValue,
    key: Uint8Array,
    keyStart: number,
    current: Buffer | undefined,
  ): Buffer | typeof KEEP {
    if (current !== undefined && this.holds(current, write)) return KEEP
    return versionPutRecord(write.hlc, write.originSeq, write.origin, value, key, keyStart)
  }

  /** Whether `current` wins over (or is) `write`'s version: then the key keeps it, and a write it beat is counted lost. */
  private holds(current: Buffer, write: EntryIdentity): boolean {
    // Unequal HLCs decide alone: the held version's origin and counter are not read.
    const heldHlc = recordHlc(current)
    const held = heldHlc === write.hlc || Number.isNaN(heldHlc) ? recordVersion(current) : undefined
    // A record with no version (written before the node was multi-master) loses to any write.
    const c = held ? compareVersions(held, versionOf(write)) : heldHlc >= 0 ? heldHlc - write.hlc : -1
    if (c > 0) this.stats.lost++
    return c >= 0
  }

  merge(current: Buffer | undefined, incoming: Buffer): Buffer | typeof KEEP {
    const record = readRecord(incoming)
    const theirs = record.version
    if (!theirs || record.body.kind === 'siblings') throw new Error('a peer sent a record that is not last-writer-wins')
    if (current !== undefined) {
      const held = readRecord(current).version
      if (held && compareVersions(held, theirs) >= 0) return KEEP
    }
    // Re-encoded, so only the fields that replicate are kept.
    return writeRecord({ version: theirs, expiresAt: record.expiresAt, body: record.body })
  }
}
