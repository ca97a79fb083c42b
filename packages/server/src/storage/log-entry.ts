import { Packr, type Value } from '@tandem/protocol'

/**
 * The write-log entry: one per write request, whatever the mode. Single-node
 * and master/replica use seq/epoch; multi-master uses origin/originSeq (the
 * per-origin cursors) and hlc (last-writer-wins) or vv (vector clocks). The
 * same bytes are stored in the log and streamed to downstreams untouched.
 *
 * Encoded as a msgpack array so the field names are not repeated in every
 * entry; new optional fields are only ever appended:
 *
 *   [seq, epoch, origin, originSeq, hlc, ops, vv?]
 *   ops: [[OP_PUT, key, value] | [OP_DEL, key], ...]
 */
export const OP_PUT = 0
export const OP_DEL = 1

export type EntryOp = [typeof OP_PUT, string, Value] | [typeof OP_DEL, string]

export interface LogEntry {
  /** Position in this node's log: consecutive, starting at 1. */
  seq: number
  /** Failover epoch the entry was written in. */
  epoch: number
  /** Node id that accepted the write from a client. */
  origin: string
  /** The entry's seq in its origin's log. */
  originSeq: number
  /** Hybrid logical clock timestamp of the write at its origin. */
  hlc: number
  ops: EntryOp[]
  /** Version vector (vclock mode only): origin node id -> counter. */
  vv?: Record<string, number>
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, int64AsType: 'number' })

export function encodeEntry(entry: LogEntry): Buffer {
  const fields: unknown[] = [entry.seq, entry.epoch, entry.origin, entry.originSeq, entry.hlc, entry.ops]
  if (entry.vv !== undefined) fields.push(entry.vv)
  return packr.pack(fields)
}

export function decodeEntry(bytes: Uint8Array): LogEntry {
  const fields = packr.unpack(bytes as Buffer) as unknown[]
  if (!Array.isArray(fields) || fields.length < 6) throw new Error('malformed log entry')
  const [seq, epoch, origin, originSeq, hlc, ops, vv] = fields as [
    number,
    number,
    string,
    number,
    number,
    EntryOp[],
    Record<string, number> | undefined,
  ]
  const entry: LogEntry = { seq, epoch, origin, originSeq, hlc, ops }
  if (vv !== undefined) entry.vv = vv
  return entry
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
