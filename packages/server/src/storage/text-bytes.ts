/**
 * A string value held as its UTF-8 bytes: what a RESP SET receives, a value
 * that is valid UTF-8 and so stored as a string (README, values are
 * binary-safe). The record and the log entry write it as the string it is,
 * byte for byte the same (valid UTF-8 decodes to a string whose UTF-8 is
 * those bytes), without a decode to a JavaScript string that both encode
 * back to UTF-8.
 *
 * Whoever makes one has checked the bytes are valid UTF-8 (isUtf8), and
 * must not write to them while the write that carries them is in flight.
 */
export class TextBytes {
  constructor(readonly bytes: Uint8Array) {}

  /** The string it holds. */
  toString(): string {
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength).toString('utf8')
  }
}

/** A put's value as a write carries it: a string, bytes, or a string as its UTF-8. */
export type WriteValue = string | Uint8Array | TextBytes

/** Its stored size: the UTF-8 length of a string, the length of bytes. */
export function writeValueBytes(value: WriteValue): number {
  if (typeof value === 'string') return Buffer.byteLength(value, 'utf8')
  return value instanceof TextBytes ? value.bytes.byteLength : value.byteLength
}
