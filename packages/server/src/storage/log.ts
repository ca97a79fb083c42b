import { TandemError } from '@tandem/protocol'
import type { AbstractChainedBatch, AbstractSublevel } from 'abstract-level'
import type { Level } from 'level'
import { BlockPacker, unpackBlock } from './log-block.js'
import { decodeEntry, keySeq, type LogEntry, prefixedSeqKey, seqKey } from './log-entry.js'
import { CommitTimes, LogTail } from './log-tail.js'
import type { VersionVectorObject } from './version-vector.js'

/**
 * The write log: every entry this node applied, in the order it applied
 * them, keyed by seq. The Store writes it (append() adds a group's entries
 * to the group's batch, committed() runs once the batch is durable); the
 * replication side reads it (read(), the in-memory tail, pins that hold
 * trimming back) and never writes it.
 *
 *   log  8-byte big-endian seq -> block of encoded entries from that seq on (log-block.ts)
 *
 * Multi-master peers do not resume by seq but by version vector (what they
 * hold of each origin). For them the log keeps resume points: after each
 * group, this node's version vector at the group's last seq. A peer holding
 * at least the vector of resume point S needs nothing before S, so it is
 * served from S + 1 (and the entries it holds are skipped).
 *
 *   resume  8-byte big-endian seq -> {origin: counter} (JSON) as of that seq
 *
 * A record that does not parse (a damaged disk, an edit from outside) is
 * never served: the first read that reaches it fails with INTERNAL, and
 * from then on the log starts after it, so a downstream that needs those
 * entries gets a full sync instead of failing on them again and again.
 */

type Db = Level<Buffer, Buffer>
type Batch = AbstractChainedBatch<Db, Buffer, Buffer>
type Sublevel = AbstractSublevel<Db, string | Buffer | Uint8Array, Buffer, Buffer>

/** Bytes of records one trip to LevelDB fetches for a read given no hint (LevelDB's iterators' own default). */
const READ_AHEAD_BYTES = 16 * 1024
/** Records one trip fetches at most (aheadBytes bounds them first for blocks of any size). */
const READ_RECORDS = 1000
/** Stopping points of reads kept (see read): one per feed or watch reading the log on disk at once is enough. */
const REMEMBERED_BLOCKS = 64

/** The identities of a group's entries, in their order: each one's origin and counter (NO_ORIGIN, 0: housekeeping). */
export interface EntryIds {
  origins: string[]
  counters: number[]
}

/** Where trimming may not pass: a downstream's cursor, a full sync's snapshot. */
export interface LogPin {
  move(seq: number): void
  release(): void
}

interface LogOptions {
  /** How many entries to keep behind the newest for partial resync. */
  retention: number
}

export class WriteLog {
  /**
   * The newest entries in memory, for feeding downstreams and watches that
   * keep up. Kept only while this node has either (see keepTail): on a leaf
   * replica it would only hold up to 32 MiB of entries for the garbage
   * collector to walk on every young-generation collection.
   */
  readonly tail = new LogTail(50_000, 32 * 1024 * 1024)
  /** Readers of the tail (downstream feeds, watches): it is kept while there is one. */
  private tailReaders = 0
  /** When each recent seq committed, for lag in ms. */
  readonly commitTimes = new CommitTimes(20_000)
  /**
   * Oldest seq the log can serve as of the last trim or read (lastSeq + 1
   * when it is empty): a downstream behind it needs a full sync. For status.
   */
  start = 1
  /**
   * Entries before this seq are not served, whatever the log holds: a read
   * found a damaged record there. In memory only; after a restart the
   * first read that reaches the damage finds it again.
   */
  private usableFrom = 0
  private readonly pins = new Map<number, number>()
  private nextPin = 1
  private trimming: Promise<void> | null = null
  private resumed: { seq: number; vv: VersionVectorObject } | null = null
  /** Where recent reads stopped: seq -> key of the block holding it (see read). */
  private readonly nextBlock = new Map<number, number>()

  /** Writes go to the root db under the sublevel's prefix (see Store); reads go through the sublevel. */
  private prefix!: Buffer
  private sublevel!: Sublevel
  /** Resume points for multi-master peers (see above). */
  private resume!: Sublevel
  private resumePrefix!: Buffer

  constructor(
    /** The seq of the newest committed entry, as the Store knows it. */
    private readonly lastSeq: () => number,
    private readonly options: LogOptions,
  ) {}

  /** The log's sublevels of the (re)opened LevelDB: the Store reopens it after a full disk. */
  bind(sublevel: Sublevel, resume: Sublevel): void {
    this.sublevel = sublevel
    this.prefix = Buffer.from(sublevel.prefix)
    this.resume = resume
    this.resumePrefix = Buffer.from(resume.prefix)
  }

  /** Finds where the log starts (call once the db is open). */
  async open(): Promise<void> {
    this.start = await this.firstSeq()
  }

  // ---- writing (the Store's group committer) ------------------------------

  /** Adds a group's entries, the first at `firstSeq`, to its batch as log blocks, as they come (BlockPacker). */
  blocks(batch: { put(key: Buffer, value: Buffer): void }, firstSeq: number): BlockPacker {
    return new BlockPacker((i, block) => batch.put(prefixedSeqKey(this.prefix, firstSeq + i), block))
  }

  /** The group holding `raws` from `firstSeq` is durable: keep it in the tail and time it. */
  committed(firstSeq: number, raws: readonly Buffer[], at: number, ids: EntryIds | null = null): void {
    this.commitTimes.record(firstSeq + raws.length - 1, at)
    if (this.tailReaders === 0) return
    if (ids !== null && ids.origins.length === raws.length) {
      const { origins, counters } = ids
      for (let i = 0; i < raws.length; i++) this.tail.push(firstSeq + i, raws[i], origins[i], counters[i])
    } else for (let i = 0; i < raws.length; i++) this.tail.push(firstSeq + i, raws[i])
  }

  /**
   * A reader of the tail comes (true) or goes (false): the newest entries
   * are kept in memory while there is one. A reader that finds its position
   * outside the tail reads the log on disk until it reaches the entries
   * kept since. Once the last reader is gone the tail holds no entry but
   * keeps its memory (LogTail.empty): a node that never had a reader (a
   * leaf replica) never takes it, one that had readers keeps what they
   * took, within the same bound.
   */
  keepTail(on: boolean): void {
    this.tailReaders = Math.max(0, this.tailReaders + (on ? 1 : -1))
    if (this.tailReaders === 0) this.tail.empty()
  }

  /** Records that as of `seq` this node holds exactly `vv` (JSON), in the group's batch. */
  checkpoint(batch: Batch, seq: number, vv: string): void {
    batch.put(prefixedSeqKey(this.resumePrefix, seq), Buffer.from(vv))
  }

  /**
   * The newest resume point, once durable (the group that wrote it is
   * committed): every entry of the log up to `seq` is housekeeping or a
   * write whose counter `vv` covers, since the version vector only grows
   * and each entry applied raises its origin's counter to its own. A peer
   * feed whose peer holds all of `vv` skips to seq + 1 without reading a
   * single entry (PeerFeed.skipHeld). Null when the log was emptied or
   * restarted since.
   */
  get newestResume(): { seq: number; vv: VersionVectorObject } | null {
    return this.resumed
  }

  /** The group holding the resume point at `seq` (this node's version vector `vv` there) is durable. */
  resumedAt(seq: number, vv: VersionVectorObject): void {
    this.resumed = { seq, vv }
  }

  /**
   * The seq to serve a peer holding `vv` from: one after the newest resume
   * point it covers, if the log still holds the entries after it; null when
   * none qualifies (the peer needs a snapshot).
   */
  async resumeFrom(covers: (checkpoint: Record<string, number>) => boolean): Promise<number | null> {
    const first = await this.firstSeq()
    for await (const [key, value] of this.resume.iterator({ reverse: true })) {
      const seq = keySeq(key)
      if (seq + 1 < first) return null
      if (covers(JSON.parse(value.toString('utf8')))) return seq + 1
    }
    return null
  }

  /**
   * This node's data changed without log entries (a merged snapshot): no
   * peer may resume from before `seq`, where the log holds `vv`; nor may a
   * downstream (it must take a full sync).
   */
  async barrier(seq: number, vv: string): Promise<void> {
    await this.resume.clear()
    await this.resume.put(seqKey(seq), Buffer.from(vv))
    this.restartAfter(seq)
  }

  /** Empties the log (before a full sync replaces this node's data). */
  async clear(): Promise<void> {
    await this.sublevel.clear()
    await this.resume.clear()
    this.start = 1
    this.usableFrom = 0
    this.resumed = null
    this.nextBlock.clear()
    this.tail.clear()
    this.commitTimes.clear()
  }

  /** The log now continues after `seq` (a full sync ended there): nothing before it is served. */
  restartAfter(seq: number): void {
    this.start = seq + 1
    this.usableFrom = Math.max(this.usableFrom, seq + 1)
    this.resumed = null
    this.nextBlock.clear()
    this.tail.clear()
  }

  // ---- reading -----------------------------------------------------------

  /**
   * Seq of the oldest entry the log can serve (lastSeq + 1 when it is
   * empty): the first block's, or the one after a damaged record.
   */
  async firstSeq(): Promise<number> {
    for await (const key of this.sublevel.keys({ limit: 1 })) return Math.max(keySeq(key), this.usableFrom)
    return Math.max(this.lastSeq() + 1, this.usableFrom)
  }

  /**
   * Encoded entries with seq >= fromSeq, in order, up to `limit` of them. A
   * damaged record ends the read with INTERNAL (see the top of this file).
   *
   * Each trip to LevelDB (finding the block, each batch of records) goes
   * through the thread pool and back through the event loop, where a node
   * applying a peer's frames runs a group's build between two turns: a feed
   * that took five trips a batch sent its own writes at a fraction of the
   * rate its peer sent it theirs, and that peer sat idle for them once it
   * had applied what it got. So `aheadBytes` (a hint of how many bytes the
   * caller will take) sizes one trip's batch of records, and where the last
   * read stopped is remembered (nextBlock), so that a reader going on from
   * there skips the trip that finds its block.
   */
  async *read(
    fromSeq: number,
    limit = Number.POSITIVE_INFINITY,
    aheadBytes = READ_AHEAD_BYTES,
  ): AsyncGenerator<[number, Buffer]> {
    if (limit <= 0) return
    const start = this.nextBlock.get(fromSeq) ?? (await this.blockHolding(fromSeq)) ?? fromSeq
    // highWaterMarkBytes is classic-level's (abstract-level's types do not
    // name it); the sublevel hands its options on to LevelDB's iterator.
    const options = { gte: seqKey(start), highWaterMarkBytes: aheadBytes }
    const iterator = this.sublevel.iterator(options)
    let left = limit
    let damaged: TandemError | null = null
    // Where the next read would start: the seq after the last one yielded, and the key of its block.
    let next = 0
    let nextKey = 0
    try {
      for (
        let records = await iterator.nextv(READ_RECORDS);
        records.length > 0;
        records = await iterator.nextv(READ_RECORDS)
      ) {
        for (const [key, record] of records) {
          let seq = keySeq(key)
          if (damaged) {
            this.markDamagedBefore(seq)
            throw damaged
          }
          let entries: Buffer[]
          try {
            entries = unpackBlock(record)
          } catch (err) {
            damaged = new TandemError('INTERNAL', `the log record at seq ${seq} is damaged: ${(err as Error).message}`)
            continue
          }
          const blockKey = seq
          const blockEnd = seq + entries.length
          for (const raw of entries) {
            if (seq >= fromSeq) {
              next = seq + 1
              nextKey = next < blockEnd ? blockKey : next
              yield [seq, raw]
              if (--left === 0) return
            }
            seq++
          }
        }
      }
      if (damaged) {
        this.markDamagedBefore(this.lastSeq() + 1)
        throw damaged
      }
    } finally {
      if (next > 0) this.rememberBlock(next, nextKey)
      await iterator.close()
    }
  }

  /**
   * What read() yields, as one array: up to `limit` entries from `fromSeq`
   * on, with consecutive seqs (a gap ends the batch), stopping once they
   * hold `maxBytes`; empty when the log no longer holds `fromSeq`. Same
   * trips, damage handling and remembered stopping points as read().
   *
   * A feed behind the in-memory tail reads its batches here: through
   * read() every entry cost a turn of the async generator (its promise,
   * its result object, a microtask), for all the entries a peer takes
   * after a partition.
   */
  async readBatch(fromSeq: number, limit: number, maxBytes: number, aheadBytes = READ_AHEAD_BYTES): Promise<Buffer[]> {
    const batch: Buffer[] = []
    if (limit <= 0) return batch
    const start = this.nextBlock.get(fromSeq) ?? (await this.blockHolding(fromSeq)) ?? fromSeq
    // As in read(): highWaterMarkBytes is classic-level's own option.
    const options = { gte: seqKey(start), highWaterMarkBytes: aheadBytes }
    const iterator = this.sublevel.iterator(options)
    let damaged: TandemError | null = null
    let next = fromSeq
    let nextKey = 0
    let bytes = 0
    try {
      reading: for (
        let records = await iterator.nextv(READ_RECORDS);
        records.length > 0;
        records = await iterator.nextv(READ_RECORDS)
      ) {
        for (const [key, record] of records) {
          const blockKey = keySeq(key)
          if (damaged) {
            this.markDamagedBefore(blockKey)
            throw damaged
          }
          let entries: Buffer[]
          try {
            entries = unpackBlock(record)
          } catch (err) {
            damaged = new TandemError(
              'INTERNAL',
              `the log record at seq ${blockKey} is damaged: ${(err as Error).message}`,
            )
            continue
          }
          const blockEnd = blockKey + entries.length
          if (blockEnd <= next) continue // wholly before fromSeq (read from the block before it)
          if (blockKey > next) break reading // a gap: the batch ends before it
          for (let i = next - blockKey; i < entries.length; i++) {
            const raw = entries[i]
            batch.push(raw)
            bytes += raw.length
            next++
            nextKey = next < blockEnd ? blockKey : next
            if (batch.length === limit || bytes >= maxBytes) break reading
          }
        }
      }
      if (damaged) {
        this.markDamagedBefore(this.lastSeq() + 1)
        throw damaged
      }
    } finally {
      if (batch.length > 0) this.rememberBlock(next, nextKey)
      await iterator.close()
    }
    return batch
  }

  /**
   * Remembers that the entry at `seq`, if the log holds it, is in the block
   * keyed `key` (or in a later one: a block's key is the seq of its first
   * entry, so `seq` itself names the block a group appends next). Blocks are
   * only appended, trimmed from the front or cleared, so the key stays true
   * until clear() or restartAfter(), which forget them all; a read from a
   * key before the true one would only skip the entries before fromSeq.
   */
  private rememberBlock(seq: number, key: number): void {
    if (this.nextBlock.size >= REMEMBERED_BLOCKS) this.nextBlock.delete(this.nextBlock.keys().next().value as number)
    this.nextBlock.set(seq, key)
  }

  /** Seq of the first record on disk, damaged or not; undefined when there is none. */
  async firstSeqOnDisk(): Promise<number | undefined> {
    for await (const key of this.sublevel.keys({ limit: 1 })) return keySeq(key)
    return undefined
  }

  /** The newest entry, decoded; undefined when the log is empty. */
  async lastEntry(): Promise<LogEntry | undefined> {
    for await (const record of this.sublevel.values({ reverse: true, limit: 1 })) {
      const entries = unpackBlock(record)
      return decodeEntry(entries[entries.length - 1])
    }
    return undefined
  }

  /** Serves the log only from `seq` on (a damaged record lies before it); status shows it at once. */
  private markDamagedBefore(seq: number): void {
    this.usableFrom = Math.max(this.usableFrom, seq)
    this.start = Math.max(this.start, this.usableFrom)
  }

  /** Key (first seq) of the block holding `seq`, or of the last block before it; undefined when none is. */
  private async blockHolding(seq: number): Promise<number | undefined> {
    for await (const key of this.sublevel.keys({ lte: seqKey(seq), reverse: true, limit: 1 })) return keySeq(key)
    return undefined
  }

  // ---- retention ---------------------------------------------------------

  /**
   * Keeps the log from `seq` on until released, beyond the retention window
   * if need be: a full sync in progress must find the entries after its
   * snapshot still there when it ends.
   */
  pin(seq: number): LogPin {
    const id = this.nextPin++
    this.pins.set(id, seq)
    return {
      move: (to: number) => {
        if (this.pins.has(id)) this.pins.set(id, to)
      },
      release: () => {
        this.pins.delete(id)
      },
    }
  }

  /** Drops entries older than the retention window (whole blocks only). */
  trim(): Promise<void> {
    if (this.trimming) return this.trimming
    let keepFrom = this.lastSeq() - this.options.retention + 1
    for (const pinned of this.pins.values()) keepFrom = Math.min(keepFrom, pinned)
    if (keepFrom <= 1) return Promise.resolve()
    // The block holding keepFrom stays, entries before keepFrom included.
    this.trimming = this.blockHolding(keepFrom)
      .then(async (start) => {
        if (start !== undefined) {
          await this.sublevel.clear({ lt: seqKey(start) })
          // A resume point at start - 1 still serves from start.
          await this.resume.clear({ lt: seqKey(start - 1) })
        }
        this.start = await this.firstSeq()
      })
      .catch(() => {})
      .finally(() => {
        this.trimming = null
      })
    return this.trimming
  }

  /** Resolves once a trim in progress is done. */
  async idle(): Promise<void> {
    await this.trimming
  }
}
