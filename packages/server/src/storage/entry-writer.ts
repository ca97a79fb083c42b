/**
 * Writes a log entry's msgpack by hand, byte for byte as the log's msgpackr
 * Packr does (log-entry.ts: useRecords false, no float32, no bundled
 * strings), for the values entries hold: numbers, strings (also given as
 * their UTF-8, TextBytes), byte arrays, arrays and plain objects. Anything
 * else (null, a boolean, undefined, a Map, nesting past FIELDS_DEPTH) makes
 * it give up, and the caller packs the entry with msgpackr. The writing is
 * util/msgpack-writer.ts's, shared with client replies: entries are views
 * of its shared slab. The bytes must be msgpackr's exactly: entry-scan.ts
 * reads tandem's own encoding straight from them, and peers forward
 * identities verbatim.
 *
 * It exists for the cost of a put: msgpackr's general encoder (type
 * dispatch, extension lookups, its per-call set-up) was several percent of
 * the main thread's work per put with pipelined clients.
 *
 * The writer's state (the slab, the next start) is shared by every entry
 * and reply: a bug that leaves it wrong would fail every later write, not one. So a throw
 * other than its own giving up is taken for such a bug: the writer starts
 * over on a fresh slab, the entry goes to msgpackr (same bytes), and the
 * throw is counted and handed to the reporter (the server logs it), so the
 * node goes on taking writes.
 */

import { begin, finish, givenUp, startOver, TEXT_BYTES, writeArray } from '../util/msgpack-writer.js'
import { TextBytes, type WriteValue } from './text-bytes.js'

/** Levels of arrays and objects an entry's fields may open: ops, op, op options, causal context, counters, and one to spare. */
const FIELDS_DEPTH = 6

/** Unexpected throws so far (see writerFaults). */
let faults = 0
let reportFault: (err: unknown) => void = () => {}

/**
 * The msgpack bytes of `fields` (the entry's array), exactly as the log's
 * Packr writes them, or null when it holds a value this writer leaves to
 * msgpackr. The bytes are a view of a shared slab: never written again.
 */
export function writeEntry(fields: readonly unknown[]): Buffer | null {
  begin(TEXT_BYTES, 0)
  try {
    writeArray(fields, FIELDS_DEPTH)
    return finish()
  } catch (err) {
    if (givenUp(err)) return null
    // A throw the writer did not mean: whatever state it left is dropped,
    // and the caller packs this entry with msgpackr.
    startOver()
    noteWriterFault(err)
    return null
  }
}

/**
 * A throw one of the hand-written writers did not mean (a bug): counted
 * and reported; the caller packs the entry with msgpackr instead.
 */
export function noteWriterFault(err: unknown): void {
  faults++
  try {
    reportFault(err)
  } catch {}
}

/**
 * Where the writer's unexpected throws go (the server logs them as errors,
 * with their stack: a bug to report). One reporter a process, as tandem
 * runs one node a process.
 */
export function onWriterFault(report: (err: unknown) => void): void {
  reportFault = report
}

/** Unexpected throws the writer took over to msgpackr, since the process started (tandem_entry_writer_faults_total). */
export function writerFaults(): number {
  return faults
}

/**
 * A plain put's entry, [seq, epoch, origin, originSeq, hlc, [[OP_PUT, key,
 * value]]], written straight into `out` at `at` (a log block: see
 * BlockPacker.room), byte for byte as writeEntry writes it: the entry every
 * put of a single master logs, without the walk of a generic array (each
 * field's type asked, a view of the shared slab, then a copy into the
 * block). `origin` is the origin as msgpack (packedOrigin); the key's UTF-8
 * is taken from `key` at keyStart (the data key, which holds it after the
 * data prefix). At most putEntryBytes bytes; returns where it ends.
 */
export function writePutEntry(
  out: Buffer,
  at: number,
  seq: number,
  epoch: number,
  origin: Uint8Array,
  originSeq: number,
  hlc: number,
  key: Uint8Array,
  keyStart: number,
  value: WriteValue,
): number {
  out[at++] = 0x96
  at = writeUint(out, at, seq)
  at = writeUint(out, at, epoch)
  out.set(origin, at)
  at += origin.byteLength
  at = writeUint(out, at, originSeq)
  at = writeUint(out, at, hlc)
  out[at++] = 0x91
  out[at++] = 0x93
  out[at++] = 0x00 // OP_PUT
  const keyLength = key.byteLength - keyStart
  at = strHeader(out, at, keyLength)
  for (let i = 0; i < keyLength; i++) out[at + i] = key[keyStart + i]
  at += keyLength
  if (typeof value === 'string') {
    const length = Buffer.byteLength(value, 'utf8')
    at = strHeader(out, at, length)
    return at + out.write(value, at, length, 'utf8')
  }
  if (value instanceof TextBytes) {
    const bytes = value.bytes
    at = strHeader(out, at, bytes.byteLength)
    out.set(bytes, at)
    return at + bytes.byteLength
  }
  const length = value.byteLength
  if (length < 0x100) {
    out[at++] = 0xc4
    out[at++] = length
  } else if (length < 0x10000) {
    out[at++] = 0xc5
    out[at++] = length >> 8
    out[at++] = length & 0xff
  } else {
    out[at++] = 0xc6
    out.writeUInt32BE(length, at)
    at += 4
  }
  out.set(value, at)
  return at + length
}

/** The most bytes writePutEntry writes for this origin (as msgpack), key (bytes from keyStart) and value. */
export function putEntryBytes(origin: Uint8Array, key: Uint8Array, keyStart: number, value: WriteValue): number {
  const valueBytes =
    typeof value === 'string'
      ? value.length * 3
      : value instanceof TextBytes
        ? value.bytes.byteLength
        : value.byteLength
  // Array headers and the op, four numbers of at most 9 bytes, two headers of at most 5.
  return 4 + 4 * 9 + origin.byteLength + 2 * 5 + key.byteLength - keyStart + valueBytes
}

/** A string as an entry's field holds it (the origin), as writeEntry writes it. */
export function packedOrigin(origin: string): Buffer {
  const bytes = Buffer.from(origin, 'utf8')
  const out = Buffer.allocUnsafe(bytes.length + 5)
  const at = strHeader(out, 0, bytes.length)
  bytes.copy(out, at)
  return out.subarray(0, at + bytes.length)
}

/** A number as writeNumber (msgpack-writer.ts) writes it: the entry's seqs, counters and HLC. */
function writeUint(out: Buffer, at: number, value: number): number {
  if (value >>> 0 === value) {
    if (value < 0x80) out[at++] = value
    else if (value < 0x100) {
      out[at++] = 0xcc
      out[at++] = value
    } else if (value < 0x10000) {
      out[at++] = 0xcd
      out[at++] = value >> 8
      out[at++] = value & 0xff
    } else {
      out[at++] = 0xce
      out.writeUInt32BE(value, at)
      at += 4
    }
    return at
  }
  if (value >> 0 === value) {
    if (value >= -0x20) out[at++] = 0x100 + value
    else if (value >= -0x80) {
      out[at++] = 0xd0
      out[at++] = value + 0x100
    } else if (value >= -0x8000) {
      out[at++] = 0xd1
      out.writeInt16BE(value, at)
      at += 2
    } else {
      out[at++] = 0xd2
      out.writeInt32BE(value, at)
      at += 4
    }
    return at
  }
  out[at++] = 0xcb
  out.writeDoubleBE(value, at)
  return at + 8
}

/** The smallest str header for `length` bytes of UTF-8, as writeString ends with. */
function strHeader(out: Buffer, at: number, length: number): number {
  if (length < 0x20) out[at++] = 0xa0 | length
  else if (length < 0x100) {
    out[at++] = 0xd9
    out[at++] = length
  } else if (length < 0x10000) {
    out[at++] = 0xda
    out[at++] = length >> 8
    out[at++] = length & 0xff
  } else {
    out[at++] = 0xdb
    out.writeUInt32BE(length, at)
    at += 4
  }
  return at
}
