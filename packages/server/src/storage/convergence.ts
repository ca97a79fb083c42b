import { createHash } from 'node:crypto'
import { isTombstone, type KeyRecord, readRecord, writeRecord } from './record.js'

/**
 * The convergence digest: an order-independent hash of every key's visible
 * state, so that two nodes with equal digests hold the same data.
 *
 *   digest = sum over keys of H(key, state) mod 2^64
 *
 * H is SHA-256 cut to 64 bits, over the key and its canonical state: the
 * winner with its type and (HLC, origin), or the siblings in dot order.
 * Deleted keys (tombstones) and anything local to one node (a modification
 * seq, a causal context) count for nothing, so collecting a tombstone
 * leaves the digest as it is. A sum, not XOR: XOR cancels equal terms and
 * is linear, so unrelated states collide trivially.
 *
 * It is kept up to date on every change (subtract the old state's hash, add
 * the new one's), split into 256 sums by a hash of the key, so that two
 * nodes whose digests differ can tell which keys to compare.
 */
const DIGEST_BUCKETS = 256
const MOD = 1n << 64n
const MASK = MOD - 1n

/** The canonical bytes of a record's visible state, or null when the key reads as missing. */
function visibleState(record: Buffer | undefined): Buffer | null {
  if (record === undefined) return null
  // Plain records (no metadata): the record is its state.
  if (record[0] !== 0x10) return record
  const parsed = readRecord(record)
  if (isTombstone(parsed)) return null
  const canonical: KeyRecord = { version: parsed.version, expiresAt: parsed.expiresAt, body: parsed.body }
  if (parsed.body.kind === 'siblings') canonical.body = { ...parsed.body, context: {} }
  return writeRecord(canonical)
}

/** H(key, state) as an unsigned 64-bit integer (0n for a key that reads as missing). */
function stateHash(key: Uint8Array, record: Buffer | undefined): bigint {
  const state = visibleState(record)
  if (state === null) return 0n
  const length = Buffer.allocUnsafe(4)
  length.writeUInt32BE(key.byteLength)
  const digest = createHash('sha256').update(length).update(key).update(state).digest()
  return digest.readBigUInt64BE(0)
}

/** Which of the 256 sums a key counts in (FNV-1a of its bytes): by key only, never by state. */
function bucketOf(key: Uint8Array): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    h ^= key[i]
    h = Math.imul(h, 0x01000193)
  }
  return (h ^ (h >>> 8) ^ (h >>> 16) ^ (h >>> 24)) & 0xff
}

export class ConvergenceDigest {
  readonly buckets = new BigUint64Array(DIGEST_BUCKETS)

  /** Applies a key's change from `before` to `after` (records; undefined for none). */
  change(key: Uint8Array, before: Buffer | undefined, after: Buffer | undefined): void {
    const out = stateHash(key, before)
    const into = stateHash(key, after)
    if (out === into) return
    const b = bucketOf(key)
    this.buckets[b] = (this.buckets[b] - out + into + MOD) & MASK
  }

  /** The sum of all buckets mod 2^64. */
  get value(): bigint {
    let sum = 0n
    for (const b of this.buckets) sum = (sum + b) & MASK
    return sum
  }

  /** The digest as 16 hex digits (how status shows it). */
  get hex(): string {
    return this.value.toString(16).padStart(16, '0')
  }

  copyFrom(other: ConvergenceDigest): void {
    this.buckets.set(other.buckets)
  }

  /** 256 big-endian u64s: how it is persisted. */
  encode(): Buffer {
    const out = Buffer.allocUnsafe(DIGEST_BUCKETS * 8)
    for (let i = 0; i < DIGEST_BUCKETS; i++) out.writeBigUInt64BE(this.buckets[i], i * 8)
    return out
  }

  static decode(bytes: Uint8Array | undefined): ConvergenceDigest {
    const digest = new ConvergenceDigest()
    if (bytes === undefined || bytes.byteLength !== DIGEST_BUCKETS * 8) return digest
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    for (let i = 0; i < DIGEST_BUCKETS; i++) digest.buckets[i] = buf.readBigUInt64BE(i * 8)
    return digest
  }
}
