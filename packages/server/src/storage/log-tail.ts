/**
 * The newest log entries, kept in memory as they commit, so that replicas
 * that keep up are fed without reading LevelDB back. Bounded by count and
 * bytes; a replica further behind reads the log from disk instead.
 */
export class LogTail {
  private seqs: number[] = []
  private raws: Buffer[] = []
  private start = 0
  private bytes = 0

  constructor(
    private readonly maxEntries: number,
    private readonly maxBytes: number,
  ) {}

  push(seq: number, raw: Buffer): void {
    this.seqs.push(seq)
    this.raws.push(raw)
    this.bytes += raw.length
    while (this.length > this.maxEntries || (this.bytes > this.maxBytes && this.length > 1)) {
      this.bytes -= this.raws[this.start].length
      this.raws[this.start] = EMPTY
      this.start++
    }
    if (this.start > 4096 && this.start * 2 > this.seqs.length) {
      this.seqs = this.seqs.slice(this.start)
      this.raws = this.raws.slice(this.start)
      this.start = 0
    }
  }

  get length(): number {
    return this.seqs.length - this.start
  }

  /** Entries from `seq` on (at most `max` of them), or null when `seq` is older than what the tail holds. */
  from(seq: number, max: number, maxBytes: number): Buffer[] | null {
    if (this.length === 0) return null
    const first = this.seqs[this.start]
    if (seq < first) return null
    const out: Buffer[] = []
    let bytes = 0
    for (let i = this.start + (seq - first); i < this.seqs.length && out.length < max && bytes < maxBytes; i++) {
      out.push(this.raws[i])
      bytes += this.raws[i].length
    }
    return out
  }

  clear(): void {
    this.seqs = []
    this.raws = []
    this.start = 0
    this.bytes = 0
  }
}

const EMPTY = Buffer.alloc(0)

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
