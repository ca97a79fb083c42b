import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rm, statfs, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TandemError, type Value } from '@tandem/protocol'
import type { AbstractSublevel } from 'abstract-level'
import { Level } from 'level'
import { type ApplyEntry, readForApply } from './entry-scan.js'
import { GroupCommitter } from './group-commit.js'
import { HybridClock, type WallClock } from './hlc.js'
import { type CheckLevel, checkLevelDb, type DamagedFile } from './leveldb-check.js'
import { packBlocks, unpackBlock } from './log-block.js'
import {
  decodeEntry,
  type EntryOp,
  encodeEntry,
  keySeq,
  type LogEntry,
  OP_PUT,
  prefixedSeqKey,
  seqKey,
} from './log-entry.js'
import { CommitTimes, LogTail } from './log-tail.js'
import { decodeRecord, encodeRecord, recordFromBytes } from './record.js'
import { packChunk, unpackChunk } from './snapshot-chunk.js'

/**
 * Store: one LevelDB holding three sublevels, always written together.
 *
 *   data  user key (UTF-8 bytes) -> record (tag byte + value bytes)
 *   log   8-byte big-endian seq  -> block of encoded LogEntries from that seq on (log-block.ts)
 *   meta  'lastSeq' | 'history' | 'syncedAt' -> JSON
 *
 * Every write, local or replicated, goes through the group committer, which
 * puts a group's data mutations, its log entries and the new lastSeq into
 * one atomic batch. So after any crash the data, the log and lastSeq agree:
 * the log is never ahead of or behind the data.
 */

export type SyncMode = 'always' | 'periodic' | 'none'

/** One epoch of the node's history: `epoch` began at `startSeq`, started by node `by`. */
export interface HistoryEpoch {
  epoch: number
  startSeq: number
  by: string
  /**
   * Random tag drawn when the epoch began. It tells apart two epochs with
   * the same number, start and node: a node that lost its data dir and
   * began again (with the same --node-id) must not pass for the history it
   * wrote before, or a replica would resume from it onto different entries.
   */
  id?: string
  /** Wall time (ms since 1970) at which the epoch began, on the node that began it. */
  at?: number
  /** Why it began: 'start', 'election', 'promote', 'replicaof no one' (shown in the console). */
  why?: string
}

export interface StoreOptions {
  dataDir: string
  /** Node id to use; when absent, the one kept in the data dir, or a new one. */
  nodeId?: string
  sync: SyncMode
  /** How many log entries to keep behind lastSeq for partial resync. */
  logRetention: number
  /** How often the log is trimmed to logRetention, in ms. */
  trimIntervalMs?: number
  /** How often `periodic` sync fsyncs, in ms. */
  periodicSyncMs?: number
  maxGroup?: number
  maxQueued?: number
  clock?: WallClock
  /** Which of LevelDB's files to check for damage before opening (see leveldb-check.ts). Default 'all'. */
  verifyAtStart?: CheckLevel
  /**
   * What to do when the data dir is damaged: 'refuse' (default) fails open()
   * with CORRUPT naming the damage; 'resync' opens anyway with `damage` set,
   * for a node that will discard its data (discardDamaged) and take a full
   * sync from a healthy peer.
   */
  onDamage?: 'refuse' | 'resync'
  /** While writes fail for a full disk, how often to look for free space and try to recover, in ms. Default 1000. */
  noSpaceRetryMs?: number
  /** Told when writes start failing for a full disk (with the state) and when they resume (null). */
  onNoSpace?: (state: NoSpace | null) => void
}

/** The disk filled up: since when, and what LevelDB said. */
export interface NoSpace {
  since: number
  message: string
}

/** Free bytes the data dir's file system must have before a node that ran out of space reopens LevelDB. */
const NOSPACE_HEADROOM = 1024 * 1024

export type StoreStatus = 'opening' | 'open' | 'closing' | 'closed'

type Db = Level<Buffer, Buffer>
type Sublevel<K, V> = AbstractSublevel<Db, string | Buffer | Uint8Array, K, V>
type Bytes = Sublevel<Buffer, Buffer>

interface LocalWrite {
  kind: 'local'
  ops: EntryOp[]
}
/** Consecutive entries from an upstream (one frame's worth), committed together. */
interface ReplicatedWrite {
  kind: 'replicated'
  entries: ApplyEntry[]
  raws: Buffer[]
}
export type StoreWrite = LocalWrite | ReplicatedWrite

export type CommitListener = (lastSeq: number) => void

export class Store {
  status: StoreStatus = 'opening'
  readonly dataDir: string
  nodeId = ''
  /** Seq of the last committed entry (0 when the log is empty). */
  lastSeq = 0
  /** Wall time at which lastSeq committed; used for lag in ms. */
  lastCommitAt = 0
  history: HistoryEpoch[] = []
  readonly hlc: HybridClock
  /**
   * The newest entries in memory, for feeding replicas that keep up. Kept
   * only while this node has downstreams (see keepTail): on a leaf replica
   * it would only hold up to 32 MiB of entries for the garbage collector to
   * walk on every young-generation collection.
   */
  readonly tail = new LogTail(50_000, 32 * 1024 * 1024)
  private tailKept = false
  readonly commitTimes = new CommitTimes(20_000)
  /**
   * Oldest seq in the log as of the last trim (lastSeq + 1 when the log was
   * empty): a downstream behind it needs a full sync. Kept for status.
   */
  logStart = 1
  /** True when open() found an interrupted full sync and discarded its partial data. */
  discardedPartialSync = false
  /** What open() found damaged (onDamage 'resync' only): the data must be discarded before use. */
  damage: DamagedFile[] = []
  /**
   * Set while the disk is full: every write fails with NOSPACE, without
   * reaching LevelDB, until recoverSpace() has reopened it. A write that
   * failed for space may have left part of a record in LevelDB's log with
   * the log's position moved past all of it, so a later write appended to
   * that log could be lost when it is replayed; reopening replays the log
   * (a record cut short at its end is ignored) and starts a new one.
   */
  noSpace: NoSpace | null = null
  private recovering = false
  /**
   * Entries before this seq are not served, whatever the log holds: readLog
   * found a damaged record there (see readLog). Kept in memory only; after a
   * restart the damage is found again by the first read that reaches it.
   */
  private logUsableFrom = 0

  private db!: Db
  private data!: Bytes
  private log!: Bytes
  private meta!: Sublevel<string, unknown>
  // Writes bypass the sublevel API: a chained batch op with the `sublevel`
  // option costs several times the JavaScript of a prefixed key on the
  // root db. The prefixes are the sublevels' own, so reads through the
  // sublevels see the same keys.
  private dataPrefix!: Buffer
  private logPrefix!: Buffer
  private metaPrefix!: Buffer
  private lastSeqKey!: Buffer
  private readonly committer: GroupCommitter<StoreWrite, number>
  private readonly listeners = new Set<CommitListener>()
  private readonly timers: NodeJS.Timeout[] = []
  private dirtySinceSync = false
  private trimming: Promise<void> | null = null
  private readonly pins = new Map<number, number>()
  private pendingReads: { key: Buffer; resolve: (v: Value | undefined) => void; reject: (err: unknown) => void }[] = []
  private nextPin = 1
  /** The last snapshot chunk's write during a full sync (a rejected one fails the next chunk). */
  private snapshotWrite: Promise<void> = Promise.resolve()
  private closing: Promise<void> | null = null
  /** Seq that the next local write will take. */
  private nextSeq = 1

  private constructor(private readonly options: StoreOptions) {
    this.dataDir = options.dataDir
    this.hlc = new HybridClock(options.clock)
    this.committer = new GroupCommitter((group) => this.commitGroup(group), {
      maxGroup: options.maxGroup ?? 2000,
      maxQueued: options.maxQueued ?? 100_000,
      weight: (write) => (write.kind === 'local' ? 1 : write.entries.length),
    })
  }

  private get dbDir(): string {
    return join(this.dataDir, 'db')
  }

  /** Creates the LevelDB handle, which starts opening it at once (abstract-level opens itself). */
  private bindDb(): void {
    this.db = new Level<Buffer, Buffer>(this.dbDir, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    this.data = this.db.sublevel<Buffer, Buffer>('data', { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    this.log = this.db.sublevel<Buffer, Buffer>('log', { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    this.meta = this.db.sublevel<string, unknown>('meta', { keyEncoding: 'utf8', valueEncoding: 'json' })
    this.dataPrefix = Buffer.from(this.data.prefix)
    this.logPrefix = Buffer.from(this.log.prefix)
    this.metaPrefix = Buffer.from(this.meta.prefix)
    this.lastSeqKey = prefixed(this.metaPrefix, 'lastSeq')
  }

  static async open(options: StoreOptions): Promise<Store> {
    const store = new Store(options)
    try {
      await store.init()
    } catch (err) {
      if (store.db?.status === 'open') await store.db.close()
      throw err
    }
    return store
  }

  private async init(): Promise<void> {
    await mkdir(this.dataDir, { recursive: true })
    // Before LevelDB opens: opening would replay the write-ahead log and
    // silently drop a damaged record of it.
    const damage = await checkLevelDb(this.dbDir, this.options.verifyAtStart ?? 'all')
    if (damage.length > 0 && this.options.onDamage !== 'resync') throw damagedError(this.dataDir, damage)
    this.bindDb()
    await this.openDb()
    this.nodeId = await this.loadNodeId()
    if (damage.length === 0) damage.push(...(await this.checkHead()))
    if (damage.length > 0) {
      if (this.options.onDamage !== 'resync') throw damagedError(this.dataDir, damage)
      this.damage = damage
    }
    await this.loadState()
    if (this.options.sync === 'periodic') {
      // A failed sync (a full disk) is seen by the writes that follow; it must not end the process.
      this.timers.push(
        setInterval(() => void this.syncNow().catch(() => {}), this.options.periodicSyncMs ?? 1000).unref(),
      )
    }
    this.timers.push(setInterval(() => void this.trimLog(), this.options.trimIntervalMs ?? 10_000).unref())
    this.timers.push(setInterval(() => void this.recoverSpace(), this.options.noSpaceRetryMs ?? 1000).unref())
    this.status = 'open'
  }

  /**
   * The data must agree with the log's head: meta's lastSeq is the seq of
   * the log's last entry (all three are written in one batch), and that
   * entry's block must be readable. A log emptied by a full sync holds no
   * entry at all, which is fine.
   */
  private async checkHead(): Promise<DamagedFile[]> {
    const where = ''
    try {
      const lastSeq = ((await this.meta.get('lastSeq')) as number | undefined) ?? 0
      const last = await this.lastEntry()
      if (last && last.seq !== lastSeq) {
        return [
          { file: where, problem: `its last log entry is seq ${last.seq} but its last committed seq is ${lastSeq}` },
        ]
      }
      if (!last && (await this.firstLogSeqOnDisk()) !== undefined) {
        return [{ file: where, problem: 'its log holds records but no readable entry' }]
      }
    } catch (err) {
      return [{ file: where, problem: `its last committed group cannot be read: ${(err as Error).message}` }]
    }
    return []
  }

  private async firstLogSeqOnDisk(): Promise<number | undefined> {
    for await (const key of this.log.keys({ limit: 1 })) return keySeq(key)
    return undefined
  }

  /**
   * Drops the damaged LevelDB and starts an empty one (onDamage 'resync'),
   * keeping the node's fail-over vote: a node that forgot its vote could
   * vote twice in one epoch. The caller has saved what it could read.
   */
  async discardDamaged(): Promise<void> {
    // A vote that cannot be read fails this: better not to start than to vote twice.
    const vote = await this.meta.get('vote')
    await this.db.close()
    await rm(this.dbDir, { recursive: true, force: true })
    this.bindDb()
    await this.openDb()
    if (vote !== undefined) await this.setMeta('vote', vote)
    this.damage = []
    await this.loadState()
  }

  private async openDb(): Promise<void> {
    try {
      // Opening is under way since bindDb(); this waits for it and reports how it went.
      await this.db.open()
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause
      if (cause?.code === 'LEVEL_LOCKED') {
        throw new TandemError('UNAVAILABLE', `data dir ${this.dataDir} is in use by another tandem-server`, {
          cause: err,
        })
      }
      // LevelDB's own checks (a damaged manifest, a table it cannot open) end here.
      const message = String((cause as { message?: string } | undefined)?.message ?? (err as Error).message)
      if (/corrupt/i.test(message)) throw damagedError(this.dataDir, [{ file: '', problem: message }], err)
      throw err
    }
  }

  private async loadState(): Promise<void> {
    if (await this.meta.get('syncing')) {
      // A full sync was cut short: the data is a partial copy. Start empty,
      // so the next handshake asks for a full sync again.
      await this.clearAll()
      this.discardedPartialSync = true
    }
    this.lastSeq = ((await this.meta.get('lastSeq')) as number | undefined) ?? 0
    this.nextSeq = this.lastSeq + 1
    this.history = ((await this.meta.get('history')) as HistoryEpoch[] | undefined) ?? []
    // A damaged head (onDamage 'resync') is found by checkHead; the data is then discarded.
    const last = await this.lastEntry().catch(() => undefined)
    if (last) this.hlc.observe(last.hlc)
    this.logStart = await this.firstLogSeq()
    this.lastCommitAt = Date.now()
  }

  private async loadNodeId(): Promise<string> {
    const file = join(this.dataDir, 'node-id')
    let stored: string | undefined
    try {
      stored = (await readFile(file, 'utf8')).trim()
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    if (stored && this.options.nodeId && stored !== this.options.nodeId) {
      throw new TandemError(
        'INVALID',
        `data dir ${this.dataDir} belongs to node ${stored}, not ${this.options.nodeId}; use another --data-dir`,
      )
    }
    const id = stored || this.options.nodeId || randomBytes(8).toString('hex')
    if (!stored) await writeFile(file, `${id}\n`)
    return id
  }

  /** The epoch this node is in: the last of its history, 0 before any. */
  get epoch(): number {
    return this.history.length === 0 ? 0 : this.history[this.history.length - 1].epoch
  }

  get commitStats() {
    return this.committer.stats
  }

  get queuedWrites(): number {
    return this.committer.queued
  }

  /**
   * Starts or stops keeping the newest entries in memory. A downstream that
   * finds its position outside the tail is fed from the log on disk until it
   * reaches the entries kept since.
   */
  keepTail(on: boolean): void {
    if (this.tailKept === on) return
    this.tailKept = on
    if (!on) this.tail.clear()
  }

  /** Called after every committed group with the new lastSeq. */
  onCommit(listener: CommitListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  // ---- writes ------------------------------------------------------------

  /** Writes ops atomically as one log entry; resolves with its seq once durable per the sync mode. */
  write(ops: EntryOp[]): Promise<number> {
    if (this.status !== 'open') return Promise.reject(new TandemError('CLOSED', 'store is closed'))
    return this.committer.submit({ kind: 'local', ops })
  }

  /**
   * Appends consecutive entries received from an upstream, keeping their
   * seqs; the first must be lastSeq + 1. Resolves with the last one's seq
   * once all are durable. They may share a group with other writes, but
   * are never split across two.
   */
  applyReplicated(raws: Buffer[], entries: ApplyEntry[] = raws.map((raw) => readForApply(raw))): Promise<number> {
    if (this.status !== 'open') return Promise.reject(new TandemError('CLOSED', 'store is closed'))
    return this.committer.submit({ kind: 'replicated', entries, raws })
  }

  /** Starts a new epoch at the next seq and records it durably, with when and why it began. */
  async beginEpoch(epoch: number, by: string = this.nodeId, why?: string): Promise<HistoryEpoch> {
    await this.committer.idle()
    if (epoch <= this.epoch) throw new TandemError('FENCED', `epoch ${epoch} is not newer than ${this.epoch}`)
    const next: HistoryEpoch = {
      epoch,
      startSeq: this.lastSeq + 1,
      by,
      id: randomBytes(6).toString('hex'),
      at: (this.options.clock ?? Date.now)(),
      ...(why === undefined ? {} : { why }),
    }
    await this.setHistory([...this.history, next])
    return next
  }

  /** Replaces the history (a replica adopting its upstream's). */
  async setHistory(history: HistoryEpoch[]): Promise<void> {
    await this.putMeta('history', history, this.options.sync !== 'none')
    this.history = history
  }

  /** Resolves once no write is queued or being committed (snapshot chunks included). */
  async idle(): Promise<void> {
    await this.committer.idle()
    await this.snapshotWrite.catch(() => {})
  }

  /** Reads a small JSON value kept in meta (fail-over votes). */
  async getMeta<T>(key: string): Promise<T | undefined> {
    return (await this.meta.get(key)) as T | undefined
  }

  /** Writes a small JSON value to meta, fsynced: it must survive a crash before anyone is told. */
  setMeta(key: string, value: unknown): Promise<void> {
    return this.putMeta(key, value, true)
  }

  private putMeta(key: string, value: unknown, sync: boolean): Promise<void> {
    const batch = this.db.batch()
    batch.put(prefixed(this.metaPrefix, key), Buffer.from(JSON.stringify(value)))
    return this.writeBatch(batch, sync)
  }

  /** Every write to LevelDB goes through here: a full disk turns it into NOSPACE and stops writes until recovery. */
  private async writeBatch(batch: ReturnType<Db['batch']>, sync: boolean): Promise<void> {
    if (this.noSpace) {
      void batch.close()
      throw noSpaceError(this.noSpace)
    }
    try {
      await batch.write({ sync })
    } catch (err) {
      if (!isNoSpace(err)) throw err
      if (!this.noSpace) {
        this.noSpace = { since: Date.now(), message: (err as Error).message }
        this.options.onNoSpace?.(this.noSpace)
      }
      throw noSpaceError(this.noSpace)
    }
  }

  /**
   * After a full disk: once the file system has room again, reopens LevelDB
   * (see noSpace) and lets writes through. Runs on a timer; a failed
   * attempt (still no room to flush what the log holds) is tried again.
   */
  private async recoverSpace(): Promise<void> {
    if (!this.noSpace || this.recovering || this.status !== 'open') return
    this.recovering = true
    try {
      const fs = await statfs(this.dataDir)
      if (fs.bavail * fs.bsize < NOSPACE_HEADROOM) return
      await this.committer.idle()
      await this.snapshotWrite.catch(() => {})
      if (this.db.status === 'open') await this.db.close()
      this.bindDb()
      await this.openDb()
      this.noSpace = null
      this.options.onNoSpace?.(null)
    } catch {
      // Still no room, or LevelDB would not open: the next tick tries again.
    } finally {
      this.recovering = false
    }
  }

  private async commitGroup(group: StoreWrite[]): Promise<number[]> {
    // A chained batch: cheaper than the array form of db.batch() for the
    // same ops.
    const batch = this.db.batch()
    const seqs: number[] = []
    const epoch = this.epoch
    const entries: Buffer[] = []
    let seq = this.nextSeq - 1
    try {
      for (const write of group) {
        if (write.kind === 'local') {
          seq++
          const ops = write.ops
          const entry: LogEntry = { seq, epoch, origin: this.nodeId, originSeq: seq, hlc: this.hlc.now(), ops }
          const raw = encodeEntry(entry)
          this.putEntry(batch, entry)
          seqs.push(seq)
          entries.push(raw)
          continue
        }
        for (let i = 0; i < write.entries.length; i++) {
          const entry = write.entries[i]
          if (entry.seq !== seq + 1) {
            throw new TandemError('INVALID', `replicated entry ${entry.seq} does not follow ${seq}`)
          }
          seq = entry.seq
          this.hlc.observe(entry.hlc)
          this.putReplicated(batch, entry)
          entries.push(write.raws[i])
        }
        seqs.push(seq)
      }
    } catch (err) {
      void batch.close() // nothing of this group is written; free the native batch
      throw err
    }
    const first = this.nextSeq
    packBlocks(entries, (i, block) => batch.put(prefixedSeqKey(this.logPrefix, first + i), block))
    batch.put(this.lastSeqKey, Buffer.from(String(seq)))
    await this.writeBatch(batch, this.options.sync === 'always')
    this.nextSeq = seq + 1
    this.lastSeq = seq
    this.lastCommitAt = Date.now()
    this.commitTimes.record(seq, this.lastCommitAt)
    if (this.tailKept) for (let i = 0; i < entries.length; i++) this.tail.push(first + i, entries[i])
    this.dirtySinceSync = true
    for (const listener of this.listeners) listener(seq)
    return seqs
  }

  /** Adds one entry's data mutations to a batch (its log record goes in the group's block). */
  private putEntry(batch: ReturnType<Db['batch']>, entry: LogEntry): void {
    for (const op of entry.ops) {
      const key = prefixed(this.dataPrefix, op[1])
      if (op[0] === OP_PUT) batch.put(key, encodeRecord(op[2]))
      else batch.del(key)
    }
  }

  /** Adds a replicated entry's mutations (from its bytes, see entry-scan.ts) to a batch. */
  private putReplicated(batch: ReturnType<Db['batch']>, entry: ApplyEntry): void {
    for (const op of entry.ops) {
      const key = prefixedBytes(this.dataPrefix, op.key)
      if (op.value === null) batch.del(key)
      else batch.put(key, recordFromBytes(op.value, op.binary))
    }
  }

  /** Forces everything written so far to disk (a synced write flushes LevelDB's WAL). */
  async syncNow(): Promise<void> {
    if (!this.dirtySinceSync || this.status !== 'open') return
    this.dirtySinceSync = false
    await this.putMeta('syncedAt', Date.now(), true)
  }

  // ---- reads -------------------------------------------------------------

  /**
   * Reads are coalesced: every get issued in the same turn goes to LevelDB
   * as one getMany on the root db (one crossing into LevelDB and its
   * thread pool instead of one per key), and their replies then leave
   * together.
   */
  get(key: string): Promise<Value | undefined> {
    return new Promise((resolve, reject) => {
      this.pendingReads.push({ key: prefixed(this.dataPrefix, key), resolve, reject })
      if (this.pendingReads.length === 1) queueMicrotask(() => this.flushReads())
    })
  }

  private flushReads(): void {
    const reads = this.pendingReads
    this.pendingReads = []
    for (let i = 0; i < reads.length; i += MAX_READ_BATCH) {
      const slice = reads.slice(i, i + MAX_READ_BATCH)
      this.db.getMany(slice.map((r) => r.key)).then(
        (records) => {
          for (let j = 0; j < slice.length; j++) {
            const record = records[j]
            try {
              slice[j].resolve(record === undefined ? undefined : decodeRecord(record))
            } catch (err) {
              slice[j].reject(err)
            }
          }
        },
        (err) => {
          for (const r of slice) r.reject(err)
        },
      )
    }
  }

  async getMany(keys: string[]): Promise<(Value | undefined)[]> {
    const records = await this.db.getMany(keys.map((k) => prefixed(this.dataPrefix, k)))
    return records.map((r) => (r === undefined ? undefined : decodeRecord(r)))
  }

  /** Iterates data entries in key order within the range; the caller must finish or break. */
  async *scan(range: KeyRange): AsyncGenerator<[string, Value]> {
    const iterator = this.data.iterator(toLevelRange(range))
    try {
      for await (const [key, record] of iterator) yield [key.toString('utf8'), decodeRecord(record)]
    } finally {
      await iterator.close()
    }
  }

  /** Counts the data keys (one pass over the keys, no values read). */
  async countKeys(): Promise<number> {
    let count = 0
    for await (const _ of this.data.keys()) count++
    return count
  }

  // ---- log ---------------------------------------------------------------

  /**
   * Seq of the oldest entry the log can serve (lastSeq + 1 when it is
   * empty): the first block's, or the one after a damaged record.
   */
  async firstLogSeq(): Promise<number> {
    for await (const key of this.log.keys({ limit: 1 })) return Math.max(keySeq(key), this.logUsableFrom)
    return this.lastSeq + 1
  }

  /**
   * Encoded log entries with seq >= fromSeq, in order, up to `limit` of them.
   * A record that is not a well-formed block (a damaged disk, an edit from
   * outside) ends the read with INTERNAL, and from then on firstLogSeq()
   * starts after it, so a downstream that needs those entries gets a full
   * sync instead of failing on them again and again.
   */
  async *readLog(fromSeq: number, limit = Number.POSITIVE_INFINITY): AsyncGenerator<[number, Buffer]> {
    if (limit <= 0) return
    const start = (await this.blockHolding(fromSeq)) ?? fromSeq
    const iterator = this.log.iterator({ gte: seqKey(start) })
    let left = limit
    let damaged: TandemError | null = null
    try {
      for await (const [key, record] of iterator) {
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
        for (const raw of entries) {
          if (seq >= fromSeq) {
            yield [seq, raw]
            if (--left === 0) return
          }
          seq++
        }
      }
      if (damaged) {
        this.markDamagedBefore(this.lastSeq + 1)
        throw damaged
      }
    } finally {
      await iterator.close()
    }
  }

  /** Serves the log only from `seq` on (a damaged record lies before it); status shows it at once. */
  private markDamagedBefore(seq: number): void {
    this.logUsableFrom = Math.max(this.logUsableFrom, seq)
    this.logStart = Math.max(this.logStart, this.logUsableFrom)
  }

  /** Key (first seq) of the log block holding `seq`, or of the last block before it; undefined when none is. */
  private async blockHolding(seq: number): Promise<number | undefined> {
    for await (const key of this.log.keys({ lte: seqKey(seq), reverse: true, limit: 1 })) return keySeq(key)
    return undefined
  }

  async lastEntry(): Promise<LogEntry | undefined> {
    for await (const record of this.log.values({ reverse: true, limit: 1 })) {
      const entries = unpackBlock(record)
      return decodeEntry(entries[entries.length - 1])
    }
    return undefined
  }

  /**
   * A consistent view of the data and the seq it reflects: one LevelDB
   * snapshot, read for lastSeq and iterated for the data, so the two agree
   * even while writes go on. The caller must close it.
   */
  snapshot(): DataSnapshot {
    const snapshot = this.db.snapshot()
    const seq = this.meta.get('lastSeq', { snapshot }).then((s) => (s as number | undefined) ?? 0)
    const db = this.db
    const dataPrefix = this.dataPrefix
    return {
      seq,
      // Whole pages at once: one thread-pool read and one await per page, on
      // the root db with the data prefix (no sublevel per-entry key
      // rewriting); the next page is read on the thread pool while the
      // caller sends this chunk.
      async *chunks(targetBytes: number): AsyncGenerator<{ chunk: Buffer; count: number }> {
        const end = Buffer.from(dataPrefix)
        end[end.length - 1]++
        const iterator = db.iterator({ gte: dataPrefix, lt: end, snapshot })
        let next: Promise<[Buffer, Buffer][]> = Promise.resolve([])
        let pending: [Buffer, Buffer][] = []
        let bytes = 0
        try {
          next = iterator.nextv(SNAPSHOT_PAGE)
          for (;;) {
            const page = await next
            if (page.length === 0) break
            next = iterator.nextv(SNAPSHOT_PAGE)
            for (const entry of page) {
              pending.push(entry)
              bytes += entry[0].length + entry[1].length
              if (bytes >= targetBytes) {
                yield { chunk: packChunk(pending, dataPrefix.length), count: pending.length }
                pending = []
                bytes = 0
              }
            }
          }
          if (pending.length > 0) yield { chunk: packChunk(pending, dataPrefix.length), count: pending.length }
        } finally {
          await next.catch(() => {})
          await iterator.close()
        }
      },
      close: () => snapshot.close(),
    }
  }

  /**
   * Keeps the log from `seq` on until the returned function is called, beyond
   * the retention window if need be: a full sync in progress must find the
   * entries after its snapshot still there when it ends.
   */
  pinLog(seq: number): { move(seq: number): void; release(): void } {
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

  // ---- full sync (downstream side) ----------------------------------------

  /**
   * Empties the node before a full sync. Marked in meta first, so that a
   * crash half-way leaves a node that knows its data is partial.
   */
  async beginFullSync(): Promise<void> {
    await this.committer.idle()
    // A write left over from a full sync that was cut short must not land
    // in this one, nor its failure fail this one.
    await this.snapshotWrite.catch(() => {})
    this.snapshotWrite = Promise.resolve()
    await this.putMeta('syncing', true, true)
    await this.clearAll()
  }

  /**
   * Writes one snapshot chunk (see snapshot-chunk.ts). The batch is built
   * at once and its write overlaps the building of the next chunk's batch:
   * the call returns once the previous chunk's write is done, so at most
   * two chunks are in memory. finishFullSync() waits for the last one, and
   * a failed write fails the next call (or finishFullSync). A chunk that
   * does not parse, or does not hold `expectedCount` records, is refused
   * before anything of it is written.
   */
  async applySnapshotChunk(chunk: Uint8Array, expectedCount: number): Promise<void> {
    const batch = this.db.batch()
    try {
      const count = unpackChunk(chunk, this.dataPrefix, (key, record) => batch.put(key, record))
      if (count !== expectedCount) {
        throw new Error(`snapshot chunk holds ${count} records, its frame says ${expectedCount}`)
      }
    } catch (err) {
      void batch.close()
      throw err
    }
    const previous = this.snapshotWrite
    const write = previous.then(
      () => this.writeBatch(batch, false),
      (err) => {
        void batch.close()
        throw err
      },
    )
    // Handled here so that a failure while no chunk follows yet does not
    // go unhandled; the next chunk, finishFullSync, idle() and close() see it.
    write.catch(() => {})
    this.snapshotWrite = write
    await previous
  }

  /** Completes a full sync: the data now reflects `seq` of the given history. */
  async finishFullSync(seq: number, history: HistoryEpoch[]): Promise<void> {
    await this.snapshotWrite
    const batch = this.db.batch()
    batch.put(this.lastSeqKey, Buffer.from(String(seq)))
    batch.put(prefixed(this.metaPrefix, 'history'), Buffer.from(JSON.stringify(history)))
    batch.del(prefixed(this.metaPrefix, 'syncing'))
    await this.writeBatch(batch, this.options.sync !== 'none')
    this.lastSeq = seq
    this.nextSeq = seq + 1
    this.history = history
    this.logStart = seq + 1
    this.lastCommitAt = Date.now()
    for (const listener of this.listeners) listener(seq)
  }

  private async clearAll(): Promise<void> {
    await this.data.clear()
    await this.log.clear()
    const batch = this.db.batch()
    batch.put(this.lastSeqKey, Buffer.from('0'))
    batch.put(prefixed(this.metaPrefix, 'history'), Buffer.from('[]'))
    await this.writeBatch(batch, this.options.sync !== 'none')
    this.lastSeq = 0
    this.nextSeq = 1
    this.history = []
    this.logStart = 1
    this.tail.clear()
    this.commitTimes.clear()
  }

  /** Drops log entries older than the retention window. */
  trimLog(): Promise<void> {
    if (this.trimming || this.status !== 'open') return this.trimming ?? Promise.resolve()
    let keepFrom = this.lastSeq - this.options.logRetention + 1
    for (const pinned of this.pins.values()) keepFrom = Math.min(keepFrom, pinned)
    if (keepFrom <= 1) return Promise.resolve()
    // Whole blocks only: the one holding keepFrom stays, entries before
    // keepFrom included.
    this.trimming = this.blockHolding(keepFrom)
      .then(async (start) => {
        if (start !== undefined) await this.log.clear({ lt: seqKey(start) })
        this.logStart = await this.firstLogSeq()
      })
      .catch(() => {})
      .finally(() => {
        this.trimming = null
      })
    return this.trimming
  }

  // ---- lifecycle ---------------------------------------------------------

  close(): Promise<void> {
    if (!this.closing) this.closing = this.doClose()
    return this.closing
  }

  private async doClose(): Promise<void> {
    this.status = 'closing'
    for (const t of this.timers) clearInterval(t)
    await this.committer.idle()
    await this.snapshotWrite.catch(() => {})
    await this.trimming
    while (this.recovering) await new Promise((resolve) => setTimeout(resolve, 10))
    // With a full disk there is nothing to flush: every acknowledged write
    // was made durable before it was acknowledged, and nothing else is.
    if (this.dirtySinceSync && this.options.sync !== 'none' && this.db.status === 'open' && !this.noSpace) {
      this.dirtySinceSync = false
      await this.putMeta('syncedAt', Date.now(), true).catch((err) => {
        if (!(err instanceof TandemError && err.code === 'NOSPACE')) throw err
      })
    }
    await this.db.close()
    this.status = 'closed'
  }
}

function isNoSpace(err: unknown): boolean {
  const e = err as { code?: string; message?: string; cause?: { message?: string } }
  return e?.code === 'ENOSPC' || /No space left on device|ENOSPC/.test(`${e?.message} ${e?.cause?.message}`)
}

function noSpaceError(state: NoSpace): TandemError {
  return new TandemError(
    'NOSPACE',
    `the disk holding the data dir is full (since ${new Date(state.since).toISOString()}: ${state.message}); this write was not applied, nothing acknowledged is lost, and writes resume on their own once space is freed`,
  )
}

function damagedError(dataDir: string, damage: DamagedFile[], cause?: unknown): TandemError {
  const list = damage.map((d) => `${join(dataDir, 'db', d.file)}: ${d.problem}`).join('; ')

  return new TandemError(
    'CORRUPT',
    `the data dir ${dataDir} is damaged (${list}); refusing to serve it. Move the data dir aside and start this node as a replica of a healthy one (--replicaof) to copy the data back, or restore it from a backup`,
    { cause },
  )
}

/** Entries read from LevelDB at once while streaming a snapshot. */
const SNAPSHOT_PAGE = 1000

/** Most keys in one coalesced getMany. */
const MAX_READ_BATCH = 1000

function prefixed(prefix: Buffer, key: string): Buffer {
  const length = Buffer.byteLength(key, 'utf8')
  const out = Buffer.allocUnsafe(prefix.length + length)
  prefix.copy(out, 0)
  out.write(key, prefix.length, 'utf8')
  return out
}

function prefixedBytes(prefix: Buffer, key: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(prefix.length + key.byteLength)
  prefix.copy(out, 0)
  out.set(key, prefix.length)
  return out
}

export interface DataSnapshot {
  seq: Promise<number>
  /** The data as snapshot chunks of about `targetBytes` each (see snapshot-chunk.ts). */
  chunks(targetBytes: number): AsyncGenerator<{ chunk: Buffer; count: number }>
  close(): Promise<void>
}

export interface KeyRange {
  prefix?: string
  gt?: string
  gte?: string
  lt?: string
  lte?: string
  limit?: number
  reverse?: boolean
}

/** The smallest byte string greater than every string starting with prefix, or undefined when none is. */
export function prefixUpperBound(prefix: Buffer): Buffer | undefined {
  let end = prefix.length
  while (end > 0 && prefix[end - 1] === 0xff) end--
  if (end === 0) return undefined
  const bound = Buffer.from(prefix.subarray(0, end))
  bound[end - 1]++
  return bound
}

/**
 * Folds the caller's bounds and prefix into one lower and one upper bound:
 * LevelDB ranges take at most one of gt/gte and one of lt/lte.
 */
function toLevelRange(range: KeyRange): Record<string, unknown> {
  let lower: { key: Buffer; inclusive: boolean } | undefined
  let upper: { key: Buffer; inclusive: boolean } | undefined
  const raise = (key: Buffer, inclusive: boolean) => {
    const c = lower ? Buffer.compare(key, lower.key) : 1
    if (c > 0 || (c === 0 && !inclusive)) lower = { key, inclusive }
  }
  const drop = (key: Buffer, inclusive: boolean) => {
    const c = upper ? Buffer.compare(key, upper.key) : -1
    if (c < 0 || (c === 0 && !inclusive)) upper = { key, inclusive }
  }
  if (range.gt !== undefined) raise(Buffer.from(range.gt), false)
  if (range.gte !== undefined) raise(Buffer.from(range.gte), true)
  if (range.lt !== undefined) drop(Buffer.from(range.lt), false)
  if (range.lte !== undefined) drop(Buffer.from(range.lte), true)
  if (range.prefix !== undefined && range.prefix !== '') {
    const prefix = Buffer.from(range.prefix)
    raise(prefix, true)
    const bound = prefixUpperBound(prefix)
    if (bound) drop(bound, false)
  }
  const out: Record<string, unknown> = { reverse: range.reverse === true, limit: range.limit ?? -1 }
  if (lower) out[lower.inclusive ? 'gte' : 'gt'] = lower.key
  if (upper) out[upper.inclusive ? 'lte' : 'lt'] = upper.key
  return out
}
