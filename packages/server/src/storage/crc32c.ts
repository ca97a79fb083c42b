/**
 * CRC-32C (Castagnoli), the checksum LevelDB puts on every block of its
 * tables and every record of its write-ahead log and manifest, and its
 * "masked" form as stored on disk. Node's zlib has only the IEEE CRC-32.
 */

const TABLES = (() => {
  // Slicing-by-16: sixteen 256-entry tables, sixteen bytes per step. Signed
  // entries: XORs of int32s stay small integers to V8, where uint32s
  // past 2^31 become heap numbers until the final >>> 0.
  const t = new Int32Array(16 * 256)
  for (let i = 0; i < 256; i++) {
    let c = i
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
    t[i] = c
  }
  for (let i = 0; i < 256; i++) {
    let c = t[i]
    for (let s = 1; s < 16; s++) {
      c = t[c & 0xff] ^ (c >>> 8)
      t[s * 256 + i] = c
    }
  }
  return t
})()

/**
 * CRC-32C of bytes [start, end) of `buf`, continuing from `crc` (0 to
 * start). Sixteen bytes a step: a snapshot's records (about 120 bytes each,
 * checked once by the node that sends them and once by the one that
 * writes them) take about a quarter less time than at eight.
 */
export function crc32c(buf: Uint8Array, start = 0, end = buf.length, crc = 0): number {
  const t = TABLES
  let c = ~crc
  let i = start
  for (; i + 16 <= end; i += 16) {
    const lo = c ^ (buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24))
    c =
      t[3840 + (lo & 0xff)] ^
      t[3584 + ((lo >>> 8) & 0xff)] ^
      t[3328 + ((lo >>> 16) & 0xff)] ^
      t[3072 + (lo >>> 24)] ^
      t[2816 + buf[i + 4]] ^
      t[2560 + buf[i + 5]] ^
      t[2304 + buf[i + 6]] ^
      t[2048 + buf[i + 7]] ^
      t[1792 + buf[i + 8]] ^
      t[1536 + buf[i + 9]] ^
      t[1280 + buf[i + 10]] ^
      t[1024 + buf[i + 11]] ^
      t[768 + buf[i + 12]] ^
      t[512 + buf[i + 13]] ^
      t[256 + buf[i + 14]] ^
      t[buf[i + 15]]
  }
  for (; i < end; i++) c = t[(c ^ buf[i]) & 0xff] ^ (c >>> 8)
  return ~c >>> 0
}

/** LevelDB stores CRCs rotated and offset, so that a CRC of data that itself holds CRCs is not trivially related. */
export function unmaskCrc(masked: number): number {
  const rot = (masked - 0xa282ead8) >>> 0
  return ((rot >>> 17) | (rot << 15)) >>> 0
}
