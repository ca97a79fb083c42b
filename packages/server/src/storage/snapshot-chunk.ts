/**
 * A snapshot chunk: data records of a full sync packed into one binary
 * blob, so that neither side builds or checks a msgpack value per key.
 *
 *   repeated: u32 BE key length | key bytes | u32 BE record length | record bytes
 *
 * Keys are user keys (no storage prefix) and records are stored records
 * (tag byte + value), exactly as the data sublevel holds them.
 */

/** Packs `entries` (full LevelDB keys; the first `skip` bytes of each are dropped) into one chunk. */
export function packChunk(entries: readonly [Buffer, Buffer][], skip: number): Buffer {
  let size = 0
  for (const [key, record] of entries) size += 8 + key.length - skip + record.length
  const out = Buffer.allocUnsafe(size)
  let at = 0
  for (const [key, record] of entries) {
    at = out.writeUInt32BE(key.length - skip, at)
    at += key.copy(out, at, skip)
    at = out.writeUInt32BE(record.length, at)
    at += record.copy(out, at)
  }
  return out
}

/**
 * Calls `each(key, record)` for every record of a chunk, with `prefix`
 * written before every key. Keys are laid out in one buffer allocated for
 * the chunk; records are views into `chunk` (no copy). Throws on a chunk
 * that does not parse to the last byte.
 */
export function unpackChunk(chunk: Uint8Array, prefix: Buffer, each: (key: Buffer, record: Buffer) => void): number {
  const src = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
  // First pass: bounds and the size of the key buffer.
  let at = 0
  let count = 0
  let keyBytes = 0
  while (at < src.length) {
    if (at + 4 > src.length) throw new Error('snapshot chunk cut short in a key length')
    const keyLength = src.readUInt32BE(at)
    at += 4 + keyLength
    if (at + 4 > src.length) throw new Error('snapshot chunk cut short in a key')
    const recordLength = src.readUInt32BE(at)
    at += 4 + recordLength
    if (at > src.length) throw new Error('snapshot chunk cut short in a record')
    if (recordLength === 0) throw new Error('snapshot chunk holds an empty record')
    keyBytes += prefix.length + keyLength
    count++
  }
  const keys = Buffer.allocUnsafe(keyBytes)
  at = 0
  let k = 0
  while (at < src.length) {
    const keyLength = src.readUInt32BE(at)
    at += 4
    const keyStart = k
    k += prefix.copy(keys, k)
    k += src.copy(keys, k, at, at + keyLength)
    at += keyLength
    const recordLength = src.readUInt32BE(at)
    at += 4
    each(keys.subarray(keyStart, k), src.subarray(at, at + recordLength))
    at += recordLength
  }
  return count
}
