import { hash } from 'node:crypto'
import {
  isTombstone,
  type KeyRecord,
  RECORD_META,
  readRecord,
  replicatedSpan,
  TOMBSTONE_SPAN,
  writeRecord,
} from './record.js'

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

/**
 * The canonical bytes of a record's visible state, or null when the key
 * reads as missing, by decoding the record (what stateHash does for the
 * records replicatedSpan cannot place).
 */
function visibleState(record: Buffer): Buffer | null {
  const parsed = readRecord(record)
  if (isTombstone(parsed)) return null
  const canonical: KeyRecord = { version: parsed.version, expiresAt: parsed.expiresAt, body: parsed.body }
  if (parsed.body.kind === 'siblings') canonical.body = { ...parsed.body, context: {} }
  return writeRecord(canonical)
}

/**
 * H(key, state) as an unsigned 64-bit integer (0n for a key that reads as
 * missing). The hashed bytes are the key's length (u32), the key, then the
 * state; for a value or a tombstone the state is cut from the stored record
 * as it is (replicatedSpan), without decoding and encoding it again: every
 * write changes two keys' hashes (the old state's and the new one's), so
 * this is on the write path of every multi-master node.
 */
function stateHash(key: Uint8Array, record: Buffer | undefined): bigint {
  if (record === undefined) return 0n
  let head = -1
  let state: Buffer = record
  if (record[0] === RECORD_META) {
    const span = replicatedSpan(record)
    if (span === TOMBSTONE_SPAN) return 0n
    if (span === null) {
      const decoded = visibleState(record)
      if (decoded === null) return 0n
      state = decoded
    } else {
      head = span.flags
      state = record.subarray(span.from)
    }
  }
  // Plain records (no metadata): the record is its state.
  const headLength = head < 0 ? 0 : 2
  const length = 4 + key.byteLength + headLength + state.length
  const input = length <= SCRATCH_BYTES ? scratch : Buffer.allocUnsafe(length)
  input.writeUInt32BE(key.byteLength, 0)
  input.set(key, 4)
  let at = 4 + key.byteLength
  if (head >= 0) {
    input[at++] = RECORD_META
    input[at++] = head
  }
  input.set(state, at)
  return hash('sha256', input.subarray(0, length), 'buffer').readBigUInt64BE(0)
}

/** Where stateHash lays out what it hashes: hash() is synchronous, so one buffer serves every call. */
const SCRATCH_BYTES = 64 * 1024
const scratch = Buffer.allocUnsafe(SCRATCH_BYTES)

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
  /** hex as last computed, until the buckets change: every ack and heartbeat on every link asks for it. */
  private hexCache: string | null = null

  /** Applies a key's change from `before` to `after` (records; undefined for none). */
  change(key: Uint8Array, before: Buffer | undefined, after: Buffer | undefined): void {
    const out = stateHash(key, before)
    const into = stateHash(key, after)
    if (out === into) return
    const b = bucketOf(key)
    this.buckets[b] = (this.buckets[b] - out + into + MOD) & MASK
    this.hexCache = null
  }

  /** The sum of all buckets mod 2^64. */
  get value(): bigint {
    let sum = 0n
    for (const b of this.buckets) sum = (sum + b) & MASK
    return sum
  }

  /** The digest as 16 hex digits (how status shows it). */
  get hex(): string {
    this.hexCache ??= this.value.toString(16).padStart(16, '0')
    return this.hexCache
  }

  copyFrom(other: ConvergenceDigest): void {
    this.buckets.set(other.buckets)
    this.hexCache = null
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
