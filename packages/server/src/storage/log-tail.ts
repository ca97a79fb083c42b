import { binHeaderLength, writeBinHeader } from '@tandem/protocol'

/**
 * The newest log entries, kept in memory as they commit, so that replicas
 * that keep up are fed without reading LevelDB back. Bounded by count and
 * bytes; a replica further behind reads the log from disk instead.
 *
 * Each entry is kept as a msgpack bin (its header, then its bytes), so
 * that a run of consecutive entries is, as it lies in the ring, the
 * elements of an entries frame's array (binsFrom, encodeEntriesFrame in
 * @tandem/protocol): a frame for every replica is one copy of that run.
 *
 * The bytes live in one ring buffer, with offsets and lengths in typed
 * arrays: no JavaScript object per entry outlives the commit that wrote
 * it: a Buffer per entry would keep tens of thousands of small objects
 * alive, each copied by the young-generation collector and then promoted,
 * and they would be most of what the master's collections walk.
 * The views `from` returns are valid until the next push: send them (copy
 * them) at once.
 *
 * Each entry may be pushed with its identity (origin and counter), which
 * the Store knows as it builds the entry: a peer feed filters the tail by
 * it (originAt, counterAt) without reading it back from the entry's bytes,
 * for every entry of every batch, its peer's own among them (a peer that
 * writes as much as this node holds half of every tail). An entry pushed
 * without one is read by the feed as before.
 */
export class LogTail {
  private ring: Buffer | null = null
  private readonly offsets: Int32Array
  private readonly lengths: Int32Array
  /** Each slot's origin, by its number in `origins` (NO_IDENTITY: pushed without one), and its counter. */
  private readonly originIds: Int32Array
  private readonly counters: Float64Array
  /** Origins by number (a node's group has a handful): the first MAX_ORIGINS seen are numbered, later ones are not. */
  private readonly origins: string[] = []
  private readonly originNumbers = new Map<string, number>()
  private lastOrigin: string | null = null
  private lastOriginId = NO_IDENTITY
  /** Slot of the oldest entry, and how many entries are held. */
  private head = 0
  private count = 0
  /** Seq of the oldest entry held. */
  private firstSeq = 0
  /** Where the next entry's bytes go. */
  private writeAt = 0

  constructor(
    private readonly maxEntries: number,
    private readonly maxBytes: number,
  ) {
    this.offsets = new Int32Array(maxEntries)
    this.lengths = new Int32Array(maxEntries)
    this.originIds = new Int32Array(maxEntries)
    this.counters = new Float64Array(maxEntries)
  }

  /** Keeps `raw` as the entry `seq`, with its identity when `origin` is given (counterAt then answers `counter`). */
  push(seq: number, raw: Buffer, origin: string | null = null, counter = 0): void {
    if (this.count > 0 && seq !== this.firstSeq + this.count) this.reset() // never hold a gap
    const size = binHeaderLength(raw.length) + raw.length
    // Too big to keep, or empty: the next push starts afresh.
    if (raw.length === 0 || size > this.maxBytes) return this.reset()
    if (this.ring === null) this.ring = Buffer.alloc(this.maxBytes)
    if (this.count === 0) {
      this.writeAt = 0
      this.firstSeq = seq
    }
    if (this.writeAt + size > this.maxBytes) {
      // Wrap: the entries between here and the end of the ring are the
      // oldest (the newest end here); drop them, then start again at 0.
      while (this.count > 0 && this.offsets[this.head] >= this.writeAt) this.dropOldest()
      this.writeAt = 0
    }
    if (this.count === this.maxEntries) this.dropOldest()
    // The oldest entries sit right after the newest one, around the ring:
    // drop them while they overlap where this one goes.
    while (this.count > 0 && this.overlapsOldest(this.writeAt, size)) this.dropOldest()
    if (this.count === 0) this.firstSeq = seq
    const slot = (this.head + this.count) % this.maxEntries
    this.offsets[slot] = this.writeAt
    this.lengths[slot] = raw.length
    this.originIds[slot] = origin === null ? NO_IDENTITY : this.originId(origin)
    this.counters[slot] = counter
    const at = writeBinHeader(this.ring, this.writeAt, raw.length)
    this.ring.set(raw, at)
    this.writeAt = at + raw.length
    this.count++
  }

  get length(): number {
    return this.count
  }

  /** Entries from `seq` on (at most `max` of them, and about `maxBytes`), or null when `seq` is older than what the tail holds. */
  from(seq: number, max: number, maxBytes: number): Buffer[] | null {
    if (this.count === 0 || seq < this.firstSeq || this.ring === null) return null
    const out: Buffer[] = []
    let bytes = 0
    for (let i = seq - this.firstSeq; i < this.count && out.length < max && bytes < maxBytes; i++) {
      const slot = (this.head + i) % this.maxEntries
      const length = this.lengths[slot]
      const offset = this.offsets[slot] + binHeaderLength(length)
      out.push(this.ring.subarray(offset, offset + length))
      bytes += length
    }
    return out
  }

  /**
   * The entries from `seq` on as bins laid end to end (one view into the
   * ring), within the same bounds as from() and stopping where the ring
   * wraps: `count` entries, 0 when none is newer; null when `seq` is older
   * than what the tail holds. Valid until the next push.
   */
  binsFrom(seq: number, max: number, maxBytes: number): { count: number; bins: Buffer } | null {
    if (this.count === 0 || seq < this.firstSeq || this.ring === null) return null
    const first = seq - this.firstSeq
    if (first >= this.count) return { count: 0, bins: this.ring.subarray(0, 0) }
    const start = this.offsets[(this.head + first) % this.maxEntries]
    let end = start
    let bytes = 0
    let i = first
    for (; i < this.count && i - first < max && bytes < maxBytes; i++) {
      const slot = (this.head + i) % this.maxEntries
      if (this.offsets[slot] !== end) break // the ring wrapped before this entry
      const length = this.lengths[slot]
      end += binHeaderLength(length) + length
      bytes += length
    }
    return { count: i - first, bins: this.ring.subarray(start, end) }
  }

  /**
   * The origin the entry `seq` was pushed with, or null when it was pushed
   * without one (or its origin was not numbered): read it from its bytes.
   * `seq` must be one the tail holds (binsFrom gave it).
   */
  originAt(seq: number): string | null {
    const id = this.originIds[(this.head + seq - this.firstSeq) % this.maxEntries]
    return id === NO_IDENTITY ? null : this.origins[id]
  }

  /** The counter the entry `seq` was pushed with (where originAt gives its origin). */
  counterAt(seq: number): number {
    return this.counters[(this.head + seq - this.firstSeq) % this.maxEntries]
  }

  /** The bytes the entry `seq` takes in a run binsFrom returns: its bin's header and its own. */
  binBytesAt(seq: number): number {
    const length = this.lengths[(this.head + seq - this.firstSeq) % this.maxEntries]
    return binHeaderLength(length) + length
  }

  private originId(origin: string): number {
    if (origin === this.lastOrigin) return this.lastOriginId
    let id = this.originNumbers.get(origin)
    if (id === undefined) {
      if (this.origins.length >= MAX_ORIGINS) return NO_IDENTITY
      id = this.origins.length
      this.origins.push(origin)
      this.originNumbers.set(origin, id)
    }
    this.lastOrigin = origin
    this.lastOriginId = id
    return id
  }

  /** Bytes of memory the ring holds (0 until the first push, and after clear()). */
  get reservedBytes(): number {
    return this.ring?.length ?? 0
  }

  /** Empties the tail and gives its memory back. */
  clear(): void {
    this.ring = null
    this.reset()
  }

  /**
   * Empties the tail, keeping its memory for when entries are pushed
   * again. A new ring is not resident: each 4 KiB of it costs a page
   * fault when first written (Buffer.alloc of this size gets untouched
   * zero pages), dear on a virtual machine, and paid on the thread that
   * commits groups. Readers that leave and come back (a peer link cut,
   * then healed; a replica reconnecting) would make every return pay for
   * the ring's pages again, while the node catches up.
   */
  empty(): void {
    this.reset()
  }

  /** Empties the tail, keeping its memory. */
  private reset(): void {
    this.head = 0
    this.count = 0
    this.writeAt = 0
  }

  private overlapsOldest(at: number, size: number): boolean {
    const start = this.offsets[this.head]
    const length = this.lengths[this.head]
    return at < start + binHeaderLength(length) + length && start < at + size
  }

  private dropOldest(): void {
    this.head = (this.head + 1) % this.maxEntries
    this.count--
    this.firstSeq++
  }
}

/** A slot pushed without an identity (LogTail.originAt answers null). */
const NO_IDENTITY = -1
/** Origins a tail numbers; a node that heard of more (forgotten peers, rejoined under new ids) leaves the rest to be read. */
const MAX_ORIGINS = 4096

/**
 * When each recent seq committed on this node, to report replica lag in
 * milliseconds. One sample per group commit; bounded.
 */
export class CommitTimes {
  private seqs: number[] = []
  private times: number[] = []

  constructor(private readonly max: number) {}

  record(lastSeq: number, time: number): void {
    this.seqs.push(lastSeq)
    this.times.push(time)
    if (this.seqs.length > this.max * 2) {
      this.seqs = this.seqs.slice(-this.max)
      this.times = this.times.slice(-this.max)
    }
  }

  /** Commit time of `seq` (of the group that held it); the oldest known time when it is older than the samples. */
  timeOf(seq: number): number | undefined {
    if (this.seqs.length === 0) return undefined
    let lo = 0
    let hi = this.seqs.length - 1
    if (seq > this.seqs[hi]) return undefined
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (this.seqs[mid] >= seq) hi = mid
      else lo = mid + 1
    }
    return this.times[lo]
  }

  clear(): void {
    this.seqs = []
    this.times = []
  }
}
