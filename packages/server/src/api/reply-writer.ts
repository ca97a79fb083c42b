import { encodeFrame } from '@tandem/protocol'

/**
 * Writes a reply's msgpack, `{id, result}`, by hand, byte for byte as
 * encodeFrame (msgpackr: useRecords false, no float32, no bundled strings)
 * writes it, for the results the common requests give: null, booleans,
 * numbers, strings, byte arrays, and plain objects and arrays of those
 * (a write's result, an mget's values, a status). Anything else (undefined,
 * a Map, a Date, nesting past MAX_DEPTH) makes it give up, and the reply is
 * packed by msgpackr. It exists for the cost of a request: msgpackr's
 * general encoder (type dispatch, extension lookups, its per-call set-up)
 * is a measurable share of an unpipelined get's server CPU, and every
 * request has a reply.
 *
 * Replies are written into one shared slab and handed out as views of it,
 * as msgpackr hands out its own: no Buffer allocated per reply, and a
 * view is never written again. A throw other than its own giving up (a
 * result whose getter throws, a bug) leaves the writer on a fresh slab
 * and goes on to the caller, whose guard closes that connection alone.
 */

/** Reply map, result, its objects and arrays, theirs: deeper results go to msgpackr. */
const MAX_DEPTH = 4

/** A new slab's size; a reply larger than half of it gets a slab of its own size. */
const SLAB_BYTES = 64 * 1024

/** Strings shorter than this are encoded by a loop here; longer ones by Buffer's native UTF-8 write (as msgpackr does). */
const SHORT_STRING = 0x40

/** Thrown inside a write to give up on the reply (caught in encodeReply only). */
const UNSUPPORTED = Symbol('unsupported')

/** `{"id": ` as msgpackr starts the reply map: a map16 of 2, then the key. */
const REPLY_HEAD = [0xde, 0x00, 0x02, 0xa2, 0x69, 0x64] as const
/** The `result` key: fixstr of 6. */
const RESULT_KEY = [0xa6, 0x72, 0x65, 0x73, 0x75, 0x6c, 0x74] as const

let slab = Buffer.allocUnsafeSlow(SLAB_BYTES)
let view = new DataView(slab.buffer, slab.byteOffset, slab.byteLength)
/** Where the next reply starts in the slab. */
let next = 0
/** Write position, and the start of the reply being written. */
let at = 0
let start = 0

/** The msgpack bytes of `{id, result}`, exactly as encodeFrame writes them. A view of a shared slab: never written again. */
export function encodeReply(id: number, result: unknown): Buffer {
  start = next
  at = next
  try {
    room(REPLY_HEAD.length + 9 + RESULT_KEY.length)
    for (let i = 0; i < REPLY_HEAD.length; i++) slab[at++] = REPLY_HEAD[i]
    writeNumber(id)
    for (let i = 0; i < RESULT_KEY.length; i++) slab[at++] = RESULT_KEY[i]
    writeValue(result, 1)
    const bytes = slab.subarray(start, at)
    // Word-aligned starts, as msgpackr keeps them.
    next = (at + 7) & ~7
    return bytes
  } catch (err) {
    if (err !== UNSUPPORTED) {
      startOver()
      throw err
    }
    next = start
    return encodeFrame({ id, result })
  }
}

/** Drops whatever state a throw left; the replies handed out keep the old slab. */
function startOver(): void {
  slab = Buffer.allocUnsafeSlow(SLAB_BYTES)
  view = new DataView(slab.buffer, slab.byteOffset, slab.byteLength)
  next = 0
  at = 0
  start = 0
}

/** Room for `bytes` more at `at`: a new slab when this one is short, with the reply so far moved over. */
function room(bytes: number): void {
  if (at + bytes <= slab.length) return
  const written = at - start
  // A multiple of 8, so that the next reply's aligned start never lies past the slab's end.
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
  else if (value === null) writeByte(0xc0)
  else if (value === true) writeByte(0xc3)
  else if (value === false) writeByte(0xc2)
  else if (typeof value === 'object') {
    if (depth >= MAX_DEPTH) throw UNSUPPORTED
    const made = value.constructor
    if (made === Array) writeArray(value as unknown[], depth + 1)
    else if (made === Object) writeObject(value as Record<string, unknown>, depth + 1)
    else if (value instanceof Uint8Array) writeBytes(value)
    else throw UNSUPPORTED
  } else throw UNSUPPORTED
}

function writeByte(byte: number): void {
  room(1)
  slab[at++] = byte
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
  // From the reply's start: the reply moves to a new slab when this one runs out in the object.
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
    // Past 32 bits (a seq or an HLC can be), fractions, NaN: a float64.
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
