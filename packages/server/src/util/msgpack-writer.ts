import { TextBytes } from '../storage/text-bytes.js'

/**
 * The msgpack writer that client replies (api/reply-writer.ts) and log
 * entries (storage/entry-writer.ts) are written by: byte for byte as
 * msgpackr writes them with tandem's options (useRecords false, no float32,
 * no bundled strings), for the values they carry: numbers, strings, byte
 * arrays, plain arrays and objects of those, and per caller null and
 * booleans (replies) or a string given as its UTF-8 (entries). Anything
 * else (undefined, a Map, a Date, nesting deeper than the caller allows)
 * makes it give up, and the caller packs with msgpackr.
 *
 * It exists for the cost of a request: msgpackr's general encoder (type
 * dispatch, extension lookups, its per-call set-up) was a measurable share
 * of a get's and a put's server CPU.
 *
 * Everything is written into one slab, shared by replies and entries, and
 * handed out as views of it, as msgpackr hands out its own: no Buffer
 * allocated per message, and a view is never written again. A caller
 * writes one message at a time (begin, writes, finish or giveUp); the
 * writes are synchronous, so two never interleave. A throw other than the
 * writer's own giving up is a bug: the caller calls startOver, which drops
 * whatever state it left (the views handed out keep the old slab).
 */

/** null, true and false written (as replies carry them); else left to msgpackr. */
export const LITERALS = 1
/** A TextBytes written as the string it holds (as the log holds it); else left to msgpackr. */
export const TEXT_BYTES = 2

/** A new slab's size; a message larger than half of it gets a slab of its own size. */
const SLAB_BYTES = 64 * 1024

/** Strings shorter than this are encoded by a loop here; longer ones by Buffer's native UTF-8 write (as msgpackr does). */
const SHORT_STRING = 0x40

/** Thrown inside a write to give up on the message (see givenUp). */
const UNSUPPORTED = Symbol('unsupported')

let slab = Buffer.allocUnsafeSlow(SLAB_BYTES)
let view = new DataView(slab.buffer, slab.byteOffset, slab.byteLength)
/** Where the next message starts in the slab. */
let next = 0
/** Write position, and the start of the message being written. */
let at = 0
let start = 0
/** LITERALS and TEXT_BYTES, as the message being written takes them. */
let kinds = 0

/**
 * Starts a message that takes the value kinds `takes` (LITERALS, TEXT_BYTES)
 * besides the common ones, with room for `head` bytes of writeRaw.
 */
export function begin(takes: number, head: number): void {
  start = next
  at = next
  kinds = takes
  room(head)
}

/** The message written since begin: a view of the shared slab, never written again. */
export function finish(): Buffer {
  const bytes = slab.subarray(start, at)
  // Word-aligned starts, as msgpackr keeps them (copies of aligned bytes are cheaper).
  next = (at + 7) & ~7
  return bytes
}

/** Whether `err` is the writer giving up on a value it leaves to msgpackr; if so the message is dropped. */
export function givenUp(err: unknown): boolean {
  if (err !== UNSUPPORTED) return false
  next = start
  return true
}

/** After a throw the writer did not mean: a fresh slab, whatever state the throw left dropped. */
export function startOver(): void {
  slab = Buffer.allocUnsafeSlow(SLAB_BYTES)
  view = new DataView(slab.buffer, slab.byteOffset, slab.byteLength)
  next = 0
  at = 0
  start = 0
}

/** Room for `bytes` more at `at`: a new slab when this one is short, with the message so far moved over. */
function room(bytes: number): void {
  if (at + bytes <= slab.length) return
  const written = at - start
  // A multiple of 8, so that the next message's aligned start never lies past the slab's end.
  const size = Math.ceil(Math.max(SLAB_BYTES, (written + bytes) * 2) / 8) * 8
  const fresh = Buffer.allocUnsafeSlow(size)
  slab.copy(fresh, 0, start, at)
  slab = fresh
  view = new DataView(slab.buffer, slab.byteOffset, slab.byteLength)
  start = 0
  at = written
}

/** Bytes written as they are (a message's fixed head), in the room begin made for them: no room made here. */
export function writeRaw(bytes: readonly number[]): void {
  for (let i = 0; i < bytes.length; i++) slab[at++] = bytes[i]
}

/**
 * `value` as msgpackr writes it. `depth` is how many levels of arrays and
 * objects it may still open (the value itself counts when it is one).
 */
export function writeValue(value: unknown, depth: number): void {
  if (typeof value === 'string') writeString(value)
  else if (typeof value === 'number') writeNumber(value)
  else if (value === null) writeLiteral(0xc0)
  else if (value === true) writeLiteral(0xc3)
  else if (value === false) writeLiteral(0xc2)
  else if (typeof value === 'object') {
    if (depth <= 0) throw UNSUPPORTED
    // An array is told by its kind before its constructor is loaded: the
    // arrays of replies and entries add several shapes to that one load.
    if (Array.isArray(value)) {
      if (value.constructor !== Array) throw UNSUPPORTED
      writeArray(value, depth - 1)
      return
    }
    const made = value.constructor
    if (made === Object) writeObject(value as Record<string, unknown>, depth - 1)
    else if (made === TextBytes && (kinds & TEXT_BYTES) !== 0) writeText((value as TextBytes).bytes)
    else if (value instanceof Uint8Array) writeBytes(value)
    else throw UNSUPPORTED
  } else throw UNSUPPORTED
}

/** null or a boolean, when the message takes them. */
function writeLiteral(byte: number): void {
  if ((kinds & LITERALS) === 0) throw UNSUPPORTED
  room(1)
  slab[at++] = byte
}

/** An array as msgpackr writes it; its values may open `depth` more levels of arrays and objects. */
export function writeArray(array: readonly unknown[], depth: number): void {
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
  // From the message's start: the message moves to a new slab when this one runs out in the object.
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

export function writeNumber(value: number): void {
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
    // Past 32 bits (a seq, an HLC, an expiry time), fractions, NaN: a float64.
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
