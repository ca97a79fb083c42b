import { encodeFrame } from '@tandem/protocol'

/**
 * A request frame's msgpack written by hand, byte for byte as encodeFrame
 * (msgpackr: useRecords false, no float32, no bundled strings) writes it,
 * for frames whose messages are plain objects of strings, numbers,
 * booleans, null and binary (get, put and del, and every other request
 * whose fields are such values); a message holding anything else (an
 * array, an object, undefined) sends the frame to encodeFrame. It exists
 * for the cost of a request: msgpackr's general encoder (its type
 * dispatch, its extension lookups for a binary value, its per-call set-up)
 * was the largest share of the SDK's own CPU a pipelined put.
 *
 * Frames are views of a shared slab, each written once and never again: a
 * full slab is left to the frames that view it, and a new one is taken
 * (the socket may still hold a frame it has not written).
 */

const SLAB_BYTES = 64 * 1024
const hasOwn = Object.prototype.hasOwnProperty

let slab = Buffer.allocUnsafe(SLAB_BYTES)
/** Where the frame being written starts, and its next byte. */
let start = 0
let at = 0

/** The msgpack of the batch's messages as encodeFrame writes them (one alone, several as an array). */
export function encodeRequestFrame(batch: readonly { message: Record<string, unknown> }[]): Buffer {
  const frame = writeFrame(batch)
  return frame ?? encodeFrame(batch.length === 1 ? batch[0].message : batch.map((r) => r.message))
}

function writeFrame(batch: readonly { message: Record<string, unknown> }[]): Buffer | null {
  start = at
  const count = batch.length
  if (count !== 1) {
    room(5)
    if (count < 0x10) slab[at++] = 0x90 | count
    else if (count < 0x10000) {
      slab[at] = 0xdc
      slab.writeUInt16BE(count, at + 1)
      at += 3
    } else {
      slab[at] = 0xdd
      slab.writeUInt32BE(count, at + 1)
      at += 5
    }
  }
  for (let i = 0; i < count; i++) {
    if (!writeMessage(batch[i].message)) {
      at = start
      return null
    }
  }
  return slab.subarray(start, at)
}

/** At least `bytes` more bytes of room: a new slab, the frame begun so far copied to it, when this one is short. */
function room(bytes: number): void {
  if (at + bytes <= slab.length) return
  const written = at - start
  const next = Buffer.allocUnsafe(Math.max(SLAB_BYTES, 2 * (written + bytes)))
  slab.copy(next, 0, start, at)
  slab = next
  start = 0
  at = written
}

/** A plain object as msgpackr writes one: a map16 whatever its size, then each own enumerable key and its value. */
function writeMessage(message: Record<string, unknown>): boolean {
  // Anything but a plain object takes msgpackr's other paths.
  if (message === null || typeof message !== 'object' || message.constructor !== Object) return false
  room(3)
  slab[at] = 0xde
  // From the frame's start: a new slab moves the frame.
  const sizeAt = at + 1 - start
  at += 3
  let size = 0
  for (const key in message) {
    // As msgpackr (and, unlike Object.hasOwn, optimised away by V8 in a for-in over an object's own keys).
    if (!hasOwn.call(message, key)) continue
    writeString(key)
    if (!writeValue(message[key])) return false
    size++
  }
  if (size > 0xffff) return false
  slab[start + sizeAt] = size >> 8
  slab[start + sizeAt + 1] = size & 0xff
  return true
}

function writeValue(value: unknown): boolean {
  switch (typeof value) {
    case 'string':
      writeString(value)
      return true
    case 'number':
      writeNumber(value)
      return true
    case 'boolean':
      room(1)
      slab[at++] = value ? 0xc3 : 0xc2
      return true
    case 'object':
      if (value === null) {
        room(1)
        slab[at++] = 0xc0
        return true
      }
      if (value instanceof Uint8Array) {
        writeBinary(value)
        return true
      }
      return false
    default:
      return false
  }
}

/** As msgpackr: whole numbers of 32 bits as the smallest int that holds them, anything else as a float64. */
function writeNumber(value: number): void {
  room(9)
  if (value >>> 0 === value) {
    if (value < 0x80) slab[at++] = value
    else if (value < 0x100) {
      slab[at++] = 0xcc
      slab[at++] = value
    } else if (value < 0x10000) {
      slab[at] = 0xcd
      slab.writeUInt16BE(value, at + 1)
      at += 3
    } else {
      slab[at] = 0xce
      slab.writeUInt32BE(value, at + 1)
      at += 5
    }
  } else if (value >> 0 === value) {
    if (value >= -0x20) slab[at++] = 0x100 + value
    else if (value >= -0x80) {
      slab[at++] = 0xd0
      slab[at++] = 0x100 + value
    } else if (value >= -0x8000) {
      slab[at] = 0xd1
      slab.writeInt16BE(value, at + 1)
      at += 3
    } else {
      slab[at] = 0xd2
      slab.writeInt32BE(value, at + 1)
      at += 5
    }
  } else {
    slab[at] = 0xcb
    slab.writeDoubleBE(value, at + 1)
    at += 9
  }
}

/**
 * As msgpackr: its UTF-8 bytes after the smallest header for their count;
 * a string of fewer than 64 characters encoded here as msgpackr encodes it,
 * a longer one by Buffer's encoder, as msgpackr does (a surrogate that is
 * not half of a pair as U+FFFD either way).
 */
function writeString(value: string): void {
  const chars = value.length
  const guess = chars < 0x20 ? 1 : chars < 0x100 ? 2 : chars < 0x10000 ? 3 : 5
  // Room for the largest header, not the guessed one: the bytes may need a longer header than the
  // characters (31 characters of 3 bytes each take a str8), and are moved up to it below.
  room(5 + chars * 3)
  const buf = slab
  const from = at + guess
  let length: number
  if (chars < 0x40) {
    let to = from
    for (let i = 0; i < chars; i++) {
      const c1 = value.charCodeAt(i)
      if (c1 < 0x80) buf[to++] = c1
      else if (c1 < 0x800) {
        buf[to++] = (c1 >> 6) | 0xc0
        buf[to++] = (c1 & 0x3f) | 0x80
      } else if ((c1 & 0xfc00) === 0xd800 && (value.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
        const code = 0x10000 + ((c1 & 0x03ff) << 10) + (value.charCodeAt(++i) & 0x03ff)
        buf[to++] = (code >> 18) | 0xf0
        buf[to++] = ((code >> 12) & 0x3f) | 0x80
        buf[to++] = ((code >> 6) & 0x3f) | 0x80
        buf[to++] = (code & 0x3f) | 0x80
      } else if ((c1 & 0xf800) === 0xd800) {
        // A surrogate without its other half: U+FFFD, as Buffer's encoder and msgpackr write it.
        buf[to++] = 0xef
        buf[to++] = 0xbf
        buf[to++] = 0xbd
      } else {
        buf[to++] = (c1 >> 12) | 0xe0
        buf[to++] = ((c1 >> 6) & 0x3f) | 0x80
        buf[to++] = (c1 & 0x3f) | 0x80
      }
    }
    length = to - from
  } else length = buf.write(value, from, buf.length - from, 'utf8')
  const header = length < 0x20 ? 1 : length < 0x100 ? 2 : length < 0x10000 ? 3 : 5
  if (header !== guess) slab.copyWithin(at + header, from, from + length)
  if (header === 1) slab[at] = 0xa0 | length
  else if (header === 2) {
    slab[at] = 0xd9
    slab[at + 1] = length
  } else if (header === 3) {
    slab[at] = 0xda
    slab.writeUInt16BE(length, at + 1)
  } else {
    slab[at] = 0xdb
    slab.writeUInt32BE(length, at + 1)
  }
  at += header + length
}

function writeBinary(value: Uint8Array): void {
  const length = value.byteLength
  room(5 + length)
  if (length < 0x100) {
    slab[at++] = 0xc4
    slab[at++] = length
  } else if (length < 0x10000) {
    slab[at] = 0xc5
    slab.writeUInt16BE(length, at + 1)
    at += 3
  } else {
    slab[at] = 0xc6
    slab.writeUInt32BE(length, at + 1)
    at += 5
  }
  slab.set(value, at)
  at += length
}
