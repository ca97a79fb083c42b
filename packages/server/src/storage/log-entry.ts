import { Packr, plainUnpackr } from '@tandem/protocol'
import { writeEntry } from './entry-writer.js'
import { TextBytes, type WriteValue } from './text-bytes.js'

/**
 * The write-log entry: one per write request, whatever the mode. It has two
 * parts that must not be confused:
 *
 * - placement: where the entry sits in one node's log (seq, and the epoch
 *   that seq belongs to). A replica copies its upstream's log, so it keeps
 *   the placement; a multi-master peer appends the entry to its own log and
 *   gives it its own placement.
 * - identity: what the write is, the same on every node that ever holds
 *   it: the origin (the node that took the write from a client), the
 *   origin's own dense counter (1, 2, 3, ... for that origin's writes only,
 *   never reused), the origin's hybrid logical clock timestamp, and the ops.
 *   Multi-master deduplicates by (origin, originSeq) and orders conflicting
 *   writes by (hlc, origin).
 *
 * Encoded as one msgpack array, placement first, so that the identity is
 * one contiguous run of bytes that peers forward verbatim (placeEntry()
 * swaps the placement in front of it):
 *
 *   [seq, epoch, origin, originSeq, hlc, ops]
 *   ops: [[OP_PUT, key, value, options?] | [OP_DEL, key, options?] | [OP_COLLECT, key], ...]
 *   options: a msgpack map; unknown keys are ignored by older readers of
 *   the ops they do understand, so new per-op fields need no new format:
 *     c  causal context (vclock mode): {origin: counter} that the write saw
 *     x  (put) when the value expires, in ms since 1970: decided by the
 *        master when it takes the write, so every node stores the same
 *
 * The field list only ever grows at the end; readers ignore fields they do
 * not know.
 *
 * An entry with the empty origin ('' and originSeq 0) is not a write but
 * this node's own housekeeping, kept in its log so that its replicas do the
 * same at the same point: OP_COLLECT drops a key's tombstone once it is
 * causally stable; an entry with no op marks where the data changed
 * without entries (a merged snapshot). Peers never exchange them.
 */
export const OP_PUT = 0
export const OP_DEL = 1
/** Drops the key's record, which is a tombstone (multi-master housekeeping; see above). */
export const OP_COLLECT = 2

/** The origin of housekeeping entries, which are no one's writes. */
export const NO_ORIGIN = ''

/** Per-op fields beyond key and value. */
export interface OpOptions {
  /** Causal context: for each origin, the highest counter the writer had seen of this key. */
  c?: Record<string, number>
  /** (put) When the value expires, in ms since 1970. */
  x?: number
}

/**
 * An op as a write carries it. A put's value may be a TextBytes (a string
 * as its UTF-8) on its way in; it is logged as the string, so decoded
 * entries hold strings and byte arrays only.
 */
export type EntryOp =
  | [typeof OP_PUT, string, WriteValue]
  | [typeof OP_PUT, string, WriteValue, OpOptions]
  | [typeof OP_DEL, string]
  | [typeof OP_DEL, string, OpOptions]
  | [typeof OP_COLLECT, string]

/** Where an entry sits in one node's log. */
interface EntryPlacement {
  /** Position in this node's log: consecutive, starting at 1. */
  seq: number
  /** Fail-over epoch of that position. */
  epoch: number
}

/** What the write is, on every node that holds it. */
export interface EntryIdentity {
  /** Origin id of the node that took the write from a client. */
  origin: string
  /** The origin's dense counter: its n-th write has originSeq n. */
  originSeq: number
  /** Hybrid logical clock timestamp of the write at its origin (see hlc.ts). */
  hlc: number
}

export interface LogEntry extends EntryPlacement, EntryIdentity {
  ops: EntryOp[]
}

const options = { useRecords: false, mapsAsObjects: true, moreTypes: false, int64AsType: 'number' } as const
const packr = new Packr(options)
// Entries from a peer or an upstream arrive as bytes another process wrote.
const unpackr = plainUnpackr(options)

/** The entry's bytes: written by hand (entry-writer.ts), or by msgpackr for a shape the writer leaves to it. */
export function encodeEntry(entry: LogEntry): Buffer {
  const fields = [entry.seq, entry.epoch, entry.origin, entry.originSeq, entry.hlc, entry.ops]
  return (
    writeEntry(fields) ??
    packr.pack([entry.seq, entry.epoch, entry.origin, entry.originSeq, entry.hlc, entry.ops.map(withStrings)])
  )
}

/** The op with a TextBytes value as its string, for msgpackr (which would write the object as a map). */
function withStrings(op: EntryOp): EntryOp {
  if (op[0] !== OP_PUT || !(op[2] instanceof TextBytes)) return op
  return op.length === 4 ? [OP_PUT, op[1], op[2].toString(), op[3]] : [OP_PUT, op[1], op[2].toString()]
}

export function decodeEntry(bytes: Uint8Array): LogEntry {
  const fields = unpackr.unpack(bytes as Buffer) as unknown[]
  if (!Array.isArray(fields) || fields.length < 6) throw new Error('malformed log entry')
  const [seq, epoch, origin, originSeq, hlc, ops] = fields as [number, number, string, number, number, EntryOp[]]
  return { seq, epoch, origin, originSeq, hlc, ops }
}

/** The causal context of an op, when it carries one. */
export function opOptions(op: EntryOp): OpOptions | undefined {
  if (op[0] === OP_COLLECT) return undefined
  const options = op[0] === OP_PUT ? op[3] : op[2]
  return options !== null && typeof options === 'object' ? (options as OpOptions) : undefined
}

/**
 * The same entry with another placement: the array header and the new seq
 * and epoch, then the identity bytes (from `identityAt`, see entry-scan.ts)
 * copied unchanged.
 */
export function placeEntry(raw: Buffer, identityAt: number, seq: number, epoch: number): Buffer {
  const header = arrayHeaderLength(raw[0])
  const seqBytes = uintBytes(seq)
  const epochBytes = uintBytes(epoch)
  if (seqBytes === 0 || epochBytes === 0) {
    // Past 32 bits msgpackr writes a float64: leave that to it.
    const placement = packr.pack([seq, epoch])
    const placementHeader = arrayHeaderLength(placement[0])
    const out = Buffer.allocUnsafe(header + placement.length - placementHeader + raw.length - identityAt)
    out.set(raw.subarray(0, header), 0)
    out.set(placement.subarray(placementHeader), header)
    out.set(raw.subarray(identityAt), header + placement.length - placementHeader)
    return out
  }
  // The placement written as msgpackr writes these integers, straight into
  // the one buffer (this runs for every entry a peer's frame brings).
  const out = Buffer.allocUnsafe(header + seqBytes + epochBytes + raw.length - identityAt)
  for (let i = 0; i < header; i++) out[i] = raw[i]
  writeUint(out, header, seq, seqBytes)
  writeUint(out, header + seqBytes, epoch, epochBytes)
  out.set(raw.subarray(identityAt), header + seqBytes + epochBytes)
  return out
}

/** The most bytes placeEntryAt() writes for `raw`: its header, two placement integers of up to 5 bytes, its identity. */
export function placedEntryBytes(raw: Buffer, identityAt: number): number {
  return arrayHeaderLength(raw[0]) + 10 + raw.length - identityAt
}

/**
 * placeEntry() written into `out` at `at` (room for placedEntryBytes()),
 * with no buffer of its own: returns where the entry ends, or -1 (nothing
 * written) when the seq or the epoch is past 32 bits, which placeEntry()
 * leaves to msgpackr. The same bytes as placeEntry().
 */
export function placeEntryAt(
  out: Buffer,
  at: number,
  raw: Buffer,
  identityAt: number,
  seq: number,
  epoch: number,
): number {
  const seqBytes = uintBytes(seq)
  const epochBytes = uintBytes(epoch)
  if (seqBytes === 0 || epochBytes === 0) return -1
  const header = arrayHeaderLength(raw[0])
  const start = at + header + seqBytes + epochBytes
  let end: number
  if (start - identityAt >= at) {
    // The whole entry copied so that its identity lands at `start`: a copy
    // from the entry's first byte makes no view of it (a copy from an
    // offset does, one object per entry); the bytes in front of the
    // identity are then written over with the new header and placement.
    // Only while they stay inside this entry's span (a placement at least
    // as wide as the old one): never over the entry before it.
    end = start - identityAt + raw.copy(out, start - identityAt)
  } else {
    end = start + raw.copy(out, start, identityAt)
  }
  for (let i = 0; i < header; i++) out[at + i] = raw[i]
  writeUint(out, at + header, seq, seqBytes)
  writeUint(out, at + header + seqBytes, epoch, epochBytes)
  return end
}

/** Bytes of a msgpack unsigned integer under 2^32 as msgpackr writes it; 0 for anything else. */
function uintBytes(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) return 0
  return n < 0x80 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5
}

function writeUint(out: Buffer, at: number, n: number, bytes: number): void {
  if (bytes === 1) out[at] = n
  else if (bytes === 2) {
    out[at] = 0xcc
    out[at + 1] = n
  } else if (bytes === 3) {
    out[at] = 0xcd
    out.writeUInt16BE(n, at + 1)
  } else {
    out[at] = 0xce
    out.writeUInt32BE(n, at + 1)
  }
}

function arrayHeaderLength(first: number): number {
  if ((first & 0xf0) === 0x90) return 1
  if (first === 0xdc) return 3
  if (first === 0xdd) return 5
  throw new Error('log entry is not a msgpack array')
}

/** Log keys are 8-byte big-endian seqs, so LevelDB's byte order is seq order. */
export function seqKey(seq: number): Buffer {
  return prefixedSeqKey(EMPTY, seq)
}

/** `prefix` followed by the seq's 8-byte key, in one allocation (no BigInt). */
export function prefixedSeqKey(prefix: Buffer, seq: number): Buffer {
  const key = Buffer.allocUnsafe(prefix.length + 8)
  prefix.copy(key, 0)
  key.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), prefix.length)
  key.writeUInt32BE(seq >>> 0, prefix.length + 4)
  return key
}

const EMPTY = Buffer.alloc(0)

export function keySeq(key: Uint8Array): number {
  return Number(Buffer.from(key.buffer, key.byteOffset, key.byteLength).readBigUInt64BE(0))
}
