/**
 * A snapshot chunk: data records of a full sync packed into one binary
 * blob, so that neither side builds or checks a msgpack value per key.
 *
 *   repeated: u32 BE key length | key bytes | u32 BE record length | record bytes
 *
 * Keys are user keys (no storage prefix) and records are stored records
 * (tag byte + value), exactly as the data sublevel holds them.
 */

import { isUtf8 } from 'node:buffer'

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
 * Packs a chunk record by record, with keys given as strings: a snapshot
 * reads its keys from LevelDB as strings (tandem keys are UTF-8 text), which
 * costs far less per record than a Buffer each, and writes their UTF-8
 * straight into the chunk, where the record's checksum is then checked
 * against those bytes. One buffer per chunk, of `capacity` bytes (more
 * only when a large record needs it).
 */
export class ChunkPacker {
  private out: Buffer
  private at = 0
  /** Records packed since the last take(). */
  count = 0

  constructor(private readonly capacity: number) {
    this.out = Buffer.allocUnsafe(capacity)
  }

  /** Bytes packed since the last take(). */
  get size(): number {
    return this.at
  }

  /**
   * Writes a key, the characters of `text` from `from` on, where the next
   * record's key goes (at keyAt), and returns its length in UTF-8: `bytes`
   * (what check() reads) hold it until commit() or the next placeKey().
   * An ASCII key (most are) is written a character a byte by a loop, which
   * for a short key costs less than measuring it and then writing it with
   * Buffer's UTF-8 encoder (two native calls and a substring each record);
   * another key is written by that encoder. The buffer grows when the
   * record (and the key, at most three bytes a character) would not fit.
   */
  placeKey(text: string, from: number, recordLength: number): number {
    const chars = text.length - from
    const need = this.at + 8 + chars * 3 + recordLength
    if (need > this.out.length) {
      // A record larger than the room left: this chunk's buffer grows.
      const grown = Buffer.allocUnsafe(Math.max(need, this.capacity))
      this.out.copy(grown, 0, 0, this.at)
      this.out = grown
    }
    const out = this.out
    let k = this.at + 4
    for (let i = from; i < text.length; i++) {
      const c = text.charCodeAt(i)
      if (c >= 0x80) return out.write(from === 0 ? text : text.slice(from), this.at + 4, 'utf8')
      out[k++] = c
    }
    return chars
  }

  /** Where the key placed last starts in `bytes`. */
  get keyAt(): number {
    return this.at + 4
  }

  /** The chunk's bytes so far, the key placed last included (for its checksum). */
  get bytes(): Buffer {
    return this.out
  }

  /** Adds the record of the key placed last. */
  commit(keyBytes: number, record: Uint8Array): void {
    let at = this.out.writeUInt32BE(keyBytes, this.at) + keyBytes
    at = this.out.writeUInt32BE(record.length, at)
    this.out.set(record, at)
    this.at = at + record.length
    this.count++
  }

  /** The chunk packed so far; the packer starts a new one. */
  take(): { chunk: Buffer; count: number } {
    const out = { chunk: this.out.subarray(0, this.at), count: this.count }
    this.out = Buffer.allocUnsafe(this.capacity)
    this.at = 0
    this.count = 0
    return out
  }
}

/**
 * Calls `each(key, record)` for every record of a chunk, with `prefix`
 * written before every key. Keys are laid out in one buffer allocated for
 * the chunk; records are views into `chunk` (no copy). Throws on a chunk
 * that does not parse to the last byte, or that holds a key that is not
 * UTF-8: tandem keys are UTF-8 text, and a snapshot of this node reads
 * them back as strings (Store.snapshot), so such a key could not be sent
 * on as the bytes its record's checksum covers.
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
    if (!keyIsUtf8(src, at - keyLength, at)) throw new Error('snapshot chunk holds a key that is not UTF-8')
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
    // Byte loops: Buffer.copy makes a view of its source range for every
    // call, two a record, which cost more than copying a short key.
    for (let i = 0; i < prefix.length; i++) keys[k++] = prefix[i]
    if (keyLength > LONG_KEY) k += src.copy(keys, k, at, at + keyLength)
    else for (let i = at, end = at + keyLength; i < end; i++) keys[k++] = src[i]
    at += keyLength
    const recordLength = src.readUInt32BE(at)
    at += 4
    each(keys.subarray(keyStart, k), src.subarray(at, at + recordLength))
    at += recordLength
  }
  return count
}

/** Keys longer than this are copied with Buffer.copy, past the cost of its view. */
const LONG_KEY = 64

/** Whether src[from..to) is UTF-8: a loop for ASCII keys (most are), the native check past it. */
function keyIsUtf8(src: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (src[i] >= 0x80) return isUtf8(src.subarray(i, to))
  return true
}
