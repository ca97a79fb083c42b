import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rm, statfs, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { byteLength, TandemError, type Value } from '@tandem/protocol'
import type { AbstractSublevel } from 'abstract-level'
import { Level } from 'level'
import type { ApplyEntry } from './entry-scan.js'
import { GroupCommitter } from './group-commit.js'
import { HybridClock, type WallClock } from './hlc.js'
import { type CheckLevel, checkLevelDb, type DamagedFile } from './leveldb-check.js'
import { WriteLog } from './log.js'
import { type EntryOp, encodeEntry, type LogEntry, OP_PUT, placeEntry } from './log-entry.js'
import { decodeRecord, encodeRecord } from './record.js'
import { type ConflictResolver, KEEP } from './resolver.js'
import { packChunk, unpackChunk } from './snapshot-chunk.js'
import { SyncReadGate, type SyncReadOptions } from './sync-reads.js'
import { VersionVector, type VersionVectorObject } from './version-vector.js'

/**
 * Store: one LevelDB holding three sublevels, always written together.
 *
 *   data  user key (UTF-8 bytes) -> record (record.ts)
 *   log   the write log (log.ts): 8-byte big-endian seq -> block of entries
 *   meta  'lastSeq' | 'clock' | 'history' | 'syncedAt' | 'largestValue' | ... -> JSON
 *
 * The Store owns the data, the group committer and snapshots; the log is a
 * WriteLog it appends to (`store.log`), which replication reads.
 *
 * Every write, local or remote, goes through the group committer, which
 * puts a group's data mutations, its log entries, the new lastSeq and the
 * node's clock (the HLC high-water mark and, per origin, the highest
 * counter applied: `clock`) into one atomic batch. So after any crash the
 * data, the log and the counters agree: the log is never ahead of or behind
 * the data, and a counter or timestamp once issued is never issued again.
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
  /** When gets may read LevelDB on the event loop (see SyncReadGate). */
  syncReads?: SyncReadOptions
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
type Batch = ReturnType<Db['batch']>

/** What commitGroup carries from write to write of one group. */
interface GroupState {
  batch: Batch
  epoch: number
  /** Seq of the last entry added so far. */
  seq: number
  /** Encoded entries, in seq order from the group's first. */
  raws: Buffer[]
  /** Current records of the keys reading resolvers need, updated as the group writes them (by latin1 key). */
  current: Map<string, Buffer | undefined> | null
  /** Counters as they were before this group changed them, to restore if it fails. */
  counters: Map<string, number>
  /** The largest value the group writes, or the store's high-water mark if larger. */
  largest: number
}

interface LocalWrite {
  kind: 'local'
  ops: EntryOp[]
}

/**
 * Where remote entries go in this node's log. keep: at the seqs they carry
 * (a replica copying its upstream's log; each must follow the last). append:
 * after this node's last entry, with this node's seq and epoch (a peer's
 * entries), skipping those already applied (by origin and counter).
 */
export type Placement = 'keep' | 'append'

/** Entries from an upstream or a peer (one frame's worth), committed together. */
interface RemoteWrite {
  kind: 'remote'
  entries: ApplyEntry[]
  resolver: ConflictResolver
  placement: Placement
}
export type StoreWrite = LocalWrite | RemoteWrite

/** The node's clock as persisted with every group: HLC high-water mark and per-origin counters. */
export interface StoreClock {
  hlc: number
  vv: VersionVectorObject
}

export type CommitListener = (lastSeq: number) => void

export class Store {
  status: StoreStatus = 'opening'
  readonly dataDir: string
  nodeId = ''
  /** Seq of the last committed entry (0 when the log is empty). */
  lastSeq = 0
  /**
   * Seq of the last entry handed to LevelDB, its batch possibly still being
   * written (>= lastSeq). Reads run on LevelDB's thread pool too, so a read
   * that completes may already see that batch although lastSeq has not
   * moved yet: this, taken when the read completes, bounds what it saw.
   */
  writingSeq = 0
  /** Wall time at which lastSeq committed; used for lag in ms. */
  lastCommitAt = 0
  history: HistoryEpoch[] = []
  readonly hlc: HybridClock
  /** Per origin, the highest counter applied here (this node's own writes included). */
  readonly vv = new VersionVector()
  /** The id this node's writes carry as their origin. */
  origin = ''
  readonly log: WriteLog
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
   * The largest value, in bytes, this store has held since it was last
   * empty: a high-water mark, written in the same batch as the value that
   * raised it, never lowered by a delete. The API reserves a read's reply
   * against it before the read (a read's bytes exist once it is done), so
   * a node whose values are all small pipelines reads freely and one that
   * holds large values bounds them. undefined when unknown (a data dir
   * from before tandem kept it).
   */
  largestValue: number | undefined = 0

  private db!: Db
  private data!: Bytes
  private meta!: Sublevel<string, unknown>
  // Writes bypass the sublevel API: a chained batch op with the `sublevel`
  // option costs several times the JavaScript of a prefixed key on the
  // root db. The prefixes are the sublevels' own, so reads through the
  // sublevels see the same keys.
  private dataPrefix!: Buffer
  private metaPrefix!: Buffer
  private lastSeqKey!: Buffer
  private clockKey!: Buffer
  private readonly committer: GroupCommitter<StoreWrite, number>
  private readonly listeners = new Set<CommitListener>()
  private readonly timers: NodeJS.Timeout[] = []
  private dirtySinceSync = false
  private readonly syncReads: SyncReadGate
  private pendingReads: { key: Buffer; resolve: (v: Value | undefined) => void; reject: (err: unknown) => void }[] = []
  /** The last snapshot chunk's write during a full sync (a rejected one fails the next chunk). */
  private snapshotWrite: Promise<void> = Promise.resolve()
  private closing: Promise<void> | null = null
  /** Seq that the next local write will take. */
  private nextSeq = 1

  private constructor(private readonly options: StoreOptions) {
    this.dataDir = options.dataDir
    this.hlc = new HybridClock(options.clock)
    this.log = new WriteLog(() => this.lastSeq, { retention: options.logRetention })
    this.syncReads = new SyncReadGate(options.syncReads)
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
    this.log.bind(this.db.sublevel<Buffer, Buffer>('log', { keyEncoding: 'buffer', valueEncoding: 'buffer' }))
    this.meta = this.db.sublevel<string, unknown>('meta', { keyEncoding: 'utf8', valueEncoding: 'json' })
    this.dataPrefix = Buffer.from(this.data.prefix)
    this.metaPrefix = Buffer.from(this.meta.prefix)
    this.lastSeqKey = prefixed(this.metaPrefix, 'lastSeq')
    this.clockKey = prefixed(this.metaPrefix, 'clock')
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
    this.origin = this.nodeId
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
      const last = await this.log.lastEntry()
      if (last && last.seq !== lastSeq) {
        return [
          { file: where, problem: `its last log entry is seq ${last.seq} but its last committed seq is ${lastSeq}` },
        ]
      }
      if (!last && (await this.log.firstSeqOnDisk()) !== undefined) {
        return [{ file: where, problem: 'its log holds records but no readable entry' }]
      }
    } catch (err) {
      return [{ file: where, problem: `its last committed group cannot be read: ${(err as Error).message}` }]
    }
    return []
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
    this.writingSeq = this.lastSeq
    this.nextSeq = this.lastSeq + 1
    this.history = ((await this.meta.get('history')) as HistoryEpoch[] | undefined) ?? []
    this.largestValue =
      ((await this.meta.get('largestValue')) as number | undefined) ?? (this.lastSeq === 0 ? 0 : undefined)
    this.vv.clear()
    const clock = (await this.meta.get('clock')) as StoreClock | undefined
    if (clock) {
      this.vv.join(clock.vv)
      this.hlc.restore(clock.hlc)
    } else {
      // A data dir from before the clock was persisted: its entries counted
      // originSeq with the global seq, so the newest entry's is an upper
      // bound for its origin, and counters go on from there. (A damaged
      // head, onDamage 'resync', is found by checkHead; the data is then discarded.)
      const last = await this.log.lastEntry().catch(() => undefined)
      if (last) {
        this.hlc.restore(last.hlc)
        this.vv.advance(last.origin, last.originSeq)
      }
    }
    await this.log.open()
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
   * Applies entries received from an upstream or a peer, each op through
   * `resolver`, placed per `placement` (see Placement). Resolves with this
   * node's last seq once all are durable. They may share a group with other
   * writes, but are never split across two; a frame that does not fit (a
   * seq that does not follow, a counter that skips one) is refused whole
   * and nothing of it is written.
   */
  applyRemote(entries: ApplyEntry[], resolver: ConflictResolver, placement: Placement): Promise<number> {
    if (this.status !== 'open') return Promise.reject(new TandemError('CLOSED', 'store is closed'))
    return this.committer.submit({ kind: 'remote', entries, resolver, placement })
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

  private async commitGroup(group: StoreWrite[]): Promise<(number | Error)[]> {
    // A chained batch: cheaper than the array form of db.batch() for the
    // same ops.
    const batch = this.db.batch()
    const results: (number | Error)[] = new Array(group.length)
    const first = this.nextSeq
    const commit: GroupState = {
      batch,
      epoch: this.epoch,
      seq: this.nextSeq - 1,
      raws: [],
      current: await this.readCurrent(group),
      counters: new Map(),
      largest: this.largestValue ?? 0,
    }
    try {
      for (let i = 0; i < group.length; i++) {
        const write = group[i]
        if (write.kind === 'local') {
          let hlc = this.hlc.tryNow()
          if (hlc === null) hlc = await this.hlc.now()
          const seq = ++commit.seq
          const originSeq = this.nextCounter(commit, this.origin)
          const entry: LogEntry = { seq, epoch: commit.epoch, origin: this.origin, originSeq, hlc, ops: write.ops }
          for (const op of write.ops) {
            if (op[0] === OP_PUT && byteLength(op[2]) > commit.largest) commit.largest = byteLength(op[2])
          }
          this.putEntry(batch, entry)
          commit.raws.push(encodeEntry(entry))
          results[i] = seq
        } else {
          results[i] = this.addRemote(commit, write)
        }
      }
    } catch (err) {
      this.restoreCounters(commit)
      void batch.close() // nothing of this group is written; free the native batch
      throw err
    }
    if (commit.raws.length === 0) {
      // Every entry was one this node already held: nothing to write.
      void batch.close()
      return results
    }
    const seq = commit.seq
    this.log.append(batch, first, commit.raws)
    batch.put(this.lastSeqKey, Buffer.from(String(seq)))
    const raised = this.largestValue !== undefined && commit.largest > this.largestValue
    if (raised) batch.put(prefixed(this.metaPrefix, 'largestValue'), Buffer.from(String(commit.largest)))
    batch.put(this.clockKey, Buffer.from(JSON.stringify({ hlc: this.hlc.peek(), vv: this.vv.toObject() })))
    this.writingSeq = seq
    try {
      await this.writeBatch(batch, this.options.sync === 'always')
    } catch (err) {
      this.writingSeq = this.lastSeq
      this.restoreCounters(commit)
      throw err
    }
    if (raised) this.largestValue = commit.largest
    this.nextSeq = seq + 1
    this.lastSeq = seq
    this.lastCommitAt = Date.now()
    this.log.committed(first, commit.raws, this.lastCommitAt)
    this.dirtySinceSync = true
    for (const listener of this.listeners) listener(seq)
    return results
  }

  /** The next counter of `origin`'s writes, remembering the old one in case the group fails. */
  private nextCounter(commit: GroupState, origin: string): number {
    const counter = this.vv.get(origin)
    if (!commit.counters.has(origin)) commit.counters.set(origin, counter)
    this.vv.set(origin, counter + 1)
    return counter + 1
  }

  /** A failed group issued no counter: the next write reuses them, so each origin's stay dense. */
  private restoreCounters(commit: GroupState): void {
    for (const [origin, counter] of commit.counters) this.vv.set(origin, counter)
  }

  /**
   * Adds a frame of remote entries to the group, or returns why it cannot
   * (then nothing of it is added). Returns this node's seq after its last entry.
   */
  private addRemote(commit: GroupState, write: RemoteWrite): number | Error {
    const { entries, resolver } = write
    const keep = write.placement === 'keep'
    const problem = keep ? this.checkSeqs(entries, commit.seq) : this.checkCounters(entries)
    if (problem) return problem
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]
      if (!keep && entry.originSeq <= this.vv.get(entry.origin)) continue // already held
      const seq = ++commit.seq
      const before = this.vv.get(entry.origin)
      if (!commit.counters.has(entry.origin)) commit.counters.set(entry.origin, before)
      if (entry.originSeq > before) this.vv.set(entry.origin, entry.originSeq)
      this.hlc.observe(entry.hlc)
      for (const op of entry.ops) {
        if (op.value !== null && op.value.length > commit.largest) commit.largest = op.value.length
        this.putResolved(commit, op, entry, resolver)
      }
      commit.raws.push(keep ? entry.raw : placeEntry(entry.raw, entry.identityAt, seq, commit.epoch))
    }
    return commit.seq
  }

  private checkSeqs(entries: ApplyEntry[], lastSeq: number): Error | null {
    for (let i = 0; i < entries.length; i++) {
      if (entries[i].seq !== lastSeq + 1 + i) {
        return new TandemError('INVALID', `replicated entry ${entries[i].seq} does not follow ${lastSeq + i}`)
      }
    }
    return null
  }

  /** Each origin's entries must go on from the counter this node holds, skipping none. */
  private checkCounters(entries: ApplyEntry[]): Error | null {
    const next = new Map<string, number>()
    for (const entry of entries) {
      const held = next.get(entry.origin) ?? this.vv.get(entry.origin)
      if (entry.originSeq <= held) continue
      if (entry.originSeq !== held + 1) {
        return new TandemError(
          'INVALID',
          `entry ${entry.origin}:${entry.originSeq} skips ${entry.originSeq - held - 1} of that origin's writes (this node holds up to ${held})`,
        )
      }
      next.set(entry.origin, entry.originSeq)
    }
    return null
  }

  /** Adds one op of a remote entry, as its resolver decides, to the batch. */
  private putResolved(
    commit: GroupState,
    op: ApplyEntry['ops'][number],
    entry: ApplyEntry,
    resolver: ConflictResolver,
  ) {
    const key = prefixedBytes(this.dataPrefix, op.key)
    let current: Buffer | undefined
    let name = ''
    if (resolver.readsCurrent && commit.current) {
      name = key.toString('latin1')
      current = commit.current.get(name)
    }
    const record = resolver.resolve(op, entry, current)
    if (record === KEEP) return
    if (record === null) commit.batch.del(key)
    else commit.batch.put(key, record)
    if (name !== '') commit.current?.set(name, record ?? undefined)
  }

  /**
   * The current records of every key the group's reading resolvers need,
   * read in one getMany before the group's batch is built; null when no
   * write in the group needs any (the replica path).
   */
  private async readCurrent(group: StoreWrite[]): Promise<Map<string, Buffer | undefined> | null> {
    let keys: Buffer[] | null = null
    for (const write of group) {
      if (write.kind !== 'remote' || !write.resolver.readsCurrent) continue
      keys ??= []
      for (const entry of write.entries) for (const op of entry.ops) keys.push(prefixedBytes(this.dataPrefix, op.key))
    }
    if (keys === null) return null
    const records = await this.db.getMany(keys)
    const current = new Map<string, Buffer | undefined>()
    for (let i = 0; i < keys.length; i++) current.set(keys[i].toString('latin1'), records[i])
    return current
  }

  /** Adds one local entry's data mutations to a batch (its log record goes in the group's block). */
  private putEntry(batch: Batch, entry: LogEntry): void {
    for (const op of entry.ops) {
      const key = prefixed(this.dataPrefix, op[1])
      if (op[0] === OP_PUT) batch.put(key, encodeRecord(op[2]))
      else batch.del(key)
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
   * A get reads LevelDB synchronously while that is cheap (see
   * SyncReadGate: off for a while after a read that waited for the disk).
   * Otherwise reads are coalesced: every get issued in the same turn goes
   * to LevelDB as one getMany on the root db (one crossing into LevelDB and
   * its thread pool instead of one per key), and their replies then leave
   * together. Both read the latest committed state: a synchronous read sees
   * what a getMany queued at the same moment would.
   */
  get(key: string): Promise<Value | undefined> {
    // getSync throws while LevelDB is (re)opening, where getMany waits for it.
    const startedAt = this.db.status === 'open' ? this.syncReads.begin() : null
    if (startedAt !== null) {
      try {
        const record = this.db.getSync(prefixed(this.dataPrefix, key))
        this.syncReads.done(startedAt)
        return Promise.resolve(record === undefined ? undefined : decodeRecord(record))
      } catch (err) {
        return Promise.reject(err)
      }
    }
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

  // ---- snapshots ---------------------------------------------------------

  /**
   * A consistent view of the data and the seq it reflects: one LevelDB
   * snapshot, read for lastSeq and iterated for the data, so the two agree
   * even while writes go on. The caller must close it.
   */
  snapshot(): DataSnapshot {
    const snapshot = this.db.snapshot()
    const seq = this.meta.get('lastSeq', { snapshot }).then((s) => (s as number | undefined) ?? 0)
    const clock = this.meta
      .get('clock', { snapshot })
      .then((c) => (c as StoreClock | undefined) ?? { hlc: this.hlc.peek(), vv: this.vv.toObject() })
    const db = this.db
    const dataPrefix = this.dataPrefix
    return {
      seq,
      clock,
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
    let largest = this.largestValue ?? 0
    try {
      const count = unpackChunk(chunk, this.dataPrefix, (key, record) => {
        batch.put(key, record)
        if (record.length - 1 > largest) largest = record.length - 1
      })
      if (count !== expectedCount) {
        throw new Error(`snapshot chunk holds ${count} records, its frame says ${expectedCount}`)
      }
    } catch (err) {
      void batch.close()
      throw err
    }
    if (this.largestValue !== undefined && largest > this.largestValue) {
      // Raised before the chunk is readable, and kept with it.
      this.largestValue = largest
      batch.put(prefixed(this.metaPrefix, 'largestValue'), Buffer.from(String(largest)))
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

  /**
   * Completes a full sync: the data now reflects `seq` of the given history,
   * and `clock` (the upstream's at its snapshot, when it sent one) holds the
   * counters and timestamp of the writes it holds. This node's own counter
   * never goes back: its writes that did not survive keep their numbers.
   */
  async finishFullSync(seq: number, history: HistoryEpoch[], clock?: StoreClock): Promise<void> {
    await this.snapshotWrite
    const ownCounter = this.vv.get(this.origin)
    this.vv.clear()
    if (clock) {
      this.vv.join(clock.vv)
      this.hlc.restore(clock.hlc)
    }
    this.vv.advance(this.origin, ownCounter)
    const batch = this.db.batch()
    batch.put(this.lastSeqKey, Buffer.from(String(seq)))
    batch.put(this.clockKey, Buffer.from(JSON.stringify({ hlc: this.hlc.peek(), vv: this.vv.toObject() })))
    batch.put(prefixed(this.metaPrefix, 'history'), Buffer.from(JSON.stringify(history)))
    batch.del(prefixed(this.metaPrefix, 'syncing'))
    await this.writeBatch(batch, this.options.sync !== 'none')
    this.lastSeq = seq
    this.writingSeq = seq
    this.nextSeq = seq + 1
    this.history = history
    this.log.restartAfter(seq)
    this.lastCommitAt = Date.now()
    for (const listener of this.listeners) listener(seq)
  }

  private async clearAll(): Promise<void> {
    await this.data.clear()
    await this.log.clear()
    const batch = this.db.batch()
    batch.put(this.lastSeqKey, Buffer.from('0'))
    batch.put(prefixed(this.metaPrefix, 'history'), Buffer.from('[]'))
    batch.put(prefixed(this.metaPrefix, 'largestValue'), Buffer.from('0'))
    await this.writeBatch(batch, this.options.sync !== 'none')
    this.largestValue = 0
    this.lastSeq = 0
    this.writingSeq = 0
    this.nextSeq = 1
    this.history = []
  }

  /** Drops log entries older than the retention window. */
  trimLog(): Promise<void> {
    if (this.status !== 'open') return this.log.idle()
    return this.log.trim()
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
    await this.log.idle()
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
  /** The node's clock as of the snapshot (what writes the data holds). */
  clock: Promise<StoreClock>
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
