import { endianness } from 'node:os'
import { isStub, stubTerm } from './lww-heads.js'
import {
  DECODE_SPAN,
  isTombstone,
  isTombstoneRecord,
  type KeyRecord,
  PLAIN_SPAN_FLAGS,
  RECORD_META,
  readRecord,
  replicatedSpan,
  spanFlags,
  spanFrom,
  TOMBSTONE_SPAN,
  writeRecord,
} from './record.js'

/**
 * The convergence digest: an order-independent hash of every key's visible
 * state, so that two nodes with equal digests hold the same data.
 *
 *   digest = sum over keys of H(key, state) mod 2^64
 *
 * H is a 64-bit hash (termHash, DIGEST_HASH 2) over the key and its
 * canonical state: the winner with its type and (HLC, origin), or the
 * siblings in dot order. It only has to tell states apart, not resist an
 * adversary: SHA-256 cut to 64 bits (DIGEST_HASH 1, data dirs before
 * 2026-11-30) cost every change two native calls and a string, a third
 * of what the digest cost a write. Every node of a group must hash
 * alike to compare digests: heartbeats say which hash a digest is of, and
 * a data dir's persisted sums are of DIGEST_HASH (Store rebuilds them from
 * the data when they are of an older one).
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
const TWO_32 = 0x1_0000_0000

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
 * H(key, state), as its high and low 32 bits, into hashOut[at], hashOut[at
 * + 1] (0, 0 for a key that reads as missing). The hashed bytes are the
 * key's length (u32), the key, then the state; for a value or a tombstone
 * the state is cut from the stored record as it is (replicatedSpan),
 * without decoding and encoding it again: every write changes two keys'
 * hashes (the old state's and the new one's), so this is on the write path
 * of every multi-master node, and it allocates nothing for a state that
 * fits the scratch.
 */
function stateHash(
  key: Uint8Array,
  keyStart: number,
  record: Buffer | undefined,
  at: number,
  known = DECODE_SPAN,
): void {
  hashOut[at] = 0
  hashOut[at + 1] = 0
  if (record === undefined) return
  let head = -1
  let state: Buffer = record
  let from = 0
  if (known >= 0) {
    // A record just built, its span known from how (a value's: no stub, no tombstone).
    const flags = spanFlags(known)
    if (flags !== PLAIN_SPAN_FLAGS) head = flags
    from = spanFrom(known)
  } else if (isStub(record)) {
    // Its term, as it was when the record it stands for was written (a tombstone's is 0).
    if (!isTombstoneRecord(record)) stubTerm(record, hashOut, at)
    return
  } else if (record[0] === RECORD_META) {
    const span = replicatedSpan(record)
    if (span === TOMBSTONE_SPAN) return
    if (span === DECODE_SPAN) {
      const decoded = visibleState(record)
      if (decoded === null) return
      state = decoded
    } else {
      const flags = spanFlags(span)
      if (flags !== PLAIN_SPAN_FLAGS) head = flags
      from = spanFrom(span)
    }
  }
  // Plain records (no metadata): the record is its state.
  const headLength = head < 0 ? 0 : 2
  // length, not byteLength (the same for bytes): a typed array's byteLength is a generic property load in optimised code.
  const stateAt = 4 + key.length - keyStart + headLength
  const length = stateAt + state.length - from
  let input: Buffer
  if (SCRATCH_AT + length <= SCRATCH_BYTES) {
    // The whole record goes in first, its bytes before `from` landing
    // where the key's length, the key and the head then overwrite them
    // (SCRATCH_AT leaves room for the longest such prefix): a copy from
    // `from` on (Buffer#copy with a start) makes a view of the record every
    // call, for each of the two states every change hashes.
    scratch.set(state, SCRATCH_AT + stateAt - from)
    writeHead(scratch, SCRATCH_AT, key, keyStart, head)
    input = scratch
  } else {
    input = Buffer.allocUnsafe(length)
    writeHead(input, 0, key, keyStart, head)
    state.copy(input, stateAt, from)
  }
  termHash(input, input === scratch ? SCRATCH_AT : 0, length, at)
}

/**
 * The key's length (u32), the key (its bytes from keyStart), then the head
 * (RECORD_META and the flags) when `head` is not -1, at `at`.
 */
function writeHead(input: Buffer, at: number, key: Uint8Array, keyStart: number, head: number): void {
  const length = key.length - keyStart
  // Byte by byte, as getU32 reads (no Buffer method looked up a call).
  input[at] = length >>> 24
  input[at + 1] = length >>> 16
  input[at + 2] = length >>> 8
  input[at + 3] = length
  if (keyStart === 0) input.set(key, at + 4)
  // A key's few bytes from keyStart: a loop, not a view of them made for set().
  else for (let i = 0; i < length; i++) input[at + 4 + i] = key[keyStart + i]
  if (head >= 0) {
    input[at + 4 + length] = RECORD_META
    input[at + 5 + length] = head
  }
}

/** Which hash the digest's terms are of (see above): what heartbeats and status name. */
export const DIGEST_HASH = 2

/**
 * The 64-bit term of `length` bytes of `input` from `from`, as its high
 * and low halves into hashOut[at], hashOut[at + 1]: two 32-bit lanes over
 * the bytes four at a time (MurmurHash3's block mix in the first, another
 * multiplier in the second), each finished with MurmurHash3's avalanche
 * after taking the other in, so every bit of the input moves every bit of
 * both halves. Plain integer arithmetic on the event loop: ~0.1 us for a
 * 100-byte state, where hash('sha256') took 0.4-0.6 us.
 */
function termHash(input: Uint8Array, from: number, length: number, at: number): void {
  let h1 = 0x9747b28c ^ length
  let h2 = 0x85ebca6b ^ length
  const end = from + (length & ~3)
  // Laid out in the scratch from a 4-byte boundary on a little-endian
  // machine, each block is one element of its Int32Array view: the same
  // number the four bytes make, in one read.
  const words = input === scratch && (from & 3) === 0 && LITTLE_ENDIAN
  let i = from
  for (; i < end; i += 4) {
    let k = words ? scratchWords[i >> 2] : input[i] | (input[i + 1] << 8) | (input[i + 2] << 16) | (input[i + 3] << 24)
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    h1 ^= k
    h1 = (h1 << 13) | (h1 >>> 19)
    h1 = (Math.imul(h1, 5) + 0xe6546b64) | 0
    h2 = (Math.imul(h2 ^ k, 0x2c1b3c6d) + 0x297a2d39) | 0
    h2 = (h2 << 17) | (h2 >>> 15)
  }
  let k = 0
  const rest = length & 3
  if (rest === 3) k ^= input[i + 2] << 16
  if (rest >= 2) k ^= input[i + 1] << 8
  if (rest >= 1) {
    k ^= input[i]
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    h1 ^= k
    h2 ^= Math.imul(k, 0x2c1b3c6d)
  }
  h1 = (h1 + h2) | 0
  h2 = (h2 + h1) | 0
  h1 = avalanche(h1)
  h2 = avalanche(h2)
  h1 = (h1 + h2) | 0
  h2 = (h2 + h1) | 0
  hashOut[at] = h1 >>> 0
  hashOut[at + 1] = h2 >>> 0
}

/** MurmurHash3's finaliser of a 32-bit lane. */
function avalanche(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  return h ^ (h >>> 16)
}

/** Where stateHash lays out what it hashes: hash() is synchronous, so one buffer serves every call. */
const SCRATCH_BYTES = 64 * 1024
const scratch = Buffer.from(new ArrayBuffer(SCRATCH_BYTES))
/** The scratch's bytes as little-endian 32-bit blocks (termHash reads them so on a little-endian machine). */
const scratchWords = new Int32Array(scratch.buffer, 0, SCRATCH_BYTES >> 2)
/**
 * Where the hashed bytes start in the scratch: at least the longest
 * metadata a record holds before its replicated span (flags, checksum,
 * modification seq: 14 bytes).
 */
const SCRATCH_AT = 16
/** stateHash's answers: the old state's hash at 0 and 1, the new one's at 2 and 3. */
const hashOut = new Uint32Array(4)

/** The high half of the last change()'s new state's term (what LwwHeads keeps of the record written). */
export function lastTermHigh(): number {
  return hashOut[2]
}

/** The low half of the last change()'s new state's term. */
export function lastTermLow(): number {
  return hashOut[3]
}

/** Which of the 256 sums a key (its bytes from keyStart) counts in (FNV-1a of its bytes): by key only, never by state. */
function bucketOf(key: Uint8Array, keyStart: number): number {
  let h = 0x811c9dc5
  for (let i = keyStart; i < key.length; i++) {
    h ^= key[i]
    h = Math.imul(h, 0x01000193)
  }
  return (h ^ (h >>> 8) ^ (h >>> 16) ^ (h >>> 24)) & 0xff
}

export class ConvergenceDigest {
  /**
   * The 256 sums mod 2^64, each as two 32-bit halves (high at 2b, low at
   * 2b + 1): the write path adds and subtracts in plain numbers, where
   * BigInt arithmetic allocated every intermediate.
   */
  private readonly halves = new Uint32Array(DIGEST_BUCKETS * 2)
  /**
   * The sum of the 256 sums mod 2^64 (value), as two 32-bit halves, kept
   * with every change: every ack a link sends carries the digest, and under
   * writes every group changes it, so summing the buckets for it (~10k
   * instructions under callgrind) was done for most acks.
   */
  private totalHigh = 0
  private totalLow = 0
  /** hex as last computed, until the buckets change: every ack and heartbeat on every link asks for it. */
  private hexCache: string | null = null

  /**
   * Applies a key's change from `before` to `after` (records; undefined
   * for none). The key is `key`'s bytes from `keyStart` (a data key's
   * user key, without a view of it made). `afterSpan`, when not
   * DECODE_SPAN, is replicatedSpan(after) as the caller knows it from
   * building the record (a value's: PUT_RECORD_SPAN).
   */
  change(
    key: Uint8Array,
    before: Buffer | undefined,
    after: Buffer | undefined,
    keyStart = 0,
    afterSpan = DECODE_SPAN,
  ): void {
    stateHash(key, keyStart, before, 0)
    stateHash(key, keyStart, after, 2, afterSpan)
    if (hashOut[0] === hashOut[2] && hashOut[1] === hashOut[3]) return
    const at = bucketOf(key, keyStart) * 2
    const halves = this.halves
    // (sum - out + into) mod 2^64, with the low half's borrow or carry moved into the high half.
    const low = halves[at + 1] - hashOut[1] + hashOut[3]
    const carry = Math.floor(low / TWO_32)
    halves[at + 1] = low - carry * TWO_32
    halves[at] = (halves[at] - hashOut[0] + hashOut[2] + carry) >>> 0
    const total = this.totalLow - hashOut[1] + hashOut[3]
    const totalCarry = Math.floor(total / TWO_32)
    this.totalLow = total - totalCarry * TWO_32
    this.totalHigh = (this.totalHigh - hashOut[0] + hashOut[2] + totalCarry) >>> 0
    this.hexCache = null
  }

  /** The sum of all buckets mod 2^64. */
  get value(): bigint {
    return (BigInt(this.totalHigh) << 32n) + BigInt(this.totalLow)
  }

  /** The digest as 16 hex digits (how status shows it). */
  get hex(): string {
    this.hexCache ??= hex8(this.totalHigh) + hex8(this.totalLow)
    return this.hexCache
  }

  /** Adds `other`'s sums to these, bucket by bucket mod 2^64 (a group's changes, kept from zero, onto the digest they were made on). */
  add(other: ConvergenceDigest): void {
    const halves = this.halves
    const theirs = other.halves
    for (let at = 0; at < DIGEST_BUCKETS * 2; at += 2) {
      if (theirs[at] === 0 && theirs[at + 1] === 0) continue
      const low = halves[at + 1] + theirs[at + 1]
      const carry = low >= TWO_32 ? 1 : 0
      halves[at + 1] = low - carry * TWO_32
      halves[at] = (halves[at] + theirs[at] + carry) >>> 0
    }
    const total = this.totalLow + other.totalLow
    const totalCarry = total >= TWO_32 ? 1 : 0
    this.totalLow = total - totalCarry * TWO_32
    this.totalHigh = (this.totalHigh + other.totalHigh + totalCarry) >>> 0
    this.hexCache = null
  }

  copyFrom(other: ConvergenceDigest): void {
    this.halves.set(other.halves)
    this.totalHigh = other.totalHigh
    this.totalLow = other.totalLow
    this.hexCache = null
  }

  /**
   * 256 big-endian u64s: how it is persisted (every multi-master group
   * writes it). The halves' bytes copied at once and swapped where the
   * machine is little-endian (one native pass), not written a u32 at a
   * time: 512 writeUInt32BE calls were ~7 us a group.
   */
  encode(): Buffer {
    const out = Buffer.allocUnsafe(DIGEST_BUCKETS * 8)
    if (LITTLE_ENDIAN) {
      out.set(new Uint8Array(this.halves.buffer, this.halves.byteOffset, DIGEST_BUCKETS * 8))
      out.swap32()
    } else {
      for (let i = 0; i < DIGEST_BUCKETS * 2; i++) out.writeUInt32BE(this.halves[i], i * 4)
    }
    return out
  }

  static decode(bytes: Uint8Array | undefined): ConvergenceDigest {
    const digest = new ConvergenceDigest()
    if (bytes === undefined || bytes.byteLength !== DIGEST_BUCKETS * 8) return digest
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    for (let i = 0; i < DIGEST_BUCKETS * 2; i++) digest.halves[i] = buf.readUInt32BE(i * 4)
    let high = 0
    let low = 0
    // Below 2^41 after 256 additions of 32-bit halves: exact in a double.
    for (let at = 0; at < DIGEST_BUCKETS * 2; at += 2) {
      high += digest.halves[at]
      low += digest.halves[at + 1]
    }
    const carry = Math.floor(low / TWO_32)
    digest.totalLow = low - carry * TWO_32
    digest.totalHigh = (high + carry) % TWO_32
    return digest
  }
}

/** A u32 as 8 hex digits. */
function hex8(n: number): string {
  const digits = n.toString(16)
  return digits.length === 8 ? digits : '0'.repeat(8 - digits.length) + digits
}

const LITTLE_ENDIAN = endianness() === 'LE'
