import { isUtf8 } from 'node:buffer'

/**
 * Strings on the wire are UTF-8, and a key is its UTF-8 bytes. A JavaScript
 * string holding a lone UTF-16 surrogate has no UTF-8 form: msgpack
 * encoders write U+FFFD in its place (or bytes that are not UTF-8, which
 * decoders read as U+FFFD), so `'k\uD800'` would silently be stored as
 * `'k\uFFFD'`. tandem refuses both instead (INVALID): the SDK checks the
 * strings it is given, and a node checks the bytes it receives.
 */

const LONE_SURROGATE = /[\uD800-\uDFFF]/u

/** Whether a string holds a UTF-16 surrogate that is not half of a pair. */
export function hasLoneSurrogate(s: string): boolean {
  return LONE_SURROGATE.test(s)
}

/** Request fields that hold keys, values or bounds (the only strings a node keeps or compares). */
const STRING_FIELDS = ['key', 'value', 'prefix', 'gt', 'gte', 'lt', 'lte'] as const

/**
 * Whether a decoded request holds U+FFFD in a key, value or bound: only
 * such a request can have been sent with bytes that are not UTF-8 there
 * (decoders read those as U+FFFD), so the bytes are checked only then
 * (messagesWithInvalidUtf8). Other fields (op, unknown fields) are
 * refused, or compared, whatever their bytes.
 */
export function mayHoldInvalidUtf8(request: unknown): boolean {
  if (typeof request !== 'object' || request === null) return false
  const r = request as Record<string, unknown>
  for (const f of STRING_FIELDS) if (typeof r[f] === 'string' && (r[f] as string).includes('\uFFFD')) return true
  if (Array.isArray(r.keys)) {
    for (const k of r.keys) if (typeof k === 'string' && k.includes('\uFFFD')) return true
  }
  if (Array.isArray(r.ops)) {
    for (const op of r.ops) if (mayHoldInvalidUtf8(op)) return true
  }
  return false
}

/**
 * Indexes of the messages in a frame (the elements of a top-level array,
 * else 0 for the one message) holding a msgpack string whose bytes are not
 * UTF-8. The frame must already have decoded (decodeFrame): this walks its
 * structure without checking it.
 */
export function messagesWithInvalidUtf8(frame: Uint8Array): Set<number> {
  const buf = Buffer.isBuffer(frame) ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength)
  const bad = new Set<number>()
  let at = 0
  let messages = 1
  const first = buf[0]
  if (first >= 0x90 && first <= 0x9f) {
    messages = first & 0x0f
    at = 1
  } else if (first === 0xdc) {
    messages = buf.readUInt16BE(1)
    at = 3
  } else if (first === 0xdd) {
    messages = buf.readUInt32BE(1)
    at = 5
  }
  for (let m = 0; m < messages; m++) {
    let items = 1
    while (items > 0) {
      items--
      const b = buf[at++]
      let str = -1
      if (b <= 0x7f || b >= 0xe0) continue
      if (b <= 0x8f) items += 2 * (b & 0x0f)
      else if (b <= 0x9f) items += b & 0x0f
      else if (b <= 0xbf) str = b & 0x1f
      else {
        switch (b) {
          case 0xc4:
            at += 1 + buf[at]
            break
          case 0xc5:
            at += 2 + buf.readUInt16BE(at)
            break
          case 0xc6:
            at += 4 + buf.readUInt32BE(at)
            break
          case 0xc7:
            at += 2 + buf[at]
            break
          case 0xc8:
            at += 3 + buf.readUInt16BE(at)
            break
          case 0xc9:
            at += 5 + buf.readUInt32BE(at)
            break
          case 0xcc:
          case 0xd0:
            at += 1
            break
          case 0xcd:
          case 0xd1:
          case 0xd4:
            at += 2
            break
          case 0xd5:
            at += 3
            break
          case 0xca:
          case 0xce:
          case 0xd2:
            at += 4
            break
          case 0xd6:
            at += 5
            break
          case 0xcb:
          case 0xcf:
          case 0xd3:
            at += 8
            break
          case 0xd7:
            at += 9
            break
          case 0xd8:
            at += 17
            break
          case 0xd9:
            str = buf[at]
            at += 1
            break
          case 0xda:
            str = buf.readUInt16BE(at)
            at += 2
            break
          case 0xdb:
            str = buf.readUInt32BE(at)
            at += 4
            break
          case 0xdc:
            items += buf.readUInt16BE(at)
            at += 2
            break
          case 0xdd:
            items += buf.readUInt32BE(at)
            at += 4
            break
          case 0xde:
            items += 2 * buf.readUInt16BE(at)
            at += 2
            break
          case 0xdf:
            items += 2 * buf.readUInt32BE(at)
            at += 4
            break
          default:
            // nil, false, true
            break
        }
      }
      if (str >= 0) {
        if (!isUtf8(buf.subarray(at, at + str))) bad.add(m)
        at += str
      }
    }
  }
  return bad
}
