import type { Value } from '@tandem/protocol'

/**
 * How a value sits in the data sublevel: one tag byte, then the bytes.
 * The tag keeps the type the client stored (string or binary) so it comes
 * back the same. Tags from 0x10 up are reserved for records that carry
 * metadata (multi-master timestamps, tombstones, siblings).
 */
const TAG_STRING = 0x00
const TAG_BINARY = 0x01

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

/** A record from a value already in bytes: a string's UTF-8 bytes, or binary. */
export function recordFromBytes(bytes: Uint8Array, binary: boolean): Buffer {
  const out = Buffer.allocUnsafe(bytes.byteLength + 1)
  out[0] = binary ? TAG_BINARY : TAG_STRING
  out.set(bytes, 1)
  return out
}

export function decodeRecord(record: Uint8Array): Value {
  const buf = Buffer.isBuffer(record) ? record : Buffer.from(record.buffer, record.byteOffset, record.byteLength)
  switch (buf[0]) {
    case TAG_STRING:
      return buf.toString('utf8', 1)
    case TAG_BINARY:
      return buf.subarray(1)
    default:
      throw new Error(`unknown record tag 0x${(buf[0] ?? 0).toString(16)}`)
  }
}
