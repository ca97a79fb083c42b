/**
 * Writes a log entry's msgpack by hand, byte for byte as the log's msgpackr
 * Packr does (log-entry.ts: useRecords false, no float32, no bundled
 * strings), for the values entries hold: numbers, strings (also given as
 * their UTF-8, TextBytes), byte arrays, arrays and plain objects. Anything
 * else (null, a boolean, undefined, a Map, nesting past MAX_DEPTH) makes it
 * give up, and the caller packs the entry with msgpackr. Entries are written into one shared slab and handed
 * out as views of it, as msgpackr hands out its own: no Buffer allocated per
 * entry. The bytes must be msgpackr's exactly: entry-scan.ts reads tandem's
 * own encoding straight from them, and peers forward identities verbatim.
 *
 * It exists for the cost of a put: msgpackr's general encoder (type
 * dispatch, extension lookups, its per-call set-up) was several percent of
 * the main thread's work per put with pipelined clients.
 *
 * Its state (the slab, the next start) is shared by every entry: a bug
 * that leaves it wrong would fail every later write, not one. So a throw
 * other than its own giving up is taken for such a bug: the writer starts
 * over on a fresh slab, the entry goes to msgpackr (same bytes), and the
 * throw is counted and handed to the reporter (the server logs it), so the
 * node goes on taking writes.
 */

import { TextBytes } from './text-bytes.js'

/** Entry, ops, op, op options, causal context, counters: deeper than any entry goes. */
const MAX_DEPTH = 6

/** A new slab's size; an entry larger than half of it gets a slab of its own size. */
const SLAB_BYTES = 64 * 1024

/** Strings shorter than this are encoded by a loop here; longer ones by Buffer's native UTF-8 write (as msgpackr does). */
const SHORT_STRING = 0x40

/** Thrown inside a write to give up on the entry (caught in writeEntry only). */
const UNSUPPORTED = Symbol('unsupported')

/** Unexpected throws so far (see writerFaults). */
let faults = 0
let reportFault: (err: unknown) => void = () => {}

let slab = Buffer.allocUnsafeSlow(SLAB_BYTES)
let view = new DataView(slab.buffer, slab.byteOffset, slab.byteLength)
/** Where the next entry starts in the slab. */
let next = 0
/** Write position, and the start of the entry being written. */
let at = 0
let start = 0

/**
 * The msgpack bytes of `fields` (the entry's array), exactly as the log's
 * Packr writes them, or null when it holds a value this writer leaves to
 * msgpackr. The bytes are a view of a shared slab: never written again.
 */
export function writeEntry(fields: readonly unknown[]): Buffer | null {
  start = next
  at = next
  try {
    writeArray(fields, 0)
    const bytes = slab.subarray(start, at)
    // Word-aligned starts, as msgpackr keeps them (copies of aligned bytes are cheaper).
    next = (at + 7) & ~7
    return bytes
  } catch (err) {
    if (err === UNSUPPORTED) {
      next = start
      return null
    }
    startOver(err)
    return null
  }
}

/**
 * A throw the writer did not mean: whatever state it left is dropped (the
 * entries handed out keep the old slab), and the caller packs this entry
 * with msgpackr.
 */
function startOver(err: unknown): void {
  slab = Buffer.allocUnsafeSlow(SLAB_BYTES)
  view = new DataView(slab.buffer, slab.byteOffset, slab.byteLength)
  next = 0
  at = 0
  start = 0
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

/** Room for `bytes` more at `at`: a new slab when this one is short, with the entry so far moved over. */
function room(bytes: number): void {
  if (at + bytes <= slab.length) return
  const written = at - start
  // A multiple of 8, so that the next entry's aligned start never lies past the slab's end.
  const size = Math.ceil(Math.max(SLAB_BYTES, (written + bytes) * 2) / 8) * 8
  const fresh = Buffer.allocUnsafeSlow(size)
  slab.copy(fresh, 0, start, at)
  slab = fresh
  view = new DataView(slab.buffer, slab.byteOffset, slab.byteLength)
  start = 0
  at = written
}

function writeValue(value: unknown, depth: number): void {
  if (typeof value === 'string') writeString(value)
  else if (typeof value === 'number') writeNumber(value)
  else if (typeof value === 'object' && value !== null) {
    if (depth >= MAX_DEPTH) throw UNSUPPORTED
    const made = value.constructor
    if (made === Array) writeArray(value as unknown[], depth + 1)
    else if (made === Object) writeObject(value as Record<string, unknown>, depth + 1)
    else if (made === TextBytes) writeText((value as TextBytes).bytes)
    else if (value instanceof Uint8Array) writeBytes(value)
    else throw UNSUPPORTED
  } else throw UNSUPPORTED
}

function writeArray(array: readonly unknown[], depth: number): void {
  const length = array.length
  room(5)
  if (length < 0x10) slab[at++] = 0x90 | length
  else if (length < 0x10000) {
    slab[at++] = 0xdc
    slab[at++] = length >> 8
    slab[at++] = length & 0xff
  } else {
    slab[at++] = 0xdd
    view.setUint32(at, length)
    at += 4
  }
  for (let i = 0; i < length; i++) writeValue(array[i], depth)
}

/** A plain object as msgpackr writes one without records: always a map16, own enumerable keys in for-in order. */
function writeObject(object: Record<string, unknown>, depth: number): void {
  // msgpackr asks the object's own hasOwnProperty when it has one.
  if (Object.hasOwn(object, 'hasOwnProperty')) throw UNSUPPORTED
  room(3)
  slab[at++] = 0xde
  // From the entry's start: the entry moves to a new slab when this one runs out in the object.
  const sizeAt = at - start
  at += 2
  let size = 0
  for (const key in object) {
    if (!Object.hasOwn(object, key)) continue
    writeString(key)
    writeValue(object[key], depth)
    size++
  }
  // msgpackr refuses a larger object; leave that refusal to it.
  if (size > 0xffff) throw UNSUPPORTED
  slab[start + sizeAt] = size >> 8
  slab[start + sizeAt + 1] = size & 0xff
}

function writeNumber(value: number): void {
  room(9)
  if (value >>> 0 === value) {
    // A positive fixint up to 0x7f: msgpackr's rule with records off.
    if (value < 0x80) slab[at++] = value
    else if (value < 0x100) {
      slab[at++] = 0xcc
      slab[at++] = value
    } else if (value < 0x10000) {
      slab[at++] = 0xcd
      slab[at++] = value >> 8
      slab[at++] = value & 0xff
    } else {
      slab[at++] = 0xce
      view.setUint32(at, value)
      at += 4
    }
  } else if (value >> 0 === value) {
    if (value >= -0x20) slab[at++] = 0x100 + value
    else if (value >= -0x80) {
      slab[at++] = 0xd0
      slab[at++] = value + 0x100
    } else if (value >= -0x8000) {
      slab[at++] = 0xd1
      view.setInt16(at, value)
      at += 2
    } else {
      slab[at++] = 0xd2
      view.setInt32(at, value)
      at += 4
    }
  } else {
    // Past 32 bits (an HLC, an expiry time), fractions, NaN: a float64.
    slab[at++] = 0xcb
    view.setFloat64(at, value)
    at += 8
  }
}

/**
 * A string as msgpackr writes it: UTF-8 (a lone surrogate as U+FFFD), the
 * smallest header for its byte length. The bytes go after a header sized
 * for the string's length in UTF-16 units, which its UTF-8 length can only
 * pass, and move up when the header must grow.
 */
function writeString(value: string): void {
  const units = value.length
  const header = units < 0x20 ? 1 : units < 0x100 ? 2 : units < 0x10000 ? 3 : 5
  room(header + units * 3 + 4)
  const bytesAt = at + header
  let length: number
  if (units < SHORT_STRING) {
    let p = bytesAt
    for (let i = 0; i < units; i++) {
      let c = value.charCodeAt(i)
      if (c < 0x80) slab[p++] = c
      else if (c < 0x800) {
        slab[p++] = (c >> 6) | 0xc0
        slab[p++] = (c & 0x3f) | 0x80
      } else if ((c & 0xfc00) === 0xd800 && (value.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
        c = 0x10000 + ((c & 0x03ff) << 10) + (value.charCodeAt(i + 1) & 0x03ff)
        i++
        slab[p++] = (c >> 18) | 0xf0
        slab[p++] = ((c >> 12) & 0x3f) | 0x80
        slab[p++] = ((c >> 6) & 0x3f) | 0x80
        slab[p++] = (c & 0x3f) | 0x80
      } else if ((c & 0xf800) === 0xd800) {
        slab[p++] = 0xef
        slab[p++] = 0xbf
        slab[p++] = 0xbd
      } else {
        slab[p++] = (c >> 12) | 0xe0
        slab[p++] = ((c >> 6) & 0x3f) | 0x80
        slab[p++] = (c & 0x3f) | 0x80
      }
    }
    length = p - bytesAt
  } else {
    length = slab.write(value, bytesAt)
  }
  if (length < 0x20) slab[at++] = 0xa0 | length
  else if (length < 0x100) {
    if (header < 2) slab.copyWithin(at + 2, at + 1, at + 1 + length)
    slab[at++] = 0xd9
    slab[at++] = length
  } else if (length < 0x10000) {
    if (header < 3) slab.copyWithin(at + 3, at + header, at + header + length)
    slab[at++] = 0xda
    slab[at++] = length >> 8
    slab[at++] = length & 0xff
  } else {
    if (header < 5) slab.copyWithin(at + 5, at + header, at + header + length)
    slab[at++] = 0xdb
    view.setUint32(at, length)
    at += 4
  }
  at += length
}

/**
 * A string given as its UTF-8 bytes (TextBytes): the smallest str header
 * for their length, which is what writeString ends with for the string
 * they decode to, then the bytes.
 */
function writeText(bytes: Uint8Array): void {
  const length = bytes.byteLength
  room(length + 5)
  if (length < 0x20) slab[at++] = 0xa0 | length
  else if (length < 0x100) {
    slab[at++] = 0xd9
    slab[at++] = length
  } else if (length < 0x10000) {
    slab[at++] = 0xda
    slab[at++] = length >> 8
    slab[at++] = length & 0xff
  } else {
    slab[at++] = 0xdb
    view.setUint32(at, length)
    at += 4
  }
  slab.set(bytes, at)
  at += length
}

/** Bytes (a Buffer or a Uint8Array) as msgpack bin, as msgpackr writes byte arrays without its typed-array extension. */
function writeBytes(bytes: Uint8Array): void {
  const length = bytes.byteLength
  room(length + 5)
  if (length < 0x100) {
    slab[at++] = 0xc4
    slab[at++] = length
  } else if (length < 0x10000) {
    slab[at++] = 0xc5
    slab[at++] = length >> 8
    slab[at++] = length & 0xff
  } else {
    slab[at++] = 0xc6
    view.setUint32(at, length)
    at += 4
  }
  slab.set(bytes, at)
  at += length
}
