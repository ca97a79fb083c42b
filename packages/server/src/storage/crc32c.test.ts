import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { crc32c } from './crc32c.js'

/** A bit at a time: the definition the table-driven code must agree with. */
function bitwise(buf: Uint8Array, start: number, end: number, crc = 0): number {
  let c = ~crc >>> 0
  for (let i = start; i < end; i++) {
    c ^= buf[i]
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
  }
  return ~c >>> 0
}

describe('crc32c', () => {
  // RFC 3720 (iSCSI), appendix B.4, and the usual check value.
  it('gives the published CRC-32C values', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283)
    expect(crc32c(Buffer.alloc(32, 0))).toBe(0x8a9136aa)
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43)
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i)))).toBe(0x46dd794e)
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)))).toBe(0x113fdb5c)
  })

  it('agrees with the bitwise definition at every length, offset and continuation', () => {
    const buf = randomBytes(300)
    for (let start = 0; start < 20; start++) {
      for (let end = start; end <= buf.length; end += 7) {
        expect(crc32c(buf, start, end)).toBe(bitwise(buf, start, end))
        const mid = start + ((end - start) >> 1)
        // A sum taken in two parts, as a record's is (its key, then its fields).
        expect(crc32c(buf, mid, end, crc32c(buf, start, mid))).toBe(bitwise(buf, start, end))
      }
    }
  })
})
