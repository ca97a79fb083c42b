/**
 * CRC-32C (Castagnoli), the checksum LevelDB puts on every block of its
 * tables and every record of its write-ahead log and manifest, and its
 * "masked" form as stored on disk. Node's zlib has only the IEEE CRC-32.
 */

const TABLES = (() => {
  // Slicing-by-8: eight 256-entry tables, eight bytes per step.
  const t = new Uint32Array(8 * 256)
  for (let i = 0; i < 256; i++) {
    let c = i
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
    t[i] = c >>> 0
  }
  for (let i = 0; i < 256; i++) {
    let c = t[i]
    for (let s = 1; s < 8; s++) {
      c = t[c & 0xff] ^ (c >>> 8)
      t[s * 256 + i] = c >>> 0
    }
  }
  return t
})()

/** CRC-32C of bytes [start, end) of `buf`, continuing from `crc` (0 to start). */
export function crc32c(buf: Uint8Array, start = 0, end = buf.length, crc = 0): number {
  const t = TABLES
  let c = ~crc >>> 0
  let i = start
  for (; i + 8 <= end; i += 8) {
    const lo = (c ^ (buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24))) >>> 0
    c =
      t[1792 + (lo & 0xff)] ^
      t[1536 + ((lo >>> 8) & 0xff)] ^
      t[1280 + ((lo >>> 16) & 0xff)] ^
      t[1024 + (lo >>> 24)] ^
      t[768 + buf[i + 4]] ^
      t[512 + buf[i + 5]] ^
      t[256 + buf[i + 6]] ^
      t[buf[i + 7]]
  }
  for (; i < end; i++) c = t[(c ^ buf[i]) & 0xff] ^ (c >>> 8)
  return ~c >>> 0
}

/** LevelDB stores CRCs rotated and offset, so that a CRC of data that itself holds CRCs is not trivially related. */
export function unmaskCrc(masked: number): number {
  const rot = (masked - 0xa282ead8) >>> 0
  return ((rot >>> 17) | (rot << 15)) >>> 0
}
