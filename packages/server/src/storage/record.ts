import { isUtf8 } from 'node:buffer'
import type { Value } from '@tandem/protocol'
import { crc32c } from './crc32c.js'
import { TextBytes, type WriteValue } from './text-bytes.js'

/**
 * How a key's state sits in the data sublevel: one tag byte, then bytes.
 *
 *   0x00  a string value: its UTF-8 bytes            plain records: one byte of overhead and
 *   0x01  a binary value: its bytes                  nothing to parse (single-master, replicas)
 *   0x10  a record with metadata (multi-master, and later compare-and-set and TTL):
 *
 *     flags   u8  which optional fields follow (bits 0-5) and what the body is (bits 6-7)
 *     fields      in this order, each only when its flag bit is set:
 *       0x08 CHECKSUM u32  CRC-32C of the key's bytes, then of the record without these
 *                          four bytes (sealRecord); first, so it sits at a fixed offset
 *       0x01 MOD_SEQ  u64  seq of this node's write that last changed the key (compare-and-set)
 *       0x02 EXPIRES  u64  wall ms from which the key reads as missing (TTL)
 *       0x04 VERSION  u64 hlc, u64 counter, origin: the write that holds the key (last-writer-wins)
 *       0x10-0x20     reserved
 *     body        by the kind in bits 6-7:
 *       0x00 VALUE      u8 type (0x00 string, 0x01 binary), then the value's bytes to the end
 *       0x40 TOMBSTONE  nothing: the key is deleted, by the write VERSION names
 *       0x80 SIBLINGS   u16 count, then per sibling in dot order (origin bytes, then counter):
 *                       origin, u64 counter, u64 hlc, u8 type, u32 length, bytes;
 *                       then the causal context: u16 count, per origin in byte order:
 *                       origin, u64 counter. No sibling and a context: deleted with context.
 *       0xc0            reserved
 *
 *   (u64: big-endian, always below 2^53; origin: u8 length, then its bytes)
 *   0x02-0x0f, 0x11-0xff: reserved.
 *
 * A record whose tag, flag or kind this build does not know was written by a
 * newer tandem: it is refused with an error, never read as something else.
 * The order of the fields is fixed, so a record's bytes are a function of
 * its key and contents: two nodes holding the same state hold the same bytes.
 *
 * Every record this build stores is sealed (CHECKSUM), because LevelDB as
 * classic-level opens it checks none of its own block checksums on reads: a
 * byte that rots in a table would be read back as data. The key is in the
 * sum, so a record read under another key does not pass either. Records
 * written before records carried one (plain records, and tag 0x10 without
 * CHECKSUM) still read, unchecked.
 */
const TAG_STRING = 0x00
const TAG_BINARY = 0x01
const TAG_META = 0x10
/** First byte of a record with metadata. */
export const RECORD_META = TAG_META

const F_MOD_SEQ = 0x01
const F_EXPIRES = 0x02
const F_VERSION = 0x04
const F_CHECKSUM = 0x08
const F_KNOWN = F_CHECKSUM | F_MOD_SEQ | F_EXPIRES | F_VERSION
/** Where a sealed record's checksum sits, and where its other fields start. */
const CHECKSUM_AT = 2
const SEALED_FIELDS_AT = CHECKSUM_AT + 4
const KIND_MASK = 0xc0
const KIND_VALUE = 0x00
const KIND_TOMBSTONE = 0x40
const KIND_SIBLINGS = 0x80

/** The write that holds a key under last-writer-wins: compared by (hlc, origin), then counter. */
export interface Version {
  hlc: number
  /** The write's originSeq: with the origin, its dot. */
  counter: number
  origin: string
}

/** One of a key's concurrent values under vclock (a dotted version vector's dot and value). */
export interface Sibling {
  origin: string
  counter: number
  hlc: number
  value: Value
}

type RecordBody =
  | { kind: 'value'; value: Value }
  | { kind: 'tombstone' }
  | { kind: 'siblings'; siblings: Sibling[]; context: Record<string, number> }

export interface KeyRecord {
  modSeq?: number
  expiresAt?: number
  version?: Version
  body: RecordBody
}

/**
 * The modification seq compare-and-set sees for a live record. Records
 * written before they carried one (a data dir or backup of an older build)
 * have none: they get one fixed seq no entry can have, the same on every
 * node, so `ifSeq: 0` (absent) never matches them and a seq read from one
 * holds until the key is written again.
 */
export const UNKNOWN_MOD_SEQ = Number.MAX_SAFE_INTEGER

export function modSeqOf(record: KeyRecord): number {
  return record.modSeq ?? UNKNOWN_MOD_SEQ
}

export function encodeRecord(value: Value): Buffer {
  if (typeof value === 'string') {
    const length = Buffer.byteLength(value, 'utf8')
    const out = Buffer.allocUnsafe(length + 1)
    out[0] = TAG_STRING
    out.write(value, 1, 'utf8')
    return out
  }
  return recordFromBytes(value, true)
}

/**
 * A value's sealed record with its modification seq (MOD_SEQ, for
 * compare-and-set): what a single-master node stores for every put, the
 * seq being the put's entry's. The same bytes as sealRecord(key,
 * writeRecord({ modSeq, body: { kind: 'value' } })), without building the
 * value or copying the record. `key` is the user key's bytes from `keyStart`.
 */
export function seqRecordFromBytes(
  key: Uint8Array,
  keyStart: number,
  bytes: Uint8Array,
  binary: boolean,
  modSeq: number,
  expiresAt?: number,
): Buffer {
  const at = valueAt(expiresAt)
  const out = Buffer.allocUnsafe(at + 1 + bytes.byteLength)
  out.set(bytes, at + 1)
  return sealSeqRecord(out, key, keyStart, binary, modSeq, expiresAt)
}

export function seqRecord(
  key: Uint8Array,
  keyStart: number,
  value: WriteValue,
  modSeq: number,
  expiresAt?: number,
): Buffer {
  if (value instanceof TextBytes) return seqRecordFromBytes(key, keyStart, value.bytes, false, modSeq, expiresAt)
  if (typeof value !== 'string') return seqRecordFromBytes(key, keyStart, value, true, modSeq, expiresAt)
  // The string's UTF-8 written in place: no intermediate buffer of the value.
  const at = valueAt(expiresAt)
  const out = Buffer.allocUnsafe(at + 1 + Buffer.byteLength(value, 'utf8'))
  out.write(value, at + 1, 'utf8')
  return sealSeqRecord(out, key, keyStart, false, modSeq, expiresAt)
}

/** Where a seq record's value type byte is: after the header, MOD_SEQ and EXPIRES when there is one. */
function valueAt(expiresAt: number | undefined): number {
  return expiresAt === undefined ? 14 : 22
}

/** Fills in the header of a seq record whose value bytes are in place, and its checksum. */
function sealSeqRecord(
  out: Buffer,
  key: Uint8Array,
  keyStart: number,
  binary: boolean,
  modSeq: number,
  expiresAt: number | undefined,
): Buffer {
  const at = valueAt(expiresAt)
  out[0] = TAG_META
  out[1] = F_CHECKSUM | F_MOD_SEQ | (expiresAt === undefined ? 0 : F_EXPIRES) | KIND_VALUE
  out.writeUInt32BE(Math.floor(modSeq / 0x1_0000_0000), 6)
  out.writeUInt32BE(modSeq >>> 0, 10)
  if (expiresAt !== undefined) {
    out.writeUInt32BE(Math.floor(expiresAt / 0x1_0000_0000), 14)
    out.writeUInt32BE(expiresAt >>> 0, 18)
  }
  out[at] = binary ? TAG_BINARY : TAG_STRING
  out.writeUInt32BE(recordSum(key, keyStart, out), CHECKSUM_AT)
  return out
}

/** CRC-32C of the key (from keyStart), then of a sealed record without its checksum field. */
function recordSum(key: Uint8Array, keyStart: number, record: Uint8Array, keyEnd = key.length): number {
  const sum = crc32c(record, 0, CHECKSUM_AT, crc32c(key, keyStart, keyEnd))
  return crc32c(record, SEALED_FIELDS_AT, record.length, sum)
}

/** True when the record carries a checksum (was written by a build that seals records). */
export function isSealed(record: Uint8Array): boolean {
  return record[0] === TAG_META && record.length >= SEALED_FIELDS_AT && (record[1] & F_CHECKSUM) !== 0
}

/**
 * The record with its checksum for `key` (bytes from keyStart): a new
 * buffer, the fields shifted by four bytes, for a record written without
 * one (a plain record becomes a tag 0x10 record with no other field); a
 * sealed record gets its sum written again, in a copy.
 */
export function sealRecord(key: Uint8Array, keyStart: number, record: Uint8Array): Buffer {
  let out: Buffer
  if (isSealed(record)) {
    out = Buffer.from(record)
  } else if (record[0] === TAG_META) {
    out = Buffer.allocUnsafe(record.length + 4)
    out[0] = TAG_META
    out[1] = record[1] | F_CHECKSUM
    out.set(record.subarray(2), SEALED_FIELDS_AT)
  } else {
    // A plain record: its tag is the value's type byte of a VALUE body.
    out = Buffer.allocUnsafe(record.length + SEALED_FIELDS_AT)
    out[0] = TAG_META
    out[1] = F_CHECKSUM | KIND_VALUE
    out.set(record, SEALED_FIELDS_AT)
  }
  out.writeUInt32BE(recordSum(key, keyStart, out), CHECKSUM_AT)
  return out
}

/**
 * Whether the record read under `key` (bytes from keyStart to keyEnd) is
 * the one written there: its checksum matches. A record without one (written by an
 * older build) cannot be checked and passes, unless `sealedOnly` (a data
 * dir whose every record was written sealed), where a missing checksum is
 * itself damage (a flipped tag or flag bit).
 */
export function recordIntact(
  key: Uint8Array,
  keyStart: number,
  record: Uint8Array,
  sealedOnly = false,
  keyEnd = key.length,
): boolean {
  if (!isSealed(record)) return !sealedOnly
  const stored = ((record[2] << 24) | (record[3] << 16) | (record[4] << 8) | record[5]) >>> 0
  return stored === recordSum(key, keyStart, record, keyEnd)
}

/** When the record expires (ms since 1970; its EXPIRES field), read without decoding the rest; undefined: never. */
export function recordExpiresAt(record: Uint8Array): number | undefined {
  if (record[0] !== TAG_META || (record[1] & F_EXPIRES) === 0) return undefined
  const at = (record[1] & F_CHECKSUM ? SEALED_FIELDS_AT : CHECKSUM_AT) + (record[1] & F_MOD_SEQ ? 8 : 0)
  const buf = Buffer.isBuffer(record) ? record : Buffer.from(record.buffer, record.byteOffset, record.byteLength)
  if (buf.length < at + 8) return undefined
  return buf.readUInt32BE(at) * 0x1_0000_0000 + buf.readUInt32BE(at + 4)
}

/**
 * The record's modification seq (its MOD_SEQ field), read without decoding
 * the rest; undefined when it has none (a plain record of an older build,
 * a multi-master record).
 */
export function recordModSeq(record: Uint8Array): number | undefined {
  if (record[0] !== TAG_META || (record[1] & F_MOD_SEQ) === 0) return undefined
  const at = record[1] & F_CHECKSUM ? SEALED_FIELDS_AT : CHECKSUM_AT
  if (record.byteLength < at + 8) return undefined
  const buf = Buffer.isBuffer(record) ? record : Buffer.from(record.buffer, record.byteOffset, record.byteLength)
  return buf.readUInt32BE(at) * 0x1_0000_0000 + buf.readUInt32BE(at + 4)
}

/** A record from a value already in bytes: a string's UTF-8 bytes, or binary. */
function recordFromBytes(bytes: Uint8Array, binary: boolean): Buffer {
  const out = Buffer.allocUnsafe(bytes.byteLength + 1)
  out[0] = binary ? TAG_BINARY : TAG_STRING
  out.set(bytes, 1)
  return out
}

/** Thrown when a key holds several concurrent values and a single one was asked for. */
export class SiblingsError extends Error {
  constructor(
    readonly siblings: Sibling[],
    readonly context: Record<string, number>,
  ) {
    super(`the key holds ${siblings.length} concurrent values`)
    this.name = 'SiblingsError'
  }
}

/**
 * Where the value type byte of a single-master value record is (tag 0x10,
 * kind VALUE, no VERSION: what every local put stores), found from the
 * flags alone; -1 for any other record, which readRecord decodes whole.
 * The u64 fields it steps over are checked as readRecord checks them.
 */
function plainValueAt(buf: Buffer): number {
  const flags = buf[1]
  if ((flags & (KIND_MASK | F_VERSION | ~F_KNOWN)) !== 0) return -1
  let at = flags & F_CHECKSUM ? SEALED_FIELDS_AT : CHECKSUM_AT
  if (flags & F_MOD_SEQ) {
    if (!safeU64At(buf, at)) return -1
    at += 8
  }
  if (flags & F_EXPIRES) {
    if (!safeU64At(buf, at)) return -1
    at += 8
  }
  const type = buf[at]
  return at < buf.length && (type === TAG_STRING || type === TAG_BINARY) ? at : -1
}

/**
 * Where the value of a local put's record starts (past its type byte), for
 * the read cache to keep what a write leaves: a single-master value record
 * (tag 0x10, kind VALUE, no VERSION) with no TTL; -1 for any other record.
 * `binary` says which type the value is (see writtenIsBinary).
 */
export function writtenValueAt(record: Buffer): number {
  if (record[0] !== TAG_META || (record[1] & F_EXPIRES) !== 0) return -1
  const at = plainValueAt(record)
  return at < 0 ? -1 : at + 1
}

/** Whether the value found by writtenValueAt is binary (else a string's UTF-8). */
export function writtenIsBinary(record: Buffer, valueAt: number): boolean {
  return record[valueAt - 1] === TAG_BINARY
}

/**
 * The value a record holds: undefined for a deleted key (a tombstone, a
 * sibling set with no sibling), the one value of a single sibling, and a
 * SiblingsError for several.
 */
export function decodeRecord(record: Uint8Array): Value | undefined {
  const buf = Buffer.isBuffer(record) ? record : Buffer.from(record.buffer, record.byteOffset, record.byteLength)
  switch (buf[0]) {
    case TAG_STRING:
      return buf.toString('utf8', 1)
    case TAG_BINARY:
      return buf.subarray(1)
    case TAG_META: {
      // Most reads: a local put's record, its value found without a Reader and a KeyRecord.
      const at = plainValueAt(buf)
      if (at >= 0) return buf[at] === TAG_STRING ? buf.toString('utf8', at + 1) : buf.subarray(at + 1)
      const { body } = readRecord(buf)
      if (body.kind === 'value') return body.value
      if (body.kind === 'tombstone' || body.siblings.length === 0) return undefined
      if (body.siblings.length === 1) return body.siblings[0].value
      throw new SiblingsError(body.siblings, body.context)
    }
    default:
      throw new Error(`unknown record tag 0x${(buf[0] ?? 0).toString(16)}: written by a newer tandem?`)
  }
}

/**
 * decodeRecord's value as bytes (a string's UTF-8 bytes): a view into the
 * record, for replies that are bytes anyway (RESP), so a string value is
 * not decoded to a JS string and encoded back.
 */
export function decodeRecordBytes(record: Uint8Array): Buffer | undefined {
  const buf = Buffer.isBuffer(record) ? record : Buffer.from(record.buffer, record.byteOffset, record.byteLength)
  if (buf[0] === TAG_STRING || buf[0] === TAG_BINARY) return buf.subarray(1)
  const at = buf[0] === TAG_META ? plainValueAt(buf) : -1
  if (at >= 0) return buf.subarray(at + 1)
  const value = decodeRecord(buf)
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : value === undefined ? undefined : Buffer.from(value)
}

/** True when the record stands for a deleted key that only metadata keeps (collectable once stable). */
export function isTombstone(record: KeyRecord): boolean {
  return record.body.kind === 'tombstone' || (record.body.kind === 'siblings' && record.body.siblings.length === 0)
}

/**
 * True when the record holds a key: a value or at least one sibling, not a
 * tombstone (a deleted key kept for multi-master). Read from the header
 * without decoding values: the write path asks it of every record it
 * replaces, for the key count.
 */
export function isLiveRecord(record: Uint8Array): boolean {
  if (record[0] !== TAG_META) return true
  const flags = record[1]
  const kind = flags & KIND_MASK
  if (kind === KIND_VALUE) return true
  if (kind === KIND_TOMBSTONE) return false
  let at = flags & F_CHECKSUM ? SEALED_FIELDS_AT : CHECKSUM_AT
  if (flags & F_MOD_SEQ) at += 8
  if (flags & F_EXPIRES) at += 8
  if (flags & F_VERSION) at += 16 + 1 + record[at + 16]
  return ((record[at] << 8) | record[at + 1]) > 0
}

/** versionAt()'s answer for a record that holds no version. */
const NO_VERSION_AT = -1
/** versionAt()'s answer for a record that must be decoded (readRecord) to know its version. */
const DECODE_VERSION_AT = -2

/**
 * Where a record's version fields (hlc u64, counter u64, origin) start,
 * read from its header: NO_VERSION_AT when it holds none, DECODE_VERSION_AT
 * when only readRecord can tell (a tag, flag or kind this build does not
 * know, a malformed field: readRecord then refuses it).
 */
function versionAt(record: Buffer): number {
  const tag = record[0]
  if (tag === TAG_STRING || tag === TAG_BINARY) return NO_VERSION_AT
  const flags = record[1]
  if (tag === TAG_META && (flags & ~(F_KNOWN | KIND_MASK)) === 0 && (flags & KIND_MASK) !== KIND_MASK) {
    if ((flags & F_VERSION) === 0) return NO_VERSION_AT
    let at = flags & F_CHECKSUM ? SEALED_FIELDS_AT : CHECKSUM_AT
    if (flags & F_MOD_SEQ) at += 8
    if (flags & F_EXPIRES) at += 8
    if (safeU64At(record, at) && safeU64At(record, at + 8) && at + 17 <= record.length) {
      if (at + 17 + record[at + 16] <= record.length) return at
    }
  }
  return DECODE_VERSION_AT
}

/**
 * The version a record holds (VERSION), read from its header; undefined
 * when it has none. What readRecord refuses (a tag, flag or kind this
 * build does not know, a malformed field) it refuses too, by decoding.
 */
export function recordVersion(record: Buffer): Version | undefined {
  const at = versionAt(record)
  if (at === NO_VERSION_AT) return undefined
  if (at === DECODE_VERSION_AT) return readRecord(record).version
  return {
    hlc: record.readUInt32BE(at) * 0x1_0000_0000 + record.readUInt32BE(at + 4),
    counter: record.readUInt32BE(at + 8) * 0x1_0000_0000 + record.readUInt32BE(at + 12),
    origin: record.toString('utf8', at + 17, at + 17 + record[at + 16]),
  }
}

/**
 * The HLC of the version a record holds, read from its header: the same
 * as recordVersion(record)?.hlc, -1 when it holds none, NaN when only
 * recordVersion can tell (it decodes, and refuses what readRecord
 * refuses). Last-writer-wins compares versions by HLC first, and a write's
 * HLC nearly always differs from the key's: this answers that comparison
 * without the origin string and version object recordVersion makes.
 */
export function recordHlc(record: Buffer): number {
  const at = versionAt(record)
  if (at === NO_VERSION_AT) return -1
  if (at === DECODE_VERSION_AT) return Number.NaN
  return getU32(record, at) * 0x1_0000_0000 + getU32(record, at + 4)
}

/**
 * A last-writer-wins record: the write's version and its value's bytes (a
 * string's UTF-8 bytes unless `binary`), or a tombstone for null. The same
 * bytes as writeRecord({ version, body }) with the value as a string or a
 * Buffer, built without the string; null when `bytes` should be a string
 * and are not UTF-8 (the string would not give them back): build it that
 * way then. With `key` (the user key's bytes), the record comes sealed for
 * it: the bytes of sealRecord(key, 0, ...) of the same record, in one
 * buffer instead of a second one and a copy (every remote put on the
 * apply path).
 */
export function versionRecord(
  version: Version,
  bytes: Uint8Array | null,
  binary: boolean,
  key?: Uint8Array,
): Buffer | null {
  return lwwRecord(version.hlc, version.counter, version.origin, bytes, binary, key)
}

/** versionRecord() of the version (hlc, counter, origin), given as its fields (a remote write's, with no Version made). */
function lwwRecord(
  hlc: number,
  counter: number,
  origin: string,
  bytes: Uint8Array | null,
  binary: boolean,
  key?: Uint8Array,
): Buffer | null {
  if (bytes !== null && !binary && !isUtf8(bytes)) return null
  return utf8LwwRecord(hlc, counter, origin, bytes, binary, key)
}

/**
 * lwwRecord() of a value whose bytes are known to be UTF-8 unless `binary`
 * (an ApplyOp's: every maker of one checks or encodes them), so never null:
 * the same bytes, with no second check of the value and each field written
 * in place (no Writer, no writeUInt32BE a field). Every op a peer's entry
 * carries to an lww node is built here.
 */
export function utf8LwwRecord(
  hlc: number,
  counter: number,
  origin: string,
  bytes: Uint8Array | null,
  binary: boolean,
  key?: Uint8Array,
): Buffer {
  checkU64(hlc)
  checkU64(counter)
  const originUtf8 = utf8Of(origin)
  const originLength = originUtf8.length
  if (originLength > 255) throw new Error('origin id over 255 bytes')
  const sealed = key !== undefined
  const versionAt = sealed ? SEALED_FIELDS_AT : CHECKSUM_AT
  const valueAt = versionAt + 17 + originLength
  const out = Buffer.allocUnsafe(bytes === null ? valueAt : valueAt + 1 + bytes.length)
  out[0] = TAG_META
  out[1] = F_VERSION | (sealed ? F_CHECKSUM : 0) | (bytes === null ? KIND_TOMBSTONE : KIND_VALUE)
  putVersion(out, versionAt, hlc, counter, originUtf8)
  if (bytes !== null) {
    out[valueAt] = binary ? TAG_BINARY : TAG_STRING
    out.set(bytes, valueAt + 1)
  }
  if (sealed) putU32(out, CHECKSUM_AT, recordSum(key, 0, out))
  return out
}

/**
 * A version's fields at `at`: hlc and counter as big-endian u64s, the
 * origin's length in a byte, then its UTF-8 (17 + its length bytes in all).
 * The origin is copied with set(), not a byte loop: over a 32-byte origin the
 * loop was ~900 instructions a put more (callgrind, e098e3f).
 */
function putVersion(out: Buffer, at: number, hlc: number, counter: number, originUtf8: Uint8Array): void {
  putU32(out, at, Math.floor(hlc / 0x1_0000_0000))
  putU32(out, at + 4, hlc >>> 0)
  putU32(out, at + 8, Math.floor(counter / 0x1_0000_0000))
  putU32(out, at + 12, counter >>> 0)
  out[at + 16] = originUtf8.length
  out.set(originUtf8, at + 17)
}

/** A big-endian u32 at `at`, byte by byte (Buffer#writeUInt32BE checks its arguments each call). */
function putU32(out: Uint8Array, at: number, n: number): void {
  out[at] = n >>> 24
  out[at + 1] = n >>> 16
  out[at + 2] = n >>> 8
  out[at + 3] = n
}

/**
 * The sealed last-writer-wins record of a put's value as a write carries it
 * (a client's put on a multi-master node), for the version (hlc, counter,
 * origin): the same bytes as versionRecord(version, the value's UTF-8 or
 * bytes, binary, the user key), with a string's UTF-8 written in place and
 * TextBytes taken as the UTF-8 they are checked to be, not copied into a
 * buffer of their own and checked again first. `key` is the user key's
 * bytes from `keyStart` (a data key).
 */
export function versionPutRecord(
  hlc: number,
  counter: number,
  origin: string,
  value: WriteValue,
  key: Uint8Array,
  keyStart: number,
): Buffer {
  checkU64(hlc)
  checkU64(counter)
  const originUtf8 = utf8Of(origin)
  const originLength = originUtf8.length
  if (originLength > 255) throw new Error('origin id over 255 bytes')
  const text = typeof value === 'string'
  const binary = !text && !(value instanceof TextBytes)
  const bytes = text ? null : value instanceof TextBytes ? value.bytes : value
  const length = bytes === null ? Buffer.byteLength(value as string, 'utf8') : bytes.length
  const valueAt = SEALED_FIELDS_AT + 17 + originLength
  const out = Buffer.allocUnsafe(valueAt + 1 + length)
  out[0] = TAG_META
  out[1] = F_VERSION | F_CHECKSUM | KIND_VALUE
  putVersion(out, SEALED_FIELDS_AT, hlc, counter, originUtf8)
  out[valueAt] = binary ? TAG_BINARY : TAG_STRING
  if (bytes === null) out.write(value as string, valueAt + 1, length, 'utf8')
  else out.set(bytes, valueAt + 1)
  putU32(out, CHECKSUM_AT, recordSum(key, keyStart, out))
  return out
}

/** What Writer.u64 refuses: a number a u64 field cannot hold exactly (not an integer in [0, 2^53)). */
function checkU64(v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`record number ${v} is not an integer in [0, 2^53)`)
}

/**
 * replicatedSpan() of every record versionPutRecord builds: its fields are
 * what that checks (numbers below 2^53, an origin and a string value that
 * are UTF-8), so the digest takes the span as known instead of reading it
 * from the record again (record.test.ts holds the two equal).
 */
export const PUT_RECORD_SPAN = SEALED_FIELDS_AT * 512 + (F_VERSION | KIND_VALUE)

/** replicatedSpan()'s answer for a tombstone (a deleted key). */
export const TOMBSTONE_SPAN = -2
/** replicatedSpan()'s answer for a record that must be decoded to know its state. */
export const DECODE_SPAN = -1
/** In a span, the flags field's value for a plain record (a value with no version and no expiry). */
export const PLAIN_SPAN_FLAGS = 0x100

/**
 * Where the fields that replicate sit in a tag 0x10 record holding a value
 * or a tombstone, found from the header without decoding it: the bytes
 * writeRecord({ version, expiresAt, body }) of readRecord(record) would give
 * are [0x10, flags] then record[from..] (just record[from..] when flags is
 * PLAIN_SPAN_FLAGS), because the fields left out (the checksum, the
 * modification seq) come first. The span is one number, from * 512 + flags
 * (spanFrom, spanFlags): the digest asks for it twice per changed key, and
 * an object per answer was most of what the write path left to the
 * garbage collector. TOMBSTONE_SPAN for a tombstone; DECODE_SPAN when the
 * record must be decoded to know (siblings, another tag, or anything
 * readRecord would refuse or change on the way back: a malformed field, a
 * number over 2^53, bytes that are not UTF-8 where a string is read), so a
 * caller that decodes it then gets what readRecord says.
 */
export function replicatedSpan(record: Buffer): number {
  if (record.length < 2 || record[0] !== TAG_META) return DECODE_SPAN
  const flags = record[1]
  if ((flags & ~(F_KNOWN | KIND_MASK)) !== 0) return DECODE_SPAN
  const kind = flags & KIND_MASK
  if (kind !== KIND_VALUE && kind !== KIND_TOMBSTONE) return DECODE_SPAN
  let at = 2
  if (flags & F_CHECKSUM) at += 4
  if (flags & F_MOD_SEQ) {
    if (!safeU64At(record, at)) return DECODE_SPAN
    at += 8
  }
  const from = at
  if (flags & F_EXPIRES) {
    if (!safeU64At(record, at)) return DECODE_SPAN
    at += 8
  }
  if (flags & F_VERSION) {
    if (!safeU64At(record, at) || !safeU64At(record, at + 8) || at + 17 > record.length) return DECODE_SPAN
    const end = at + 17 + record[at + 16]
    if (end > record.length || !isUtf8Span(record, at + 17, end)) return DECODE_SPAN
    at = end
  }
  if (kind === KIND_TOMBSTONE) return at === record.length ? TOMBSTONE_SPAN : DECODE_SPAN
  if (at >= record.length) return DECODE_SPAN
  const type = record[at]
  if (type !== TAG_STRING && type !== TAG_BINARY) return DECODE_SPAN
  if (type === TAG_STRING && !isUtf8Span(record, at + 1, record.length)) return DECODE_SPAN
  const replicated = flags & (KIND_MASK | F_EXPIRES | F_VERSION)
  return replicated === KIND_VALUE ? at * 512 + PLAIN_SPAN_FLAGS : from * 512 + replicated
}

/** Where a span's canonical bytes start in the stored record. */
export function spanFrom(span: number): number {
  return Math.floor(span / 512)
}

/** A span's flags byte, or PLAIN_SPAN_FLAGS. */
export function spanFlags(span: number): number {
  return span % 512
}

/**
 * Whether record[from..end] is UTF-8. A short ASCII run (every origin, many
 * values) is checked in place: a view of it costs more than the loop.
 */
function isUtf8Span(record: Buffer, from: number, end: number): boolean {
  if (end - from <= SHORT_UTF8_SCAN) {
    let i = from
    while (i < end && record[i] < 0x80) i++
    if (i === end) return true
  }
  return isUtf8(record.subarray(from, end))
}
const SHORT_UTF8_SCAN = 256

/** True when a u64 field fits at `at` and is below 2^53 (readRecord's limit). */
function safeU64At(record: Buffer, at: number): boolean {
  return at + 8 <= record.length && getU32(record, at) <= 0x1f_ffff
}

/**
 * The big-endian u32 at `at` (in bounds), byte by byte: a Buffer method
 * called from optimised code is looked up through a generic property load
 * every call (~80 instructions), more than the read itself.
 */
export function getU32(bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0
}

/**
 * How many concurrent values a record holds, from its header: 0 for one
 * that holds no sibling set (a value, a tombstone, a plain record).
 */
export function siblingCountOf(record: Uint8Array): number {
  if (record[0] !== TAG_META) return 0
  const flags = record[1]
  if ((flags & KIND_MASK) !== KIND_SIBLINGS) return 0
  let at = flags & F_CHECKSUM ? SEALED_FIELDS_AT : CHECKSUM_AT
  if (flags & F_MOD_SEQ) at += 8
  if (flags & F_EXPIRES) at += 8
  if (flags & F_VERSION) at += 16 + 1 + record[at + 16]
  return (record[at] << 8) | record[at + 1]
}

/** True when the record is a tombstone (isTombstone of readRecord), read from its header. */
export function isTombstoneRecord(record: Uint8Array): boolean {
  if (record[0] === TAG_STRING || record[0] === TAG_BINARY) return false
  const kind = record[1] & KIND_MASK
  // What this build does not know is refused as readRecord refuses it.
  if (record[0] !== TAG_META || (record[1] & ~(F_KNOWN | KIND_MASK)) !== 0 || kind === KIND_MASK) {
    return isTombstone(readRecord(record))
  }
  return kind === KIND_TOMBSTONE || (kind === KIND_SIBLINGS && siblingCountOf(record) === 0)
}

/** Every field of a record; a plain record reads as a VALUE body with no metadata. */
export function readRecord(record: Uint8Array): KeyRecord {
  const r = new Reader(
    Buffer.isBuffer(record) ? record : Buffer.from(record.buffer, record.byteOffset, record.byteLength),
  )
  const tag = r.u8()
  if (tag === TAG_STRING || tag === TAG_BINARY) return { body: { kind: 'value', value: r.value(tag, r.rest()) } }
  if (tag !== TAG_META) throw new Error(`unknown record tag 0x${tag.toString(16)}: written by a newer tandem?`)
  const flags = r.u8()
  if ((flags & ~(F_KNOWN | KIND_MASK)) !== 0) {
    throw new Error(
      `record flags 0x${flags.toString(16)} hold fields this build does not know: written by a newer tandem?`,
    )
  }
  const out: KeyRecord = { body: { kind: 'tombstone' } }
  if (flags & F_CHECKSUM) r.u32()
  if (flags & F_MOD_SEQ) out.modSeq = r.u64()
  if (flags & F_EXPIRES) out.expiresAt = r.u64()
  if (flags & F_VERSION) {
    const hlc = r.u64()
    const counter = r.u64()
    out.version = { hlc, counter, origin: r.origin() }
  }
  switch (flags & KIND_MASK) {
    case KIND_VALUE: {
      const type = r.u8()
      out.body = { kind: 'value', value: r.value(type, r.rest()) }
      break
    }
    case KIND_TOMBSTONE:
      break
    case KIND_SIBLINGS: {
      const siblings: Sibling[] = new Array(r.u16())
      for (let i = 0; i < siblings.length; i++) {
        const origin = r.origin()
        const counter = r.u64()
        const hlc = r.u64()
        const type = r.u8()
        siblings[i] = { origin, counter, hlc, value: r.value(type, r.bytes(r.u32())) }
      }
      const context: Record<string, number> = {}
      const count = r.u16()
      for (let i = 0; i < count; i++) {
        const origin = r.origin()
        context[origin] = r.u64()
      }
      out.body = { kind: 'siblings', siblings, context }
      break
    }
    default:
      throw new Error('record kind 0xc0 is not known to this build: written by a newer tandem?')
  }
  if (!r.done) throw new Error('record has bytes after its body')
  return out
}

/**
 * Encodes a record, unsealed (the store seals what it writes: sealRecord).
 * One with no metadata and a value is written plain (tag 0x00 or 0x01).
 */
export function writeRecord(record: KeyRecord): Buffer {
  const { body } = record
  const plain = record.modSeq === undefined && record.expiresAt === undefined && record.version === undefined
  if (plain && body.kind === 'value') return encodeRecord(body.value)
  const siblings = body.kind === 'siblings' ? [...body.siblings].sort(compareDots) : []
  const origins = body.kind === 'siblings' ? Object.keys(body.context).sort(compareBytes) : []
  const w = new Writer(measure(record, siblings, origins))
  w.u8(TAG_META)
  let flags = body.kind === 'value' ? KIND_VALUE : body.kind === 'tombstone' ? KIND_TOMBSTONE : KIND_SIBLINGS
  if (record.modSeq !== undefined) flags |= F_MOD_SEQ
  if (record.expiresAt !== undefined) flags |= F_EXPIRES
  if (record.version !== undefined) flags |= F_VERSION
  w.u8(flags)
  if (record.modSeq !== undefined) w.u64(record.modSeq)
  if (record.expiresAt !== undefined) w.u64(record.expiresAt)
  if (record.version !== undefined) {
    w.u64(record.version.hlc)
    w.u64(record.version.counter)
    w.origin(record.version.origin)
  }
  if (body.kind === 'value') {
    w.value(body.value, false)
  } else if (body.kind === 'siblings') {
    w.u16(siblings.length)
    for (const s of siblings) {
      w.origin(s.origin)
      w.u64(s.counter)
      w.u64(s.hlc)
      w.value(s.value, true)
    }
    w.u16(origins.length)
    for (const origin of origins) {
      w.origin(origin)
      w.u64((body.context as Record<string, number>)[origin])
    }
  }
  return w.finish()
}

/** Dot order: origin (as bytes), then counter. */
export function compareDots(a: { origin: string; counter: number }, b: { origin: string; counter: number }): number {
  return compareBytes(a.origin, b.origin) || a.counter - b.counter
}

/** Compares two strings by their UTF-8 bytes, as every node does (never by locale or UTF-16 units). */
export function compareBytes(a: string, b: string): number {
  if (a === b) return 0
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))
}

const MAX_U53 = Number.MAX_SAFE_INTEGER

class Reader {
  private at = 0

  constructor(private readonly buf: Buffer) {}

  get done(): boolean {
    return this.at === this.buf.length
  }

  private need(n: number): void {
    if (this.at + n > this.buf.length) throw new Error('record cut short')
  }

  u8(): number {
    this.need(1)
    return this.buf[this.at++]
  }

  u16(): number {
    this.need(2)
    this.at += 2
    return this.buf.readUInt16BE(this.at - 2)
  }

  u32(): number {
    this.need(4)
    this.at += 4
    return this.buf.readUInt32BE(this.at - 4)
  }

  u64(): number {
    this.need(8)
    const value = this.buf.readUInt32BE(this.at) * 0x1_0000_0000 + this.buf.readUInt32BE(this.at + 4)
    this.at += 8
    if (value > MAX_U53) throw new Error('record number over 2^53')
    return value
  }

  bytes(n: number): Buffer {
    this.need(n)
    this.at += n
    return this.buf.subarray(this.at - n, this.at)
  }

  rest(): Buffer {
    return this.bytes(this.buf.length - this.at)
  }

  origin(): string {
    return this.bytes(this.u8()).toString('utf8')
  }

  value(type: number, bytes: Buffer): Value {
    if (type === TAG_STRING) return bytes.toString('utf8')
    if (type === TAG_BINARY) return bytes
    throw new Error(`unknown value type 0x${type.toString(16)}`)
  }
}

/** Encodes into one buffer of the exact size, measured first. */
class Writer {
  private readonly buf: Buffer
  private at = 0

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size)
  }

  u8(v: number): void {
    this.buf[this.at++] = v
  }

  u16(v: number): void {
    if (v > 0xffff) throw new Error(`record list of ${v} items is over 65,535`)
    this.at = this.buf.writeUInt16BE(v, this.at)
  }

  u32(v: number): void {
    this.at = this.buf.writeUInt32BE(v, this.at)
  }

  u64(v: number): void {
    checkU64(v)
    this.at = this.buf.writeUInt32BE(Math.floor(v / 0x1_0000_0000), this.at)
    this.at = this.buf.writeUInt32BE(v >>> 0, this.at)
  }

  origin(origin: string): void {
    const bytes = utf8Of(origin)
    const length = bytes.length
    if (length > 255) throw new Error('origin id over 255 bytes')
    this.u8(length)
    // A few dozen bytes: a loop, cheaper than set() or write() for so few.
    const buf = this.buf
    const at = this.at
    for (let i = 0; i < length; i++) buf[at + i] = bytes[i]
    this.at = at + length
  }

  bytes(bytes: Uint8Array): void {
    this.buf.set(bytes, this.at)
    this.at += bytes.byteLength
  }

  /** A value as type byte and bytes to the end (sized: with a u32 length between). */
  value(value: Value, sized: boolean): void {
    this.u8(typeof value === 'string' ? TAG_STRING : TAG_BINARY)
    const length = byteLengthOf(value)
    if (sized) this.u32(length)
    if (typeof value === 'string') this.at += this.buf.write(value, this.at, 'utf8')
    else {
      this.buf.set(value, this.at)
      this.at += value.byteLength
    }
  }

  finish(): Buffer {
    if (this.at !== this.buf.length) throw new Error(`record encoded to ${this.at} bytes, measured ${this.buf.length}`)
    return this.buf
  }
}

function byteLengthOf(value: Value): number {
  return typeof value === 'string' ? Buffer.byteLength(value, 'utf8') : value.byteLength
}

/**
 * The last origin a record named and its UTF-8 bytes: records name few
 * origins, a run of them mostly one (a peer's catch-up, a node's own
 * writes), and every versioned record measures and writes its origin.
 */
let lastOrigin = ''
let lastOriginUtf8 = Buffer.alloc(0)

function utf8Of(origin: string): Buffer {
  if (origin !== lastOrigin) {
    lastOriginUtf8 = Buffer.from(origin, 'utf8')
    lastOrigin = origin
  }
  return lastOriginUtf8
}

const originBytes = (origin: string) => 1 + utf8Of(origin).length

function measure(record: KeyRecord, siblings: Sibling[], origins: string[]): number {
  let size = 2
  if (record.modSeq !== undefined) size += 8
  if (record.expiresAt !== undefined) size += 8
  if (record.version !== undefined) size += 16 + originBytes(record.version.origin)
  const { body } = record
  if (body.kind === 'value') size += 1 + byteLengthOf(body.value)
  if (body.kind === 'siblings') {
    size += 4
    for (const s of siblings) size += originBytes(s.origin) + 8 + 8 + 1 + 4 + byteLengthOf(s.value)
    for (const origin of origins) size += originBytes(origin) + 8
  }
  return size
}
