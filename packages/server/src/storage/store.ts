import { randomBytes } from 'node:crypto'
import { mkdir, open as openFile, readdir, readFile, rm, statfs, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DATA_FORMAT, TandemError, type Value } from '@tandem/protocol'
import type { AbstractSublevel } from 'abstract-level'
import { Level } from 'level'
import { DEFAULT_TUNING } from '../tuning.js'
import { type Clock, systemClock } from '../util/clock.js'
import { interned } from '../util/interned.js'
import { keyTrace, keyTraceOn, tracedKey, traceTime } from '../util/key-trace.js'
import { BulkBatch } from './bulk-batch.js'
import { ConvergenceDigest, lastTermHigh, lastTermLow } from './convergence.js'
import { type ApplyEntry, type ApplyOp, readForApply } from './entry-scan.js'
import { noteWriterFault, packedOrigin, putEntryBytes, writePutEntry } from './entry-writer.js'
import { ExpiryIndex } from './expiry-index.js'
import { type CommitStats, GroupCommitter, type GroupJoin, RETRY } from './group-commit.js'
import { HybridClock, hlcWallMs } from './hlc.js'
import { KeyPresence, ticketExists, ticketKnown } from './key-presence.js'
import { type KeyCounts, type KeyGroup, KeyTracker } from './key-tracker.js'
import { type CheckLevel, checkLevelDb, type DamagedFile } from './leveldb-check.js'
import { type EntryIds, WriteLog } from './log.js'
import type { BlockPacker } from './log-block.js'
import {
  type EntryIdentity,
  type EntryOp,
  encodeEntry,
  type LogEntry,
  NO_ORIGIN,
  OP_COLLECT,
  OP_DEL,
  OP_PUT,
  type OpOptions,
  opOptions,
  placedEntryBytes,
  placeEntry,
  placeEntryAt,
} from './log-entry.js'
import { isStub, LwwHeads, NO_HEAD_TICKET, UNKNOWN } from './lww-heads.js'
import { SUBLEVELS } from './raw-layout.js'
import { ABSENT, NO_TICKET, ReadCache, WrittenValues } from './read-cache.js'
import {
  DECODE_SPAN,
  decodeRecord,
  decodeRecordBytes,
  isLiveRecord,
  isSealed,
  isTombstone,
  type KeyRecord,
  modSeqOf,
  PUT_RECORD_SPAN,
  RECORD_META,
  readRecord,
  recordExpiresAt,
  recordIntact,
  recordModSeq,
  sealRecord,
  seqRecord,
  writtenIsBinary,
  writtenValueAt,
} from './record.js'
import { type ConflictResolver, KEEP } from './resolver.js'
import { runOutcome } from './run-refused.js'
import { ChunkPacker, unpackChunk } from './snapshot-chunk.js'
import { SyncReadGate, type SyncReadOptions } from './sync-reads.js'
import { TextBytes, type WriteValue, writeValueBytes } from './text-bytes.js'
import { VersionVector, type VersionVectorObject, vvCovers } from './version-vector.js'
import { NO_STAGES, type WriteStageSink } from './write-stages.js'

/**
 * Store: one LevelDB holding three sublevels, always written together.
 *
 *   data  user key (UTF-8 bytes) -> record (record.ts)
 *   log   the write log (log.ts): 8-byte big-endian seq -> block of entries
 *   meta  'lastSeq' | 'clock' | 'history' | 'syncedAt' | 'largestValue' | 'keyCount' | ... -> JSON
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

type SyncMode = 'always' | 'periodic' | 'none'

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
  /** How `periodic` sync fsyncs one of LevelDB's log files (default: fdatasync; tests hold or fail it). */
  fsyncFile?: (path: string) => Promise<void>
  /** How `periodic` sync fsyncs LevelDB's directory once it sees a new log file (default: fsync; tests count it). */
  fsyncDir?: (path: string) => Promise<void>
  maxGroup?: number
  maxQueued?: number
  /** Where the store reads the time (wall: HLC, expiry, syncedAt); the server's one clock. */
  clock?: Clock
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
  /** Free bytes the file system must have before a store out of space reopens LevelDB (tunable noSpaceHeadroomBytes). */
  noSpaceHeadroomBytes?: number
  /** Most gets coalesced into one LevelDB read (tunable readBatchKeys). */
  readBatchKeys?: number
  /** Records read from LevelDB at once while streaming a snapshot (tunable snapshotPageRecords). */
  snapshotPageRecords?: number
  /** When gets may read LevelDB on the event loop (see SyncReadGate). */
  syncReads?: SyncReadOptions
  /** Told when writes start failing for a full disk (with the state) and when they resume (null). */
  onNoSpace?: (state: NoSpace | null) => void
  /** Told once an fsync of --sync periodic failed (see syncFailure). */
  onSyncFailure?: (state: NoSpace) => void
  /** Told when a commit listener (onCommit) throws; the others are still told, and the commit stands. */
  onListenerThrew?: (err: unknown) => void
  /**
   * multi: this node takes multi-master writes under `conflict`. The mode
   * and the policy are fixed when the data dir is created; opening one
   * created otherwise fails with a DataDirMismatchError.
   */
  mode?: 'single' | 'multi'
  conflict?: ConflictPolicy
  /** vclock: keys holding more concurrent values than this are reported to onOverCap. */
  maxSiblings?: number
  /** Recently written keys remembered as existing or not (see KeyPresence; tunable presenceKeys). */
  presenceKeys?: number
  /** Recently written keys whose last-writer-wins version and digest term are kept (see LwwHeads; tunable lwwHeadKeys). */
  lwwHeadKeys?: number
  /** LevelDB's block cache (tunable blockCacheBytes). */
  blockCacheBytes?: number
  /** Values of recently read keys kept in memory (see ReadCache; tunables readCacheKeys, readCacheBytes); 0 keys: none. */
  readCacheKeys?: number
  readCacheBytes?: number
  /** 1: the read cache keeps the values a write leaves, once it is applied (tunable readCacheWrites); 0: only what reads read. */
  readCacheWrites?: number
  /** LevelDB's memtable size (tunable writeBufferBytes). */
  writeBufferBytes?: number
  /** 1: LevelDB compresses its table blocks (snappy); 0: stores them as they are (tunable tableCompression). */
  tableCompression?: number
  /** 1: group commits are pipelined with --sync always on a single master (see Store.pipelined; tunable pipelinedCommit). */
  pipelinedCommit?: number
  /** 1: group commits are pipelined with --sync always on a multi-master node too (tunable multiPipelinedCommit). */
  multiPipelinedCommit?: number
  /** 1: a group built on one being written goes to LevelDB before that one's bookkeeping (see InFlight.rest; tunable handOverFirst, 0 by default). */
  handOverFirst?: number
}

export type ConflictPolicy = 'lww' | 'vclock'

/** A value read with the seq of the last write it depends on (Store.getWithSeq). */
interface SeqRead {
  value: Value | undefined
  seq: number
}

/** How the data dir was created, kept in meta 'policy'. */
interface StoredPolicy {
  mode: 'single' | 'multi'
  /** The conflict policy its records follow: a multi-master node's, or the one a replica took from its upstream. */
  conflict: ConflictPolicy | null
}

/** The disk filled up: since when, and what LevelDB said. */
interface NoSpace {
  since: number
  message: string
}

type StoreStatus = 'opening' | 'open' | 'closing' | 'closed'

type Db = Level<Buffer, Buffer>

/** classic-level's compactRange (not in level's types). */
interface CompactRange {
  compactRange(start: Buffer, end: Buffer): Promise<void>
}

/** The least bytes a snapshot's page of records is read up to (classic-level's default). */
const MIN_PAGE_BYTES = 16 * 1024

type Sublevel<K, V> = AbstractSublevel<Db, string | Buffer | Uint8Array, K, V>
type Bytes = Sublevel<Buffer, Buffer>
type Batch = ReturnType<Db['batch']>

/** What commitGroup carries from write to write of one group. */
interface GroupState {
  batch: Batch
  /** The batch's puts of records and log blocks, through classic-level's private put where it may (see BulkBatch). */
  bulk: BulkBatch
  /** The group's log blocks, its entries packed as they come (plain puts' written in place: addPut). */
  blocks: BlockPacker
  /** This node's origin as a log entry's field holds it (writePutEntry). */
  origin: Uint8Array
  epoch: number
  /** Seq of the last entry added so far. */
  seq: number
  /** Encoded entries, in seq order from the group's first. */
  raws: Buffer[]
  /** Their identities, in the same order (for the log's tail: LogTail.originAt); pushed with each raw. */
  ids: EntryIds
  /**
   * Current records of every key the group writes or a condition names,
   * updated as the group writes them (by latin1 key): for the key count,
   * conditions, expiry and resolvers.
   */
  current: Map<string, Buffer | undefined>
  /** How the group changes the number of keys (records that are not tombstones). */
  keyDelta: number
  /** Keys (latin1, as in `current`) whose read record is damaged: writes that read them fail with CORRUPT. */
  damaged: Set<string> | null
  /** Counters as they were before this group changed them, to restore if it fails. */
  counters: Map<string, number>
  /** The largest value the group writes, or the store's high-water mark if larger. */
  largest: number
  /** Identity-bearing entries in the group (housekeeping entries do not count). */
  writes: number
  /** Keys whose expiry time the group sets (a number) or removes, for the expiry index once it commits. */
  expiry: [string, number | undefined][]
  /**
   * The keys whose existence the group looked up in the presence cache
   * (readCurrent), with their tickets and the cache's stamp then, so that
   * what the group leaves is recorded there without a second lookup
   * (learnPresence). Whether the group read any record besides: those keys
   * are recorded by name.
   */
  presenceNames: string[]
  presenceTickets: number[]
  presenceStamp: number
  readRecords: boolean
  /** The group before it, not yet written when this one began, sets or removes expiry times. */
  expiryBefore: boolean
  /** Ms spent reading its keys' records, and building its batch (write-stage figures). */
  readMs: number
  buildMs: number
  /** Its changes to the digest, the tombstone index and the counts (a store with a key tracker). */
  keys: KeyGroup | null
}

/** A group handed to LevelDB, which the next group is built on while it is written (see commitGroup). */
interface InFlight {
  commit: GroupState
  /** Seq of its first entry. */
  first: number
  /** A group is being built on it: if it fails, that group undoes both (itself first). */
  successor: boolean
  /** Resolves true once it is written and the store holds it, false if it failed. */
  outcome: Promise<boolean>
  /**
   * Set once it is written, when a group is built on it (handOverFirst):
   * the rest of its bookkeeping (presence, the log's tail, commit
   * listeners), which that group runs as soon as it has handed its own
   * batch to LevelDB, or ends without doing so. Until then its writes are
   * not answered, and the disk does not idle behind this bookkeeping.
   */
  rest: (() => void) | null
}

/**
 * A condition on a key that a local write needs when it commits
 * (compare-and-set).
 */
export interface WriteCondition {
  key: string
  /** The key's modification seq (the seq of the entry that last wrote it) must be this; 0: the key must be absent. */
  ifSeq?: number
  ifAbsent?: boolean
  ifPresent?: boolean
}

interface LocalWrite {
  kind: 'local'
  ops: EntryOp[]
  /** Resolve with the write's identity, not only its seq. */
  identity?: boolean
  /**
   * Checked in the group committer, against the keys as the writes before
   * it left them: all must hold, or the write fails with CONFLICT and
   * nothing of it is written (the log never holds a refused write).
   */
  conditions?: WriteCondition[]
  /** An expiry write (expirer.ts): its deletes of keys that are no longer expired are dropped. */
  expire?: boolean
  /**
   * Per op, its data key and that key's latin1 (the group's name for it),
   * made once when the group reads the keys and used again when it writes
   * them (readCurrent, putEntry).
   */
  dataKeys?: Buffer[]
  names?: string[]
  /** Per op, LwwHeads' ticket of its key's lookup (NO_HEAD_TICKET: none), made with `names` on an lww node. */
  headTickets?: number[]
  /**
   * Each op is a write of its own (its own log entry, seq, HLC and counter,
   * as if submitted alone), submitted and answered together: a run of plain
   * puts (RESP's pipelined SETs). Resolves with the last one's seq. No
   * conditions, no expiry write. Under a conflict policy (with identity)
   * it resolves with each op's identity, or the error that refused that op
   * alone (see writeEachWithIdentity).
   */
  each?: boolean
}

/** A local write's result with its identity (multi-master). */
interface LocalResult extends EntryIdentity {
  seq: number
}

/** What a write in the group committer resolves with: a seq, an identity, or a run's outcomes (writeEachWithIdentity). */
type WriteOutcome = number | LocalResult | (LocalResult | Error)[]

/** Records of a peer's snapshot, joined into this node's (multi-master full sync). */
interface MergeWrite {
  kind: 'merge'
  /** User key and record. */
  records: [Buffer, Buffer][]
}

/** Tombstones to drop, those still tombstones whose requirement `stable` covers. */
interface CollectWrite {
  kind: 'collect'
  keys: Buffer[]
  stable: VersionVectorObject
}

/** The end of a merged snapshot: this node now holds what `clock` says. */
interface BarrierWrite {
  kind: 'barrier'
  clock: StoreClock
}

/**
 * Where remote entries go in this node's log. keep: at the seqs they carry
 * (a replica copying its upstream's log; each must follow the last). append:
 * after this node's last entry, with this node's seq and epoch (a peer's
 * entries), skipping those already applied (by origin and counter).
 */
type Placement = 'keep' | 'append'

/** Entries from an upstream or a peer (one frame's worth), committed together. */
interface RemoteWrite {
  kind: 'remote'
  /**
   * The entries, read. Null for a write of encoded entries (applyEncoded)
   * until its group reads them, and again once the group has built its
   * batch from them (see entriesOf).
   */
  entries: ApplyEntry[] | null
  /** The entries as received, for a write of encoded entries (applyEncoded). */
  encoded: readonly Buffer[] | null
  /** Why its entries could not be read: the write is refused whole. */
  unreadable: Error | null
  /** How many entries it holds. */
  count: number
  /** The first entry's HLC timestamp (0 while unknown), for the write-stage figures. */
  firstHlc: number
  resolver: ConflictResolver
  placement: Placement
  /**
   * By op, counted over every entry in order: its data key and that key's
   * latin1 (the group's name for it), made once when the group reads the
   * keys and used again when it writes them (readCurrent, addRemote).
   * Unset for the ops of entries the read skipped.
   */
  dataKeys?: Buffer[]
  names?: string[]
  /** By op as `names`, LwwHeads' ticket of its key's lookup (NO_HEAD_TICKET: none), made with them on an lww node. */
  headTickets?: number[]
  /** When applyRemote took it (clock.now()), for the write-stage figures. */
  submittedAt: number
  /** When its frame came off the socket (clock.now()), when known: for the key trace (key-trace.ts). */
  receivedAt?: number
  /** The traced keys among its entries, once read (key-trace.ts; only while it is on). */
  traced?: number[]
}
type StoreWrite = LocalWrite | RemoteWrite | MergeWrite | CollectWrite | BarrierWrite

/** The node's clock as persisted with every group: HLC high-water mark and per-origin counters. */
export interface StoreClock {
  hlc: number
  vv: VersionVectorObject
}

type CommitListener = (lastSeq: number) => void

/** Store.getNow's answer when the read cannot be made synchronously now. */
export const NOT_NOW: unique symbol = Symbol('not now')

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
  /**
   * Per origin, the highest counter applied here (this node's own writes
   * included), counting a group being written; see committedVv.
   */
  readonly vv = new VersionVector()
  /**
   * The version vector of what is durable: what acks, hellos, status and
   * the digest (which moves with it) speak of.
   */
  committedVv: VersionVectorObject = {}
  /**
   * Remote entries that reached the committer when this node already held
   * them (by origin and counter): a mesh's duplicate traffic, skipped.
   */
  duplicateEntries = 0
  /** The id this node's writes carry as their origin. */
  origin = ''
  /** `origin` as msgpack (packedOrigin), and the origin it was made for. */
  private originPacked: Uint8Array | null = null
  private originPackedFor = ''
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
  /**
   * Set once an fsync of LevelDB's log files (--sync periodic) failed:
   * every write fails with UNAVAILABLE from then on, until the node is
   * restarted. Linux may drop the dirty pages of a failed writeback and
   * report the error once only, so the next fsync (or a synced LevelDB
   * write) can succeed with acknowledged writes missing from the disk;
   * nothing done in this process can tell them back, and taking more
   * writes would hide the loss.
   */
  syncFailure: NoSpace | null = null
  /** Wall time the last periodic sync (--sync periodic) completed, 0 before the first. */
  syncedAt = 0
  private recovering = false
  /**
   * Keys whose record failed its checksum on a read (record.ts), with when
   * it was first found: reads of them fail with CORRUPT until a write
   * replaces the record (or the data is discarded for a full sync). At most
   * MAX_DAMAGED_KEYS are named; damagedReads counts every read that failed.
   */
  readonly damagedKeys = new Map<string, number>()
  damagedReads = 0
  /**
   * Replicated writes left out because their key's record here is damaged:
   * an op of a peer's (or upstream's) entry, a record of a snapshot joined.
   * What they would be resolved against cannot be read, and refusing them
   * whole would stall the link on them for ever; the rest of their entry
   * is applied and the entry is kept in the log (so it is forwarded).
   */
  damagedSkips = 0
  /** Told of each write left out so (see damagedSkips). */
  onDamagedSkip: ((key: string, origin: string, originSeq: number) => void) | null = null
  /**
   * Every record of the data dir was written sealed (meta 'sealed': it was
   * empty when a build that seals records opened it, or emptied since, for
   * a full sync), so one without a checksum is damaged. A data dir that
   * held records of an older build reads them unchecked.
   */
  private sealedOnly = false
  /** Told the first time a read finds a key's record damaged (the node logs it, and a replica resyncs). */
  onCorrupt: ((key: string) => void) | null = null
  /** The keys that carry a TTL (kept by every data node; see expiry-index.ts). */
  readonly expiry = new ExpiryIndex()
  /**
   * Whether any record of this data dir may carry a TTL (meta 'ttl', set
   * durably with the first one): only then does a start read the data to
   * rebuild the expiry index.
   */
  private ttlUsed = false
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
  /**
   * How many keys the data holds: records that are not tombstones (an
   * expired key counts until its delete commits). Kept exactly, in meta
   * 'keyCount', written in the same batch as every change to the data, so
   * a crash never leaves it off; a data dir from before it was kept is
   * counted once when it opens.
   */
  keyCount = 0
  /** How the data dir was created (see StoredPolicy). */
  policy: StoredPolicy = { mode: 'single', conflict: null }
  /**
   * The resolver of this node's policy (set by the node, which knows the
   * policies): local writes, merged snapshots and remote entries go through
   * it. Null in single mode.
   */
  resolver: ConflictResolver | null = null
  /** Digest, tombstone index and counts; null until the data dir has a conflict policy. */
  keys: KeyTracker | null = null
  /** Whether recently written keys exist, so that most writes need no read to keep keyCount. */
  private readonly presence: KeyPresence
  /** A last-writer-wins node's versions of recently written keys (openKeys); null otherwise. */
  private heads: LwwHeads | null = null
  /** Values of recently read keys, answered without LevelDB (see ReadCache for why it is never stale). */
  private readonly readCache: ReadCache
  /** Whether the read cache keeps what a write leaves (tunable readCacheWrites). */
  private readonly readCacheWrites: boolean
  /** Whether a group built on one being written goes to LevelDB before its bookkeeping (tunable handOverFirst). */
  private readonly handOverFirst: boolean
  /** Keys over the sibling cap after a group (vclock): the node trims them. */
  onOverCap: (keys: Buffer[]) => void = () => {}

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
  private digestKey!: Buffer
  private oldDigestKey!: Buffer
  private countsKey!: Buffer
  private keyCountKey!: Buffer
  private tombs!: Bytes
  private readonly committer: GroupCommitter<StoreWrite, WriteOutcome>
  private readonly listeners = new Set<CommitListener>()
  private readonly timers: NodeJS.Timeout[] = []
  private dirtySinceSync = false
  /** The periodic sync under way, if any (close waits for it). */
  private syncing: Promise<void> = Promise.resolve()
  private syncInFlight: Promise<void> | null = null
  /** LevelDB log files whose directory entry a periodic sync has fsynced (see syncLogFiles). */
  private dirSyncedLogs = new Set<string>()
  private readonly syncReads: SyncReadGate
  private pendingReads: PendingRead[] = []
  /** The last snapshot chunk's write during a full sync (a rejected one fails the next chunk). */
  private snapshotWrite: Promise<void> = Promise.resolve()
  private closing: Promise<void> | null = null
  /** The server's one clock (see util/clock.ts). */
  readonly clock: Clock
  private get maxSiblings(): number {
    return this.options.maxSiblings ?? 16
  }

  /** Seq that the next local write will take (past a group being written). */
  private nextSeq = 1

  /** The group being written while the next one may be built on it (see commitGroup). */
  private inflight: InFlight | null = null

  /** Where the write path's time goes (write-stages.ts); the server sets a histogram. */
  stages: WriteStageSink = NO_STAGES

  private constructor(private readonly options: StoreOptions) {
    this.dataDir = options.dataDir
    this.clock = options.clock ?? systemClock
    this.hlc = new HybridClock(() => this.clock.wall())
    this.log = new WriteLog(() => this.lastSeq, { retention: options.logRetention })
    this.syncReads = new SyncReadGate({ now: () => this.clock.now(), ...options.syncReads })
    this.presence = new KeyPresence(options.presenceKeys ?? DEFAULT_TUNING.presenceKeys)
    this.readCache = new ReadCache(
      options.readCacheKeys ?? DEFAULT_TUNING.readCacheKeys,
      options.readCacheBytes ?? DEFAULT_TUNING.readCacheBytes,
    )
    this.readCacheWrites = (options.readCacheWrites ?? DEFAULT_TUNING.readCacheWrites) === 1
    this.handOverFirst = (options.handOverFirst ?? DEFAULT_TUNING.handOverFirst) === 1
    this.committer = new GroupCommitter((group, built, join) => this.commitGroup(group, built, join), {
      maxGroup: options.maxGroup ?? 2000,
      joins: (write) => this.joinsPipeline(write),
      maxQueued: options.maxQueued ?? 100_000,
      now: () => this.clock.now(),
      waited: (ms) => this.stages.observe('queue', ms / 1000),
      weight: (write) =>
        write.kind === 'remote'
          ? write.count
          : write.kind === 'merge'
            ? write.records.length
            : write.kind === 'collect'
              ? write.keys.length
              : write.kind === 'local' && write.each
                ? write.ops.length
                : 1,
    })
  }

  private get dbDir(): string {
    return join(this.dataDir, 'db')
  }

  /** Creates the LevelDB handle, which starts opening it at once (abstract-level opens itself). */
  private bindDb(): void {
    this.db = new Level<Buffer, Buffer>(this.dbDir, {
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
      cacheSize: this.options.blockCacheBytes ?? DEFAULT_TUNING.blockCacheBytes,
      writeBufferSize: this.options.writeBufferBytes ?? DEFAULT_TUNING.writeBufferBytes,
      compression: (this.options.tableCompression ?? DEFAULT_TUNING.tableCompression) === 1,
    })
    // A LevelDB made anew numbers its log files from the start again: none of their directory entries is known synced.
    this.dirSyncedLogs = new Set()
    this.data = this.db.sublevel<Buffer, Buffer>(SUBLEVELS.data, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    this.log.bind(
      this.db.sublevel<Buffer, Buffer>(SUBLEVELS.log, { keyEncoding: 'buffer', valueEncoding: 'buffer' }),
      this.db.sublevel<Buffer, Buffer>(SUBLEVELS.resume, { keyEncoding: 'buffer', valueEncoding: 'buffer' }),
    )
    this.tombs = this.db.sublevel<Buffer, Buffer>(SUBLEVELS.tomb, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    this.meta = this.db.sublevel<string, unknown>(SUBLEVELS.meta, { keyEncoding: 'utf8', valueEncoding: 'json' })
    this.dataPrefix = Buffer.from(this.data.prefix)
    this.metaPrefix = Buffer.from(this.meta.prefix)
    this.lastSeqKey = prefixed(this.metaPrefix, 'lastSeq')
    this.clockKey = prefixed(this.metaPrefix, 'clock')
    // The sums of DIGEST_HASH 2; 'digest' held those of SHA-256 (see openKeys).
    this.digestKey = prefixed(this.metaPrefix, 'digest2')
    this.oldDigestKey = prefixed(this.metaPrefix, 'digest')
    this.countsKey = prefixed(this.metaPrefix, 'keys')
    this.keyCountKey = prefixed(this.metaPrefix, 'keyCount')
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
    await this.checkFormat()
    this.nodeId = await this.loadNodeId()
    this.origin = interned(this.nodeId)
    if (damage.length === 0) damage.push(...(await this.checkHead()))
    if (damage.length > 0) {
      if (this.options.onDamage !== 'resync') throw damagedError(this.dataDir, damage)
      this.damage = damage
    }
    await this.loadState()
    if (this.options.sync === 'periodic') {
      // A failed sync (a full disk) is seen by the writes that follow; it must not end the process.
      this.timers.push(
        setInterval(
          () => void this.syncNow().catch(() => {}),
          this.options.periodicSyncMs ?? DEFAULT_TUNING.periodicSyncMs,
        ).unref(),
      )
    }
    this.timers.push(setInterval(() => void this.trimLog(), this.options.trimIntervalMs ?? 10_000).unref())
    this.timers.push(
      setInterval(() => void this.recoverSpace(), this.options.noSpaceRetryMs ?? DEFAULT_TUNING.noSpaceRetryMs).unref(),
    )
    this.status = 'open'
  }

  /**
   * Refuses a data dir whose records are of a newer format than this build
   * reads (data-format.ts), before anything reads them: a misread record
   * would look damaged, and a replica resyncs a damaged data dir away. A
   * data dir of an older format (or none: from before the version was
   * kept) is read as it is, and marked with this build's format, since
   * the records written from now on are of that format.
   */
  private async checkFormat(): Promise<void> {
    const format = (await this.meta.get('format')) as number | undefined
    if (format !== undefined && format > DATA_FORMAT) {
      throw mismatch(
        `data dir ${this.dataDir} holds records of format ${format}, written by a newer tandem; this one reads formats up to ${DATA_FORMAT}: start the data dir with a tandem that reads format ${format}`,
      )
    }
    if (format !== DATA_FORMAT) await this.putMeta('format', DATA_FORMAT, this.options.sync !== 'none')
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
   * A replica whose reads found damaged records, at run time: once the
   * writes under way are done, drops its LevelDB as discardDamaged does, to
   * take a full sync. The caller has stopped the writers (its downstream)
   * and saved the log.
   */
  async discardForResync(): Promise<void> {
    await this.committer.idle()
    await this.snapshotWrite.catch(() => {})
    await this.discardDamaged()
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
    // Before the next await: a read of the empty LevelDB must not be answered from the data just dropped.
    this.readCache.clear()
    if (vote !== undefined) await this.setMeta('vote', vote)
    this.damage = []
    this.damagedKeys.clear()
    // What it remembers of which keys exist was of the data just dropped.
    this.presence.clear()
    this.heads?.clear()
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
    await this.loadCounters()
    await this.openPolicy()
  }

  /**
   * What the store keeps in memory of what is on disk: the log's head, key
   * count, clock and version vector, expiry times, the log's start. Read
   * at open, and again when LevelDB reopens after a full disk held a write
   * that turns out to be on disk after all (see recoverSpace).
   */
  private async loadCounters(): Promise<void> {
    this.lastSeq = ((await this.meta.get('lastSeq')) as number | undefined) ?? 0
    this.writingSeq = this.lastSeq
    this.nextSeq = this.lastSeq + 1
    this.history = ((await this.meta.get('history')) as HistoryEpoch[] | undefined) ?? []
    this.presence.clear()
    this.heads?.clear()
    this.readCache.clear()
    await this.loadKeyCount()
    this.ttlUsed = (await this.meta.get('ttl')) === true
    this.sealedOnly = (await this.meta.get('sealed')) === true
    if (!this.sealedOnly && (await this.data.keys({ limit: 1 }).all()).length === 0) {
      await this.putMeta('sealed', true, true)
      this.sealedOnly = true
    }
    // Data that holds no record: every key written from now on is learned
    // by the presence cache, which so knows a key it does not hold is absent.
    if ((await this.data.keys({ limit: 1 }).all()).length === 0) this.presence.markComplete()
    this.expiry.clear()
    if (this.ttlUsed) {
      for await (const [key, record] of this.data.iterator()) {
        const expiresAt = recordExpiresAt(record)
        if (expiresAt !== undefined) this.expiry.set(key.toString('utf8'), expiresAt)
      }
    }
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
    this.committedVv = this.vv.toObject()
    this.lastCommitAt = this.clock.wall()
  }

  /** The kept key count, or (a data dir from before it was kept) a count of the data, stored for next time. */
  private async loadKeyCount(): Promise<void> {
    const stored = (await this.meta.get('keyCount')) as number | undefined
    if (stored !== undefined) {
      this.keyCount = stored
      return
    }
    let count = 0
    for await (const record of this.data.values()) if (isLiveRecord(record)) count++
    await this.putMeta('keyCount', count, this.options.sync !== 'none')
    this.keyCount = count
  }

  /**
   * Checks the data dir against --mode and --conflict (both fixed when it is
   * created) and, for a multi-master node, takes its origin id: 128 random
   * bits drawn once per data dir, so two data dirs never share one even
   * under the same --node-id.
   */
  private async openPolicy(): Promise<void> {
    const stored = (await this.meta.get('policy')) as StoredPolicy | undefined
    const mode = this.options.mode ?? 'single'
    const empty = this.lastSeq === 0 && stored === undefined
    const created = (p: StoredPolicy) =>
      p.mode === 'multi' ? `with --mode multi --conflict ${p.conflict}` : 'as a single-master (or replica) node'
    if (mode === 'multi') {
      const wanted: StoredPolicy = { mode: 'multi', conflict: this.options.conflict ?? 'lww' }
      if (empty) {
        await this.setPolicy(wanted)
      } else if (stored?.mode !== 'multi' || stored.conflict !== wanted.conflict) {
        throw mismatch(
          `data dir ${this.dataDir} was created ${stored ? created(stored) : 'as a single-master node'}; it cannot be opened ${created(wanted)} (the mode and the conflict policy are fixed when a data dir is created; use a new --data-dir)`,
        )
      }
      this.policy = wanted
      let origin = (await this.meta.get('origin')) as string | undefined
      if (!origin) {
        origin = randomBytes(16).toString('hex')
        await this.putMeta('origin', origin, true)
      }
      this.origin = interned(origin)
    } else if (stored?.mode === 'multi') {
      throw mismatch(`data dir ${this.dataDir} was created ${created(stored)}; start it with those flags`)
    }
    if (stored && mode !== 'multi') this.policy = stored
    if (this.policy.conflict !== null) await this.openKeys()
    if (mode === 'multi' && (await this.meta.get('merging'))) {
      // A merged snapshot was cut short: its records are in, its barrier is
      // not. Write the barrier now, so that no downstream goes on without them.
      await this.committer.submit({ kind: 'barrier', clock: { hlc: this.hlc.peek(), vv: {} } })
    }
  }

  /** Records the policy of the data dir (a new multi-master node's, or a replica's upstream's). */
  private async setPolicy(policy: StoredPolicy): Promise<void> {
    await this.putMeta('policy', policy, this.options.sync !== 'none')
    this.policy = policy
    if (policy.conflict !== null && this.keys === null) await this.openKeys()
  }

  private async openKeys(): Promise<void> {
    // Sums of the older hash mean an older build wrote last: never opened by
    // this one, or opened by it and then by an older one again (a downgrade),
    // which kept `digest` and left `digest2` as it was, without its writes.
    // Either way the digest is made anew (which deletes `digest`).
    const digest =
      (await this.db.get(this.oldDigestKey)) !== undefined
        ? await this.rebuildDigest()
        : ConvergenceDigest.decode(await this.db.get(this.digestKey))
    const counts = ((await this.meta.get('keys')) as KeyCounts | undefined) ?? EMPTY_COUNTS()
    this.keys = new KeyTracker(this.tombs, digest, counts, this.maxSiblings)
    // Only a --mode multi node keeps heads: its every write sets them. A
    // replica of one (lww records, --mode single) writes by the
    // single-master path once promoted, which sets none.
    if (this.options.mode === 'multi' && this.policy.conflict === 'lww' && this.heads === null) {
      this.heads = new LwwHeads(this.options.lwwHeadKeys ?? DEFAULT_TUNING.lwwHeadKeys)
      // No record yet: every key written from now on is known (see LwwHeads, complete).
      if (await this.holdsNoRecord()) this.heads.beginComplete()
    }
    if (this.options.mode === 'multi' && (await this.log.resumeFrom(() => true)) === null && this.lastSeq === 0) {
      // A new multi-master data dir: a peer holding nothing resumes from seq 1.
      await this.log.barrier(0, '{}')
    }
  }

  /** Whether the data sublevel holds no record at all (tombstones are records). */
  private async holdsNoRecord(): Promise<boolean> {
    for await (const _ of this.data.keys({ limit: 1 })) return false
    return true
  }

  /**
   * The digest of a data dir whose sums are of SHA-256 (written before
   * DIGEST_HASH 2), made anew from every record, and persisted in place
   * of the old sums in one batch: at the first open after an older build wrote.
   * A record that cannot be read counts for nothing (reads of it report
   * the damage). Sets digestRebuiltKeys to the records it read.
   */
  private async rebuildDigest(): Promise<ConvergenceDigest> {
    const digest = new ConvergenceDigest()
    let records = 0
    for await (const [key, record] of this.data.iterator()) {
      records++
      try {
        digest.change(key, undefined, record)
      } catch {
        // Damaged: left out.
      }
    }
    const batch = this.db.batch()
    batch.put(this.digestKey, digest.encode())
    batch.del(this.oldDigestKey)
    await this.writeBatch(batch, this.options.sync !== 'none')
    this.digestRebuiltKeys = records
    return digest
  }

  /** Records read to make the digest anew at open (a data dir whose sums were of an older hash); null when it was not. */
  digestRebuiltKeys: number | null = null

  /**
   * A replica taking a full sync from an upstream whose records follow
   * `conflict` (or none): its data is about to be replaced, so it takes the
   * upstream's policy along.
   */
  async adoptPolicy(conflict: ConflictPolicy | null): Promise<void> {
    if (this.options.mode === 'multi') return
    if (this.policy.conflict === conflict) return
    await this.setPolicy({ mode: 'single', conflict })
    if (conflict === null) this.keys = null
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

  get commitStats(): CommitStats {
    return this.committer.stats
  }

  /** Writes of keys LwwHeads knew (no read of their record) and did not, since start; keys it holds. */
  get headStats(): { hits: number; misses: number; keys: number } {
    const heads = this.heads
    return heads === null
      ? { hits: 0, misses: 0, keys: 0 }
      : { hits: heads.hits, misses: heads.misses, keys: heads.size }
  }

  /** Synchronous gets slower than the gate's threshold, and windows whose budget they spent (see SyncReadGate). */
  get syncReadStats(): { slowReads: number; fallbacks: number } {
    return { slowReads: this.syncReads.slowReads, fallbacks: this.syncReads.exhausted }
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

  /**
   * Writes ops atomically as one log entry; resolves with its seq once
   * durable per the sync mode. With conditions, only if they all hold when
   * it commits (else CONFLICT).
   */
  write(ops: EntryOp[], conditions?: WriteCondition[]): Promise<number> {
    if (this.status !== 'open') return Promise.reject(new TandemError('CLOSED', 'store is closed'))
    const write: LocalWrite = { kind: 'local', ops }
    if (conditions !== undefined && conditions.length > 0) write.conditions = conditions
    return this.committer.submit(write) as Promise<number>
  }

  /**
   * Writes each op as a write of its own (its own log entry and seq, as
   * write([op]) would), submitted together: one item in the group
   * committer, one promise, for a run of puts that arrive together and
   * need no answer but that they are durable (RESP's pipelined SETs).
   * Resolves with the last one's seq once all are durable per the sync
   * mode. With a conflict policy each op is submitted alone (a damaged
   * record refuses the write that reads it, and only that one): when some
   * are refused and others written, it rejects with RunRefused, which says
   * each op's outcome.
   */
  writeEach(ops: EntryOp[]): Promise<number> {
    if (this.status !== 'open') return Promise.reject(new TandemError('CLOSED', 'store is closed'))
    if (this.resolver) return this.writeEachWithIdentity(ops).then(runOutcome)
    return this.committer.submit({ kind: 'local', ops, each: true }) as Promise<number>
  }

  /**
   * writeEach under a conflict policy (multi-master), resolving with each
   * op's outcome in order: its identity, or the error that refused it alone
   * (a damaged record it would read: CORRUPT). One item in the group
   * committer and one promise for the run, where a write each cost one of
   * both; each op is still a write of its own, with its own seq, counter
   * and HLC stamp.
   */
  writeEachWithIdentity(ops: EntryOp[]): Promise<(LocalResult | Error)[]> {
    if (this.status !== 'open') return Promise.reject(new TandemError('CLOSED', 'store is closed'))
    if (!this.resolver) return Promise.reject(new Error('writeEachWithIdentity needs a conflict policy'))
    return this.committer.submit({ kind: 'local', ops, each: true, identity: true }) as Promise<(LocalResult | Error)[]>
  }

  /**
   * Deletes those of `keys` that have expired when the write commits, as
   * one log entry; resolves with its seq, or 0 when none had (a key
   * written again meanwhile is left alone).
   */
  expire(keys: string[]): Promise<number> {
    if (this.status !== 'open') return Promise.reject(new TandemError('CLOSED', 'store is closed'))
    const ops = keys.map((key): EntryOp => [OP_DEL, key])
    return this.committer.submit({ kind: 'local', ops, expire: true }) as Promise<number>
  }

  /** This node's wall clock, in ms since 1970 (expiry times are on it). */
  now(): number {
    return this.clock.wall()
  }

  /** write(), resolving with the write's identity too (multi-master: w=N and clients need it). */
  writeWithIdentity(ops: EntryOp[]): Promise<LocalResult> {
    if (this.status !== 'open') return Promise.reject(new TandemError('CLOSED', 'store is closed'))
    return this.committer.submit({ kind: 'local', ops, identity: true }) as Promise<LocalResult>
  }

  /**
   * Joins a chunk of a peer's snapshot (user keys and records) into the data
   * through this node's resolver; resolves with how many keys changed. Marks
   * the data dir as merging until finishMerge().
   */
  async merge(records: [Buffer, Buffer][]): Promise<number> {
    if (this.status !== 'open') throw new TandemError('CLOSED', 'store is closed')
    if (!(await this.meta.get('merging'))) await this.putMeta('merging', true, this.options.sync !== 'none')
    return (await this.committer.submit({ kind: 'merge', records })) as number
  }

  /**
   * Ends a merged snapshot: this node now holds every write `clock.vv` names.
   * Its log gets a barrier: nobody resumes from before it (see WriteLog).
   */
  finishMerge(clock: StoreClock): Promise<number> {
    if (this.status !== 'open') return Promise.reject(new TandemError('CLOSED', 'store is closed'))
    return this.committer.submit({ kind: 'barrier', clock }) as Promise<number>
  }

  /** Drops the tombstones among `keys` whose requirement `stable` covers; resolves with how many. */
  collect(keys: Buffer[], stable: VersionVectorObject): Promise<number> {
    if (this.status !== 'open') return Promise.reject(new TandemError('CLOSED', 'store is closed'))
    return this.committer.submit({ kind: 'collect', keys, stable }) as Promise<number>
  }

  /**
   * Applies entries received from an upstream or a peer, each op through
   * `resolver`, placed per `placement` (see Placement). Resolves with this
   * node's last seq once all are durable. They may share a group with other
   * writes, but are never split across two; a frame that does not fit (a
   * seq that does not follow, a counter that skips one) is refused whole
   * and nothing of it is written.
   */
  applyRemote(
    entries: ApplyEntry[],
    resolver: ConflictResolver,
    placement: Placement,
    receivedAt?: number,
  ): Promise<number> {
    if (this.status !== 'open') return Promise.reject(new TandemError('CLOSED', 'store is closed'))
    const write: RemoteWrite = {
      kind: 'remote',
      entries,
      encoded: null,
      unreadable: null,
      count: entries.length,
      firstHlc: entries.length > 0 ? entries[0].hlc : 0,
      resolver,
      placement,
      submittedAt: this.clock.now(),
      receivedAt,
    }
    if (keyTraceOn) write.traced = tracedKeysOf(entries)
    return this.committer.submit(write) as Promise<number>
  }

  /**
   * applyRemote for entries as they came off the wire: each is read
   * (readForApply) only when its group is built, and what was read is let
   * go once the group's batch holds it. A peer's frames wait in the queue
   * as their bytes alone, and the objects a read entry is made of (the
   * entry, its ops, views of its key and value, its data key and name)
   * never outlive the build: young-generation collections copy what is
   * alive when they run, and the entries of every queued frame and of the
   * group being made durable were most of it. An entry that cannot be read
   * refuses the whole write (nothing of it is written), as a frame that
   * does not fit is.
   */
  applyEncoded(
    encoded: readonly Buffer[],
    resolver: ConflictResolver,
    placement: Placement,
    receivedAt?: number,
  ): Promise<number> {
    if (this.status !== 'open') return Promise.reject(new TandemError('CLOSED', 'store is closed'))
    const write: RemoteWrite = {
      kind: 'remote',
      entries: null,
      encoded,
      unreadable: null,
      count: encoded.length,
      firstHlc: 0,
      resolver,
      placement,
      submittedAt: this.clock.now(),
      receivedAt,
    }
    return this.committer.submit(write) as Promise<number>
  }

  /** A remote write's entries, read from their bytes when it has none read (applyEncoded); the Error that refuses it when one cannot be. */
  private entriesOf(write: RemoteWrite): ApplyEntry[] | Error {
    if (write.unreadable !== null) return write.unreadable
    if (write.entries !== null) return write.entries
    const encoded = write.encoded ?? []
    const entries: ApplyEntry[] = new Array(encoded.length)
    try {
      for (let i = 0; i < encoded.length; i++) entries[i] = readForApply(encoded[i])
    } catch (err) {
      write.unreadable = new TandemError('INVALID', `unreadable replicated entry: ${(err as Error).message}`)
      return write.unreadable
    }
    if (entries.length > 0) write.firstHlc = entries[0].hlc
    write.entries = entries
    if (keyTraceOn) write.traced = tracedKeysOf(entries)
    return entries
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
      at: this.clock.wall(),
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

  /**
   * Every write to LevelDB goes through here: a full disk fails the batch
   * that meets it with UNCERTAIN and every later one with NOSPACE, until
   * recovery.
   */
  private async writeBatch(batch: ReturnType<Db['batch']>, sync: boolean): Promise<void> {
    if (this.noSpace) {
      void batch.close()
      throw noSpaceError(this.noSpace)
    }
    if (this.syncFailure) {
      void batch.close()
      throw syncFailedError(this.syncFailure)
    }
    try {
      await batch.write({ sync })
    } catch (err) {
      if (!isNoSpace(err)) throw err
      if (!this.noSpace) {
        this.noSpace = { since: this.clock.wall(), message: (err as Error).message }
        this.options.onNoSpace?.(this.noSpace)
      }
      // This batch reached LevelDB: if the disk failed only its flush, the
      // whole record may be in LevelDB's log and reappear when it reopens
      // (see reloadIfWritten). Its outcome is unknown; the writes after it
      // are refused before reaching LevelDB (NOSPACE, certainly not applied).
      throw new TandemError(
        'UNCERTAIN',
        `the disk holding the data dir filled during this write (${this.noSpace.message}); it may or may not have been applied: if the disk took it whole before failing, it is there (and replicated) once space is freed. Writes fail with NOSPACE until then; nothing acknowledged is lost`,
      )
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
      if (fs.bavail * fs.bsize < (this.options.noSpaceHeadroomBytes ?? DEFAULT_TUNING.noSpaceHeadroomBytes)) return
      await this.committer.idle()
      await this.snapshotWrite.catch(() => {})
      if (this.db.status === 'open') await this.db.close()
      this.bindDb()
      await this.openDb()
      // LevelDB's replay of its log may hold a write this store took for failed.
      this.readCache.clear()
      await this.reloadIfWritten()
      this.noSpace = null
      this.options.onNoSpace?.(null)
    } catch {
      // Still no room, or LevelDB would not open: the next tick tries again.
    } finally {
      this.recovering = false
    }
  }

  /**
   * A group whose write failed for space is rolled back in memory, but
   * LevelDB may have taken its whole record before failing (the disk
   * filled at the flush, not at the append): reopening then replays it,
   * and the data, the log and meta move past what this store holds in
   * memory. Left so, the next group would reuse those seqs, and a
   * downstream would never get the entries its data already shows. So the
   * counters are read again from disk, and the feeds told of the new head.
   * (A record cut short is dropped by the replay: then nothing moved.)
   */
  private async reloadIfWritten(): Promise<void> {
    const onDisk = ((await this.meta.get('lastSeq')) as number | undefined) ?? 0
    if (onDisk === this.lastSeq) return
    await this.loadCounters()
    if (this.keys !== null) {
      const digest = ConvergenceDigest.decode(await this.db.get(this.digestKey))
      const counts = ((await this.meta.get('keys')) as KeyCounts | undefined) ?? EMPTY_COUNTS()
      this.keys = new KeyTracker(this.tombs, digest, counts, this.maxSiblings)
    }
    this.notifyCommit(this.lastSeq)
  }

  /**
   * Whether groups are pipelined: a group is read and built while the one
   * before it is written, and written right after it (see GroupCommitter).
   * Only with --sync always, where each group waits for its fsync. On a
   * single-master store, local writes resolve against nothing but whether
   * their keys exist (and their conditions' records); on a multi-master
   * one, local writes and peers' entries resolve against their keys'
   * records. Either way what the group before changes is known exactly
   * from its `current` (every key it read or wrote, with the record it
   * leaves), overlaid on what the next one reads (readOver); its counters
   * and HLC are already taken in memory, and its digest and count changes
   * are its own (KeyGroup), added once it is written. Reads by clients
   * never see that overlay: they read LevelDB, which shows a batch only
   * once its synced write is done, and each batch goes to LevelDB only once
   * the one before it is durable (so the read cache's hand-off rule holds
   * as for one group at a time).
   */
  private get pipelined(): boolean {
    if (this.options.sync !== 'always' || this.noSpace !== null) return false
    if (this.policy.mode === 'multi') {
      return (this.options.multiPipelinedCommit ?? DEFAULT_TUNING.multiPipelinedCommit) === 1 && this.resolver !== null
    }
    return (
      (this.options.pipelinedCommit ?? DEFAULT_TUNING.pipelinedCommit) === 1 &&
      this.policy.mode === 'single' &&
      this.keys === null &&
      this.resolver === null
    )
  }

  /**
   * Whether a write may be built while the group before it is written: a
   * client's write (an expiry write reads records that expire by the
   * clock, and waits), and on a multi-master node a peer's entries
   * appended to this node's log. Merges, collections and barriers wait.
   */
  private joinsPipeline(write: StoreWrite): boolean {
    if (write.kind === 'local') return !write.expire && this.pipelined
    return write.kind === 'remote' && write.placement === 'append' && this.policy.mode === 'multi' && this.pipelined
  }

  private async commitGroup(
    group: StoreWrite[],
    built: () => void,
    join: GroupJoin<StoreWrite>,
  ): Promise<(WriteOutcome | Error)[] | typeof RETRY> {
    let prev = this.inflight
    if (prev !== null && !group.every((write) => this.joinsPipeline(write))) {
      await prev.outcome
      prev = null
    }
    if (prev !== null) prev.successor = true
    try {
      return await this.commitOn(prev, group, built, join)
    } finally {
      // However this group ended before its hand-over (refused, nothing to
      // write, a throw), the one before finishes: now if it is written, or
      // once it is (a throw before this group awaited it).
      if (prev !== null) {
        if (prev.rest !== null) prev.rest()
        else void prev.outcome.then(() => prev?.rest?.())
      }
    }
  }

  /** commitGroup's group, built on `prev` (being written) or on what the store holds. */
  private async commitOn(
    prev: InFlight | null,
    group: StoreWrite[],
    built: () => void,
    join: GroupJoin<StoreWrite>,
  ): Promise<(WriteOutcome | Error)[] | typeof RETRY> {
    // A chained batch: cheaper than the array form of db.batch() for the
    // same ops.
    const batch = this.db.batch()
    group = group.slice()
    const results: (WriteOutcome | Error)[] = new Array(group.length)
    const first = this.nextSeq
    const started = this.clock.now()
    const bulk = new BulkBatch(this.db, batch)
    const blocks = this.log.blocks(bulk, first)
    const commit: GroupState = {
      batch,
      bulk,
      blocks,
      origin: this.packedOrigin(),
      epoch: this.epoch,
      seq: this.nextSeq - 1,
      raws: [],
      ids: { origins: [], counters: [] },
      current: new Map(),
      keyDelta: 0,
      damaged: null,
      counters: new Map(),
      largest: this.largestValue ?? 0,
      writes: 0,
      expiry: [],
      presenceNames: [],
      presenceTickets: [],
      presenceStamp: 0,
      readRecords: false,
      expiryBefore: prev !== null && prev.commit.expiry.length > 0,
      readMs: 0,
      buildMs: 0,
      keys: null,
    }
    const keys = this.keys?.begin() ?? null
    commit.keys = keys
    let barrier: StoreClock | null = null
    try {
      barrier = await this.addWrites(commit, group, results, 0, prev)
      // Every write that comes while the group before is written joins this
      // one; their log entries are packed as they come, so that once that
      // write is done only the last join's are left to pack.
      if (prev !== null) blocks.add(commit.raws)
      while (prev !== null) {
        const arrived = await Promise.race([prev.outcome.then(() => false), join.arrival().then(() => true)])
        if (!arrived) break
        const more = join.take()
        if (more === null) break
        if (more.length === 0) continue
        const at = group.length
        for (const write of more) group.push(write)
        results.length = group.length
        await this.addWrites(commit, more, results, at, prev)
        blocks.add(commit.raws)
      }
    } catch (err) {
      this.restoreCounters(commit)
      this.forgetHeads()
      void batch.close() // nothing of this group is written; free the native batch
      // The group before, if it failed, left its undoing to this one (after this one's).
      if (prev !== null && !(await prev.outcome)) this.undo(prev)
      throw err
    }
    if (prev !== null && !(await prev.outcome)) {
      // Built on a group that was not written: undo this one, then it, and build this one again.
      this.restoreCounters(commit)
      this.forgetHeads()
      void batch.close()
      this.undo(prev)
      return RETRY
    }
    const finishing = this.clock.now()
    const merged = group.some((w) => w.kind === 'merge')
    if (commit.raws.length === 0 && !merged) {
      // Every entry was one this node already held: nothing to write.
      void batch.close()
      return results
    }
    const seq = commit.seq
    const raised = this.largestValue !== undefined && commit.largest > this.largestValue
    const firstTtl = !this.ttlUsed && commit.expiry.some(([, at]) => at !== undefined)
    if (firstTtl) batch.put(prefixed(this.metaPrefix, 'ttl'), Buffer.from('true'))
    if (raised) batch.put(prefixed(this.metaPrefix, 'largestValue'), Buffer.from(String(commit.largest)))
    const vvObject = this.vv.toObject()
    const vv = JSON.stringify(vvObject)
    const checkpoint = commit.raws.length > 0 && this.policy.mode === 'multi' && commit.writes > 0 && barrier === null
    if (commit.raws.length > 0) {
      blocks.finish(commit.raws)
      batch.put(this.lastSeqKey, Buffer.from(String(seq)))
      batch.put(this.clockKey, Buffer.from(`{"hlc":${this.hlc.peek()},"vv":${vv}}`))
      if (checkpoint) this.log.checkpoint(batch, seq, vv)
    }
    if (keys) {
      const pending = keys.pending()
      batch.put(this.digestKey, pending.digest)
      // Unchanged counts are on disk as they are (the row is one of a group's fixed costs).
      if (pending.counts !== null) batch.put(this.countsKey, Buffer.from(JSON.stringify(pending.counts)))
    }
    if (commit.keyDelta !== 0) batch.put(this.keyCountKey, Buffer.from(String(this.keyCount + commit.keyDelta)))
    if (barrier) batch.del(prefixed(this.metaPrefix, 'merging'))
    this.writingSeq = seq
    const handedOff = this.clock.now()
    this.stages.observe('read', commit.readMs / 1000)
    this.stages.observe('build', (commit.buildMs + handedOff - finishing) / 1000)
    let written!: (ok: boolean) => void
    const self: InFlight = {
      commit,
      first,
      successor: false,
      outcome: new Promise<boolean>((resolve) => (written = resolve)),
      rest: null,
    }
    if (commit.raws.length > 0) this.nextSeq = seq + 1
    const pipelined = this.pipelined
    if (pipelined) {
      this.inflight = self
      built()
    }
    const writing = this.writeBatch(batch, this.options.sync === 'always')
    // Handed over: the group before it, written, does the rest of its bookkeeping now.
    prev?.rest?.()
    // Every key the group writes is in commit.current: none may be read
    // from the cache, nor filled, while LevelDB may show either value. They
    // are dropped in this turn, before any read can run, but after the
    // hand-over: with what the group leaves (its values, kept once it is
    // applied), that is 0.2-0.3 ms of a group of 300 puts (at the median,
    // on a loaded machine), in which a group built while the one before it
    // was written would hold up the disk from the end of that write. The
    // values are taken now all the same, so that the records need not
    // outlive the write: after it they are read only to learn presence (a
    // store with no key tracker) and by a group built on this one
    // (pipelined); otherwise they are let go here (young-generation
    // collections copy whatever is alive).
    const cacheTicket = this.readCache.beginWrite(commit.current.keys(), this.dataPrefix.length, this.readCacheWrites)
    const left = cacheTicket === NO_TICKET ? null : this.writtenValues(commit)
    if (keys !== null && !pipelined) commit.current = new Map()
    let applied = false
    try {
      await writing
      applied = true
    } catch (err) {
      this.writingSeq = this.lastSeq
      this.forgetHeads()
      // Whether LevelDB took any of it is not certain here: the presence cache no longer vouches for every key.
      this.presence.clear()
      if (this.inflight === self) this.inflight = null
      // A group built on this one undoes itself first, then this one.
      if (!self.successor) this.undo(self)
      written(false)
      throw err
    } finally {
      this.readCache.endWrite()
      if (this.readCacheWrites) this.readCache.keepWritten(cacheTicket, this.dataPrefix.length, applied ? left : null)
    }
    if (this.inflight === self) this.inflight = null
    /** Set when a group built on this one hands its batch over first, then runs the rest (see InFlight.rest). */
    let rest: Promise<void> | null = null
    try {
      // What a group built on this one reads as it finishes its batch: the
      // key count it writes is this one's plus its own change, its largest
      // value and digest are on top of this one's.
      this.observeWritten(group, started, handedOff)
      if (keyTraceOn) this.traceWritten(group, started, handedOff, seq - commit.raws.length + 1, seq)
      if (raised) this.largestValue = commit.largest
      if (firstTtl) this.ttlUsed = true
      for (const [key, at] of commit.expiry) {
        if (at === undefined) this.expiry.delete(key)
        else this.expiry.set(key, at)
      }
      keys?.commit()
      this.keyCount += commit.keyDelta
      this.committedVv = vvObject
      if (self.successor && barrier === null && this.handOverFirst) {
        rest = new Promise<void>((resolve, reject) => {
          self.rest = () => {
            self.rest = null
            try {
              this.finishWritten(commit, keys, first, checkpoint ? vvObject : null)
              resolve()
            } catch (err) {
              reject(err)
            }
          }
        })
      } else {
        if (keys === null) this.learnPresence(commit)
        if (barrier) await this.log.barrier(seq, vv)
        this.finishWritten(commit, keys, first, checkpoint ? vvObject : null, false)
      }
    } finally {
      // Written: a group built on it goes to LevelDB next.
      written(true)
    }
    if (rest !== null) await rest
    return results
  }

  /**
   * A written group's bookkeeping once a group built on it is handed over
   * (or at once, when there is none): what it leaves is learnt by the
   * presence cache (unless `presence` is false: done already), its entries
   * join the log's tail, and commit listeners hear of its seq.
   */
  private finishWritten(
    commit: GroupState,
    keys: KeyGroup | null,
    first: number,
    checkpoint: VersionVectorObject | null,
    presence = true,
  ): void {
    if (presence && keys === null) this.learnPresence(commit)
    if (commit.raws.length > 0) {
      const seq = commit.seq
      this.lastSeq = seq
      this.lastCommitAt = this.clock.wall()
      this.log.committed(first, commit.raws, this.lastCommitAt, commit.ids)
      if (checkpoint) this.log.resumedAt(seq, checkpoint)
      this.dirtySinceSync = true
      this.notifyCommit(seq)
    }
    if (keys && keys.overCap.length > 0) this.onOverCap(keys.overCap)
  }

  /**
   * The values a group leaves that the read cache may keep once it is
   * written (ReadCache.keepWritten): each key's value as get() would read
   * it back, from a single-master value record with no TTL (a local put's);
   * a key deleted, damaged, with a TTL or another kind of record is left to
   * be read. Their bytes are copied into the cache's own memory (the
   * records may be slices of a pool shared with anything else). Null when
   * there is nothing to keep (or no room in the cache for it).
   */
  private writtenValues(commit: GroupState): WrittenValues | null {
    const cache = this.readCache
    if (!this.readCacheWrites) return null
    const room = cache.roomForWrites
    const damaged = commit.damaged
    const written = new WrittenValues()
    // In the order beginWrite was given the keys: a key's place finds the entry it left.
    let place = -1
    for (const [name, record] of commit.current) {
      place++
      if (record === undefined || record === PRESENT || isStub(record) || damaged?.has(name)) continue
      // A key not kept is kept only where there is room; one kept takes its entry's place.
      if (!room && !cache.heldAt(place)) continue
      const at = writtenValueAt(record)
      if (at >= 0) cache.addWritten(written, place, name, record, at, record.length, writtenIsBinary(record, at))
    }
    return written.names.length === 0 ? null : written
  }

  /**
   * Reads the keys of `writes` and adds them to the group's batch, their
   * results at `at` on. The group's own view of a key (`current`) wins
   * over what is read, and what the group before it (`prev`, being
   * written) left wins over what LevelDB shows meanwhile. Returns the
   * clock of a barrier among them, if any.
   */
  private async addWrites(
    commit: GroupState,
    writes: StoreWrite[],
    results: (WriteOutcome | Error)[],
    at: number,
    prev: InFlight | null,
  ): Promise<StoreClock | null> {
    const startedAt = this.clock.now()
    if (prev === null && commit.current.size === 0) await this.readCurrent(writes, commit)
    else await this.readOver(writes, commit, prev)
    const read = this.clock.now()
    commit.readMs += read - startedAt
    let barrier: StoreClock | null = null
    // The bytes their entries take, about (a block's first buffer is made that large: BlockPacker.expect).
    let bytes = 0
    for (let i = 0; i < writes.length; i++) {
      const write = writes[i]
      if (write.kind === 'remote') {
        // A peer's entries are placed in the block too (addPlaced): each at
        // most its own size with a placement up to 10 bytes wider (room()
        // asks for that much), behind its 4-byte length. Less, and the block
        // is grown to twice its size (a new buffer and a copy) near the end.
        if (write.placement === 'append' && write.encoded !== null) {
          for (let j = 0; j < write.encoded.length; j++) bytes += write.encoded[j].length + PLACED_OVERHEAD
        }
        continue
      }
      if (write.kind !== 'local') continue
      for (const op of write.ops) {
        if (op[0] !== OP_PUT) continue
        const size = writeValueBytes(op[2])
        if (size > commit.largest) commit.largest = size
        bytes += ENTRY_OVERHEAD + commit.origin.byteLength + op[1].length + size
      }
    }
    commit.blocks.expect(bytes)
    // One wall-clock read stamps the pass's client writes and observes its peers' entries (HybridClock.hold).
    this.hlc.hold()
    try {
      barrier = await this.buildWrites(commit, writes, results, at)
    } finally {
      this.hlc.release()
    }
    commit.buildMs += this.clock.now() - read
    return barrier
  }

  /** addWrites' build of `writes` into the group, their results at `at` on; the clock of a barrier among them, if any. */
  private async buildWrites(
    commit: GroupState,
    writes: StoreWrite[],
    results: (WriteOutcome | Error)[],
    at: number,
  ): Promise<StoreClock | null> {
    let barrier: StoreClock | null = null
    for (let i = 0; i < writes.length; i++) {
      const write = writes[i]
      if (commit.damaged) {
        const damaged = this.readsDamaged(commit.damaged, write)
        if (damaged) {
          results[at + i] = damaged
          continue
        }
      }
      switch (write.kind) {
        case 'local': {
          // Awaits only when this millisecond's HLC counter is used up.
          let hlc = this.hlc.tryNow()
          if (hlc === null) hlc = await this.hlc.now()
          if (write.each && this.resolver) {
            results[at + i] = await this.addEachResolved(commit, write, hlc)
            break
          }
          if (write.each) {
            let seq = this.addPut(commit, write, 0, hlc)
            for (let j = 1; j < write.ops.length; j++) {
              hlc = this.hlc.tryNow()
              if (hlc === null) hlc = await this.hlc.now()
              seq = this.addPut(commit, write, j, hlc)
            }
            results[at + i] = seq
            break
          }
          results[at + i] = this.resolver
            ? this.addLocalResolved(commit, write, hlc)
            : this.addLocal(commit, write, hlc)
          break
        }
        case 'remote':
          results[at + i] = this.addRemote(commit, write)
          if (write.encoded !== null) {
            // In the batch now: read again from the bytes if the group is built again.
            write.entries = null
            write.dataKeys = undefined
            write.names = undefined
            write.headTickets = undefined
          }
          break
        case 'merge':
          results[at + i] = this.addMerge(commit, write)
          break
        case 'collect':
          results[at + i] = this.addCollect(commit, write)
          break
        case 'barrier':
          barrier = write.clock
          this.vv.join(write.clock.vv)
          this.hlc.restore(write.clock.hlc)
          results[at + i] = this.addHousekeeping(commit, [])
          break
      }
      if (write.kind === 'local') {
        // In the batch now (LevelDB's batch holds a copy of each key): its
        // keys' buffers would only wait with the group for the disk, to be
        // copied by young-generation collections meanwhile. A group built
        // again reads them again (readCurrent).
        write.dataKeys = undefined
        write.names = undefined
        write.headTickets = undefined
      }
    }
    return barrier
  }

  /**
   * readCurrent for writes joining a group: into a map of their own, then
   * taken into the group's `current` where the group holds nothing of the
   * key yet, from the group before's records where it wrote the key.
   *
   * A key LwwHeads knows goes straight into the group's `current` instead
   * (where the group holds nothing of it yet), when the writes read no
   * record besides their own keys' (no merge, collect or condition, whose
   * read record must win over a stub): the heads are set as each group is
   * built, so a key's stub is already what the group before left, and
   * taking it over by the loop below was a second map's set, iteration and
   * lookups for every key of every joining write.
   */
  private async readOver(writes: StoreWrite[], commit: GroupState, prev: InFlight | null): Promise<void> {
    const current = commit.current
    const damaged = commit.damaged
    const { presenceNames, presenceTickets, presenceStamp, readRecords } = commit
    commit.current = new Map()
    commit.damaged = null
    try {
      await this.readCurrent(writes, commit, this.heads !== null && headsGoStraight(writes) ? current : null)
    } finally {
      const read = commit.current
      const readDamaged = commit.damaged as Set<string> | null
      commit.current = current
      commit.damaged = damaged
      // What the presence lookups of the group's earlier reads found is kept
      // with this read's (learnPresence); across a swap of the cache's
      // generations their tickets no longer agree: every key is then
      // recorded by name.
      if (presenceNames.length > 0) {
        if (commit.presenceStamp !== presenceStamp) commit.readRecords = true
        commit.presenceNames = presenceNames.concat(commit.presenceNames)
        commit.presenceTickets = presenceTickets.concat(commit.presenceTickets)
        commit.presenceStamp = presenceStamp
      }
      commit.readRecords ||= readRecords
      const before = prev?.commit.current
      for (const [name, record] of read) {
        // The group's own view wins, but for PRESENT (an earlier read only
        // found the key exists, and no write of the group changed it): a
        // record read now wins over it, as within one read (readCurrent), or
        // a condition would be checked against PRESENT, not the record.
        if (current.has(name) && (current.get(name) !== PRESENT || record === PRESENT)) continue
        const left = before?.get(name)
        // PRESENT: the group before only read the key (a refused write), so
        // LevelDB's answer stands; so does it for a key read damaged there
        // (it may only have been read: a write reading it is then refused).
        if (before?.has(name) && left !== PRESENT && !prev?.commit.damaged?.has(name)) {
          current.set(name, left)
          continue
        }
        current.set(name, record)
        if (readDamaged?.has(name)) {
          commit.damaged ??= new Set()
          commit.damaged.add(name)
        }
      }
    }
  }

  /** Takes back what a built group that was not written changed in memory: its counters and its seqs. */
  private undo(group: InFlight): void {
    this.restoreCounters(group.commit)
    this.nextSeq = group.first
  }

  /**
   * Records in the presence cache whether each key the group wrote or read
   * exists now. Every key in the group's `current` was either looked up
   * there (presenceNames) or read from LevelDB (readRecords).
   */
  private learnPresence(commit: GroupState): void {
    const { current, presenceNames: names, presenceTickets: tickets, presenceStamp: stamp } = commit
    if (commit.readRecords) {
      for (const [name, record] of current) this.presence.set(name, record !== undefined)
      return
    }
    for (let i = 0; i < names.length; i++) {
      this.presence.keep(tickets[i], stamp, names[i], current.get(names[i]) !== undefined)
    }
  }

  /** A written group's line in the key trace, when it holds a traced key (key-trace.ts). */
  private traceWritten(
    group: StoreWrite[],
    started: number,
    handedOff: number,
    firstSeq: number,
    lastSeq: number,
  ): void {
    let keys = ''
    for (const write of group) {
      if (write.kind === 'local') {
        for (const op of write.ops) {
          const n = tracedKey(op[1])
          if (n >= 0) keys += ` L${n}`
        }
      } else if (write.kind === 'remote' && write.traced !== undefined) {
        const received = traceTime(write.receivedAt ?? write.submittedAt)
        const queued = traceTime(write.submittedAt)
        for (const n of write.traced) keys += ` R${n}:${received}:${queued}`
      }
    }
    if (keys === '') return
    keyTrace(
      `G ${traceTime(started)} ${traceTime(handedOff)} ${traceTime(this.clock.now())}${keys} Q${firstSeq}:${lastSeq}`,
    )
  }

  /** The write-stage figures of a group written (see write-stages.ts). */
  private observeWritten(group: StoreWrite[], started: number, built: number): void {
    const stages = this.stages
    if (stages === NO_STAGES) return
    const now = this.clock.now()
    stages.observe('write', (now - built) / 1000)
    let wall = 0
    for (const write of group) {
      if (write.kind !== 'remote') continue
      // A frame that joined the group while it was built (pipelined) queued for none of it.
      const joined = write.submittedAt > started
      stages.observe('remote_queue', joined ? 0 : (started - write.submittedAt) / 1000)
      stages.observe('remote_commit', (now - (joined ? write.submittedAt : started)) / 1000)
      stages.observe('remote_wait', Math.max(0, built - write.submittedAt) / 1000)
      if (write.placement !== 'append' || write.count === 0 || write.firstHlc === 0) continue
      if (wall === 0) wall = this.clock.wall()
      stages.observe('peer_lag', Math.max(0, wall - hlcWallMs(write.firstHlc)) / 1000)
    }
  }

  /**
   * CORRUPT for a write that would read a damaged record (a condition, a
   * resolver, a merge), or null. What it would decide from wrong bytes
   * could be wrong, so it is refused whole; writes that do not read are not
   * held up by it (a blind put replaces the record and heals the key).
   */
  private readsDamaged(damaged: Set<string>, write: StoreWrite): TandemError | null {
    const names: string[] = []
    const add = (key: Uint8Array | string) =>
      names.push(
        (typeof key === 'string' ? prefixed(this.dataPrefix, key) : prefixedBytes(this.dataPrefix, key)).toString(
          'latin1',
        ),
      )
    // An expiry write leaves damaged keys alone (stillExpired), and expires the others.
    if (write.kind === 'local' && write.expire) return null
    // A run's ops are refused one by one (addEachResolved).
    if (write.kind === 'local' && write.each && this.resolver) return null
    if (write.kind === 'local') {
      // A single-master put or delete reads nothing: only its conditions are read.
      if (this.resolver) for (const op of write.ops) add(op[1])
      for (const c of write.conditions ?? []) add(c.key)
    } else if (write.kind === 'remote' || write.kind === 'merge') {
      // Applied without the ops on damaged keys (see damagedSkips).
      return null
    } else if (write.kind === 'collect') {
      for (const key of write.keys) add(key)
    }
    for (const name of names) {
      if (damaged.has(name)) {
        return corruptKey(Buffer.from(name, 'latin1').toString('utf8', this.dataPrefix.length), 'nothing was written')
      }
    }
    return null
  }

  /** Counts a damaged record found on a read and tells the node. */
  private noteDamaged(key: string): void {
    this.damagedReads++
    if (this.damagedKeys.has(key)) return
    if (this.damagedKeys.size < MAX_DAMAGED_KEYS) this.damagedKeys.set(key, this.clock.wall())
    this.onCorrupt?.(key)
  }

  /** The record read under `key` (the data prefix first), or CORRUPT naming the key when its checksum fails. */
  private intact(key: Buffer, record: Buffer): Buffer {
    if (this.intactAt(key, this.dataPrefix.length, record)) return record
    const userKey = key.toString('utf8', this.dataPrefix.length)
    this.noteDamaged(userKey)
    throw corruptKey(userKey)
  }

  private intactAt(key: Uint8Array, keyStart: number, record: Uint8Array): boolean {
    return recordIntact(key, keyStart, record, this.sealedOnly)
  }

  /** A record written for `key` (full data key) no longer holds the damage a read found there. */
  private healed(key: Buffer): void {
    if (this.damagedKeys.size > 0) this.damagedKeys.delete(key.toString('utf8', this.dataPrefix.length))
  }

  /** A single-master local write: records carry the entry's seq; no reads but for conditions. */
  private addLocal(commit: GroupState, write: LocalWrite, hlc: number): number | LocalResult | Error {
    if (write.conditions) {
      const conflict = this.checkConditions(commit, write.conditions)
      if (conflict) return conflict
    }
    let ops = write.ops
    if (write.expire) {
      ops = this.stillExpired(commit, ops)
      if (ops.length === 0) return 0
    }
    const seq = ++commit.seq
    const originSeq = this.nextCounter(commit, this.origin)
    if (ops.length === 1 && ops === write.ops && isPlainPut(ops[0])) {
      this.addPlainPut(commit, write, 0, seq, originSeq, hlc)
    } else {
      const entry: LogEntry = { seq, epoch: commit.epoch, origin: this.origin, originSeq, hlc, ops }
      this.putEntry(commit, entry, ops === write.ops ? write : undefined)
      commit.raws.push(encodeEntry(entry))
      identify(commit, this.origin, originSeq)
    }
    commit.writes++
    return write.identity ? { seq, origin: this.origin, originSeq, hlc } : seq
  }

  /** Op `at` of a write of several (`each`), as addLocal adds a write of that op alone. */
  private addPut(commit: GroupState, write: LocalWrite, at: number, hlc: number): number {
    const seq = ++commit.seq
    const originSeq = this.nextCounter(commit, this.origin)
    const op = write.ops[at]
    if (isPlainPut(op)) this.addPlainPut(commit, write, at, seq, originSeq, hlc)
    else {
      const entry: LogEntry = { seq, epoch: commit.epoch, origin: this.origin, originSeq, hlc, ops: [op] }
      this.putEntry(commit, entry, write, at)
      commit.raws.push(encodeEntry(entry))
      identify(commit, this.origin, originSeq)
    }
    commit.writes++
    return seq
  }

  /**
   * Op `at` of `write`, a put with no options, as the entry `seq` of its
   * own: what putEntry and encodeEntry make of it (the same record, the
   * same entry bytes), with the entry written straight into the group's
   * log block (writePutEntry) and no entry object made.
   */
  private addPlainPut(
    commit: GroupState,
    write: LocalWrite,
    at: number,
    seq: number,
    originSeq: number,
    hlc: number,
  ): void {
    const op = write.ops[at]
    const value = op[2] as WriteValue
    const skip = this.dataPrefix.length
    const key = write.dataKeys?.[at] ?? prefixed(this.dataPrefix, op[1])
    const record = seqRecord(key, skip, value, seq)
    commit.bulk.put(key, record)
    this.heads?.incomplete()
    this.healed(key)
    if (this.expiry.size > 0 || commit.expiry.length > 0 || commit.expiryBefore) commit.expiry.push([op[1], undefined])
    const name = write.names?.[at] ?? key.toString('latin1')
    const current = commit.current
    commit.keyDelta += liveness(record) - liveness(current.get(name))
    current.set(name, record)
    this.placePutEntry(commit, op, seq, originSeq, hlc, key)
  }

  /**
   * The log entry `seq` of the plain put `op` alone, written straight into
   * the group's log block (writePutEntry): the bytes encodeEntry makes of
   * it. `key` is its data key.
   */
  private placePutEntry(
    commit: GroupState,
    op: EntryOp,
    seq: number,
    originSeq: number,
    hlc: number,
    key: Buffer,
  ): void {
    const value = op[2] as WriteValue
    const skip = this.dataPrefix.length
    const blocks = commit.blocks
    let end: number
    try {
      const start = blocks.room(commit.raws, putEntryBytes(commit.origin, key, skip, value))
      end = writePutEntry(blocks.buffer, start, seq, commit.epoch, commit.origin, originSeq, hlc, key, skip, value)
    } catch (err) {
      // A bug in the hand-written writer costs this entry its in-place
      // bytes, not the write: nothing was placed, and the generic path packs
      // the same entry (the block packer takes it like any other raw).
      noteWriterFault(err)
      commit.raws.push(encodeEntry({ seq, epoch: commit.epoch, origin: this.origin, originSeq, hlc, ops: [op] }))
      identify(commit, this.origin, originSeq)
      return
    }
    blocks.placed(commit.raws, end)
    identify(commit, this.origin, originSeq)
  }

  /** This node's origin as an entry's field (see writePutEntry), made again only when the origin changes. */
  private packedOrigin(): Uint8Array {
    if (this.originPacked === null || this.originPackedFor !== this.origin) {
      this.originPacked = packedOrigin(this.origin)
      this.originPackedFor = this.origin
    }
    return this.originPacked
  }

  /**
   * A multi-master local write: each op is prepared by the resolver (which
   * may add to its context), resolved against the key's current record like
   * a remote one, and logged as prepared.
   */
  private addLocalResolved(
    commit: GroupState,
    write: LocalWrite,
    hlc: number,
    from = 0,
    to = write.ops.length,
  ): number | LocalResult {
    const resolver = this.resolver as ConflictResolver
    if (to === from + 1 && resolver.resolvePut && !resolver.prepareLocal && isPlainPut(write.ops[from])) {
      return this.addResolvedPut(commit, write, from, hlc, resolver)
    }
    const seq = ++commit.seq
    const originSeq = this.nextCounter(commit, this.origin)
    const identity: EntryIdentity = { origin: this.origin, originSeq, hlc }
    const ops: EntryOp[] = []
    for (let i = from; i < to; i++) {
      const op = write.ops[i]
      if (op[0] === OP_COLLECT) throw new TandemError('INVALID', 'a client write cannot collect')
      const key = write.dataKeys?.[i] ?? prefixed(this.dataPrefix, op[1])
      const name = write.names?.[i] ?? key.toString('latin1')
      let applied = toApplyOp(op, key.subarray(this.dataPrefix.length))
      const current = commit.current.get(name)
      if (resolver.prepareLocal) applied = resolver.prepareLocal(applied, identity, current)
      ops.push(toEntryOp(op, applied))
      const record = resolver.resolve(applied, identity, current, seq)
      if (record !== KEEP) this.setRecord(commit, applied.key, key, name, current, record ?? undefined, hlc)
    }
    const entry: LogEntry = { seq, epoch: commit.epoch, ...identity, ops }
    commit.raws.push(encodeEntry(entry))
    identify(commit, identity.origin, originSeq)
    commit.writes++
    return write.identity ? { seq, ...identity } : seq
  }

  /**
   * addLocalResolved of op `at` alone, a put with no options, under a
   * resolver that takes the value as the write carries it (resolvePut):
   * the same record and the same entry bytes, the record built from the
   * value in place and the entry written straight into the group's log
   * block (no op in apply form, no entry object, no copy of the value).
   */
  private addResolvedPut(
    commit: GroupState,
    write: LocalWrite,
    at: number,
    hlc: number,
    resolver: ConflictResolver,
  ): number | LocalResult {
    const seq = ++commit.seq
    const originSeq = this.nextCounter(commit, this.origin)
    // The write's answer is its identity too (a LocalResult is an EntryIdentity with the seq).
    const result: LocalResult = { seq, origin: this.origin, originSeq, hlc }
    const op = write.ops[at]
    const skip = this.dataPrefix.length
    const key = write.dataKeys?.[at] ?? prefixed(this.dataPrefix, op[1])
    const name = write.names?.[at] ?? key.toString('latin1')
    const ticket = write.headTickets?.[at] ?? NO_HEAD_TICKET
    const current = commit.current.get(name)
    const record = (resolver.resolvePut as NonNullable<ConflictResolver['resolvePut']>)(
      result,
      op[2] as WriteValue,
      key,
      skip,
      current,
    )
    // A record resolvePut built: its digest span is known (PUT_RECORD_SPAN) and LwwHeads takes its version as given.
    if (record !== KEEP)
      this.setRecord(commit, key, key, name, current, record ?? undefined, hlc, skip, PUT_RECORD_SPAN, result, ticket)
    this.placePutEntry(commit, op, seq, originSeq, hlc, key)
    commit.writes++
    return write.identity ? result : seq
  }

  /**
   * A run of writes under a conflict policy (write.each): each op an entry
   * of its own, as addLocalResolved adds a write of that op alone, stamped
   * in turn; an op whose key's record is damaged is refused alone, as it
   * would be alone (readsDamaged), and takes no seq, counter or stamp.
   */
  private async addEachResolved(commit: GroupState, write: LocalWrite, hlc: number): Promise<(LocalResult | Error)[]> {
    const out: (LocalResult | Error)[] = new Array(write.ops.length)
    let stamp: number | null = hlc
    for (let j = 0; j < write.ops.length; j++) {
      if (commit.damaged !== null) {
        const name = write.names?.[j] ?? prefixed(this.dataPrefix, write.ops[j][1]).toString('latin1')
        if (commit.damaged.has(name)) {
          out[j] = corruptKey(write.ops[j][1], 'nothing was written')
          continue
        }
      }
      if (stamp === null) {
        stamp = this.hlc.tryNow()
        if (stamp === null) stamp = await this.hlc.now()
      }
      out[j] = this.addLocalResolved(commit, write, stamp, j, j + 1) as LocalResult
      stamp = null
    }
    return out
  }

  /**
   * Writes (or deletes) a key's record in the group, keeping the tracker
   * and the group's view of it current. The user key is `userKey`'s bytes
   * from `keyStart` (the data key itself, from the prefix's length, where
   * a view of them would be made only for this). `afterSpan` is the
   * digest's span of `after` when the caller built it and knows it (see
   * ConvergenceDigest.change). `put`, when given, is the version `after`
   * was built for by versionPutRecord (resolvePut), or by a resolver whose
   * recordSpan says PUT_RECORD_SPAN (a peer's lww value): LwwHeads takes
   * it from the fields instead of reading it from the record again, in the
   * entry `headTicket` names (the key's lookup's, see LwwHeads.lastTicket).
   */
  private setRecord(
    commit: GroupState,
    userKey: Uint8Array,
    key: Buffer,
    name: string,
    before: Buffer | undefined,
    after: Buffer | undefined,
    hlc: number,
    keyStart = 0,
    afterSpan = DECODE_SPAN,
    put: EntryIdentity | null = null,
    headTicket = NO_HEAD_TICKET,
  ): void {
    if (after !== undefined && !isSealed(after)) after = sealRecord(userKey, keyStart, after)
    if (after === undefined) commit.bulk.del(key)
    else commit.bulk.put(key, after)
    this.healed(key)
    commit.current.set(name, after)
    commit.keyDelta += liveness(after) - liveness(before)
    if (commit.keys === null) return
    commit.keys.change(commit.batch, userKey, before, after, hlc, keyStart, afterSpan)
    // Known from here on: the group's failure forgets it (forgetHeads).
    if (put === null || after === undefined) this.heads?.set(name, after, lastTermHigh(), lastTermLow(), headTicket)
    else this.heads?.setValue(name, headTicket, put.hlc, put.originSeq, put.origin, lastTermHigh(), lastTermLow())
  }

  /** A group whose records were kept in `heads` as it was built is not written: they may be wrong. */
  private forgetHeads(): void {
    this.heads?.clear()
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
    const entries = this.entriesOf(write)
    if (entries instanceof Error) return entries
    const { resolver } = write
    const keep = write.placement === 'keep'
    const problem = keep ? this.checkSeqs(entries, commit.seq) : this.checkCounters(entries)
    if (problem) return problem
    const { dataKeys, names, headTickets } = write
    let opAt = 0
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]
      const housekeeping = entry.origin === NO_ORIGIN
      if (!keep && (housekeeping || entry.originSeq <= this.vv.get(entry.origin))) {
        if (!housekeeping) this.duplicateEntries++
        opAt += entry.ops.length
        continue // already held
      }
      const seq = ++commit.seq
      if (!housekeeping) {
        const before = this.vv.get(entry.origin)
        if (!commit.counters.has(entry.origin)) commit.counters.set(entry.origin, before)
        if (entry.originSeq > before) this.vv.set(entry.origin, entry.originSeq)
        this.hlc.observe(entry.hlc)
        commit.writes++
      }
      const ops = entry.ops
      for (let o = 0; o < ops.length; o++) {
        const op = ops[o]
        if (commit.damaged !== null && this.skipsDamaged(commit.damaged, op.key, names?.[opAt], entry)) {
          opAt++
          continue
        }
        if (op.value !== null && op.value.length > commit.largest) commit.largest = op.value.length
        this.putResolved(commit, op, entry, resolver, seq, dataKeys?.[opAt], names?.[opAt], headTickets?.[opAt])
        opAt++
        if (op.expiresAt !== undefined || this.expiry.size > 0 || commit.expiry.length > 0 || commit.expiryBefore) {
          commit.expiry.push([
            Buffer.from(op.key.buffer, op.key.byteOffset, op.key.byteLength).toString('utf8'),
            op.expiresAt,
          ])
        }
      }
      if (keep) commit.raws.push(entry.raw)
      else this.addPlaced(commit, entry, seq)
      identify(commit, entry.origin, entry.originSeq)
    }
    return commit.seq
  }

  /**
   * A peer's entry as this node's entry `seq`, written straight into the
   * group's log block (placeEntryAt): no buffer of its own, which the
   * block packer would copy again.
   */
  private addPlaced(commit: GroupState, entry: ApplyEntry, seq: number): void {
    const blocks = commit.blocks
    const start = blocks.room(commit.raws, placedEntryBytes(entry.raw, entry.identityAt))
    const end = placeEntryAt(blocks.buffer, start, entry.raw, entry.identityAt, seq, commit.epoch)
    if (end < 0) commit.raws.push(placeEntry(entry.raw, entry.identityAt, seq, commit.epoch))
    else blocks.placed(commit.raws, end)
  }

  /** Whether a replicated write to `key` is left out because its record here is damaged (see damagedSkips). */
  private skipsDamaged(
    damaged: Set<string>,
    key: Uint8Array,
    dataName: string | undefined,
    entry: ApplyEntry | null,
  ): boolean {
    const name = dataName ?? prefixedBytes(this.dataPrefix, key).toString('latin1')
    if (!damaged.has(name)) return false
    this.damagedSkips++
    this.onDamagedSkip?.(
      Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('utf8'),
      entry?.origin ?? '',
      entry?.originSeq ?? 0,
    )
    return true
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
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]
      if (entry.origin === NO_ORIGIN) continue
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
    op: ApplyOp,
    entry: ApplyEntry,
    resolver: ConflictResolver,
    seq: number,
    dataKey?: Buffer,
    dataName?: string,
    headTicket = NO_HEAD_TICKET,
  ): void {
    const key = dataKey ?? prefixedBytes(this.dataPrefix, op.key)
    const name = dataName ?? key.toString('latin1')
    const current = commit.current.get(name)
    if (op.collect) {
      if (current !== undefined && isTombstone(readRecord(current))) {
        this.setRecord(commit, op.key, key, name, current, undefined, entry.hlc)
      }
      return
    }
    const record = resolver.resolve(op, entry, resolver.readsCurrent || this.keys ? current : undefined, seq)
    if (record === KEEP) return
    // A record whose digest span the resolver knows from building it (recordSpan) is not read back for it,
    // and one of PUT_RECORD_SPAN holds the entry's own version, which LwwHeads then takes as given.
    const span = record === null || resolver.recordSpan === undefined ? DECODE_SPAN : resolver.recordSpan(op)
    this.setRecord(
      commit,
      op.key,
      key,
      name,
      current,
      record ?? undefined,
      entry.hlc,
      0,
      span,
      span === PUT_RECORD_SPAN ? entry : null,
      headTicket,
    )
  }

  /** Joins a snapshot chunk's records into the data; returns how many keys changed. */
  private addMerge(commit: GroupState, write: MergeWrite): number {
    const resolver = this.resolver
    if (!resolver?.merge) throw new TandemError('INVALID', 'this node has no conflict policy to merge a snapshot with')
    let changed = 0
    for (const [userKey, incoming] of write.records) {
      const key = prefixedBytes(this.dataPrefix, userKey)
      const name = key.toString('latin1')
      if (commit.damaged !== null && this.skipsDamaged(commit.damaged, userKey, name, null)) continue
      const current = commit.current.get(name)
      const record = resolver.merge(current, incoming)
      if (record === KEEP) continue
      // A record's length bounds its value's: enough for the high-water mark's purpose.
      if (record !== undefined && record.length > commit.largest) commit.largest = record.length
      this.setRecord(commit, userKey, key, name, current, record, this.hlc.peek())
      changed++
    }
    return changed
  }

  /** Drops stable tombstones, logged as one housekeeping entry so that replicas drop them too. */
  private addCollect(commit: GroupState, write: CollectWrite): number {
    const ops: EntryOp[] = []
    for (const userKey of write.keys) {
      const key = prefixedBytes(this.dataPrefix, userKey)
      const name = key.toString('latin1')
      const current = commit.current.get(name)
      if (current === undefined) continue
      const record = readRecord(current)
      if (!isTombstone(record) || !vvCovers(write.stable, tombstoneRequirement(record))) continue
      this.setRecord(commit, userKey, key, name, current, undefined, 0)
      ops.push([OP_COLLECT, userKey.toString('utf8')])
    }
    if (ops.length > 0) this.addHousekeeping(commit, ops)
    return ops.length
  }

  /** A housekeeping entry (no origin): see log-entry.ts. */
  private addHousekeeping(commit: GroupState, ops: EntryOp[]): number {
    const seq = ++commit.seq
    const entry: LogEntry = { seq, epoch: commit.epoch, origin: NO_ORIGIN, originSeq: 0, hlc: 0, ops }
    commit.raws.push(encodeEntry(entry))
    identify(commit, NO_ORIGIN, 0)
    return seq
  }

  /**
   * The current records of every key the group writes (and every key a
   * condition names), read before the group's batch is built: the key
   * count needs to know whether each key existed, and conditions, expiry
   * and resolvers read the records themselves. A data dir with no conflict
   * policy holds no tombstones, so for a key only the count needs, whether
   * it exists is enough: one hasMany (a bitset back, no value copied) for
   * those, and one getMany for the keys whose record is read. Fills the
   * group's `current`, and its `damaged` with the keys whose record fails
   * its checksum (checked here, where each key's bytes are at hand).
   * `known`, when given, takes the stubs of keys LwwHeads knows (see
   * readOver) in place of the group's `current`.
   */
  private async readCurrent(
    group: StoreWrite[],
    commit: GroupState,
    known: Map<string, Buffer | undefined> | null = null,
  ): Promise<void> {
    const records: Buffer[] = []
    /** Names of `records` keys known from their write (else made here). */
    const recordNames: (string | undefined)[] = []
    const exists: Buffer[] = []
    /** Names of `exists` keys known from their write (else made here). */
    const existsNames: (string | undefined)[] = []
    const all = this.keys !== null
    const current = commit.current
    const headsInto = known ?? current
    const heads = this.heads
    for (const write of group) {
      if (write.kind === 'remote') {
        const reads = all || write.resolver.readsCurrent
        const append = write.placement === 'append'
        const dataKeys: Buffer[] = []
        const names: string[] = []
        const tickets: number[] | undefined = heads !== null ? [] : undefined
        let opAt = 0
        const entries = this.entriesOf(write)
        if (entries instanceof Error) continue // refused whole by addRemote: no key read
        // Indexed loops: an iterator per entry and per op was an object each
        // in this async function, which keeps them from being optimised away.
        for (let e = 0; e < entries.length; e++) {
          const entry = entries[e]
          // An entry this node already holds (a mesh delivers some twice) is
          // skipped by addRemote, the version vector only growing meanwhile:
          // none of its keys is read.
          if (append && (entry.origin === NO_ORIGIN || entry.originSeq <= this.vv.get(entry.origin))) {
            opAt += entry.ops.length
            continue
          }
          const ops = entry.ops
          for (let o = 0; o < ops.length; o++) {
            const op = ops[o]
            const key = prefixedBytes(this.dataPrefix, op.key)
            const name = key.toString('latin1')
            dataKeys[opAt] = key
            names[opAt] = name
            if (heads !== null) {
              const known = this.knownHead(heads, name, headsInto)
              ;(tickets as number[])[opAt++] = heads.lastTicket
              if (known) continue
            } else opAt++
            if (reads) {
              records.push(key)
              recordNames.push(name)
            } else {
              exists.push(key)
              existsNames.push(name)
            }
          }
        }
        write.dataKeys = dataKeys
        write.names = names
        write.headTickets = tickets
      } else if (write.kind === 'local') {
        if (write.expire && !all) {
          for (const op of write.ops) {
            records.push(prefixed(this.dataPrefix, op[1]))
            recordNames.push(undefined)
          }
        } else {
          // Each key's record (all), or only whether it exists (for the exact key count).
          const reads = all ? records : exists
          const readNames: (string | undefined)[] = all ? recordNames : existsNames
          const dataKeys: Buffer[] = new Array(write.ops.length)
          const names: string[] = new Array(write.ops.length)
          const tickets: number[] | undefined = heads !== null ? new Array(write.ops.length) : undefined
          for (let i = 0; i < write.ops.length; i++) {
            const key = prefixed(this.dataPrefix, write.ops[i][1])
            dataKeys[i] = key
            names[i] = key.toString('latin1')
            if (heads !== null && !write.expire) {
              const known = this.knownHead(heads, names[i], headsInto)
              ;(tickets as number[])[i] = heads.lastTicket
              if (known) continue
            } else if (tickets !== undefined) tickets[i] = NO_HEAD_TICKET
            reads.push(key)
            readNames.push(names[i])
          }
          write.dataKeys = dataKeys
          write.names = names
          write.headTickets = tickets
        }
        if (write.conditions) {
          for (const c of write.conditions) {
            records.push(prefixed(this.dataPrefix, c.key))
            recordNames.push(undefined)
          }
        }
      } else if (write.kind === 'merge') {
        for (const [key] of write.records) {
          records.push(prefixedBytes(this.dataPrefix, key))
          recordNames.push(undefined)
        }
      } else if (write.kind === 'collect') {
        for (const key of write.keys) {
          records.push(prefixedBytes(this.dataPrefix, key))
          recordNames.push(undefined)
        }
      }
    }
    const unknown: Buffer[] = []
    const unknownNames: string[] = []
    const tickets: number[] = new Array(exists.length)
    const names: string[] = new Array(exists.length)
    commit.presenceStamp = this.presence.stamp
    for (let i = 0; i < exists.length; i++) {
      const key = exists[i]
      const name = existsNames[i] ?? key.toString('latin1')
      const ticket = this.presence.lookup(name)
      names[i] = name
      tickets[i] = ticket
      if (!ticketKnown(ticket)) {
        unknown.push(key)
        unknownNames.push(name)
      } else current.set(name, ticketExists(ticket) ? PRESENT : undefined)
    }
    commit.presenceNames = names
    commit.presenceTickets = tickets
    commit.readRecords = records.length > 0
    // Read on the event loop while the gate lets reads be (see getNow): a
    // thread-pool read (hasMany, getMany) costs a group more CPU than the
    // lookups themselves, which LevelDB mostly answers from memory.
    let exist: (Buffer | boolean | undefined)[] | null = unknown.length === 0 ? [] : this.readNow(unknown)
    let found = records.length === 0 ? [] : this.readNow(records)
    if (exist === null || found === null) {
      ;[exist, found] = await Promise.all([
        exist ?? this.db.hasMany(unknown),
        found ?? (this.db.getMany(records) as Promise<(Buffer | undefined)[]>),
      ])
    }
    for (let i = 0; i < unknown.length; i++) {
      current.set(unknownNames[i], exist[i] !== undefined && exist[i] !== false ? PRESENT : undefined)
    }
    // Read records win over PRESENT for a key in both lists.
    const skip = this.dataPrefix.length
    for (let i = 0; i < records.length; i++) {
      const name = recordNames[i] ?? records[i].toString('latin1')
      const record = found[i]
      current.set(name, record)
      if (record === undefined || commit.damaged?.has(name) || this.intactAt(records[i], skip, record)) continue
      commit.damaged ??= new Set()
      commit.damaged.add(name)
      this.noteDamaged(records[i].toString('utf8', skip))
    }
  }

  /**
   * Whether `heads` knows the key (then its stub, or undefined for no
   * record, is the group's `current` for it, unless a read of the same
   * group already put the record there). A record read for a condition or
   * a merge of the group is set after these, and wins over the stub.
   */
  private knownHead(heads: LwwHeads, name: string, current: Map<string, Buffer | undefined>): boolean {
    const head = heads.lookup(name)
    if (head === UNKNOWN) return false
    // PRESENT (an earlier read found only that the key exists) gives way to the stub, as a read record would.
    // A key the group holds nothing of (nearly every one) costs a has() and a set(), no get().
    if (!current.has(name) || current.get(name) === PRESENT) current.set(name, head)
    return true
  }

  /**
   * The records of `keys` (full data keys) read synchronously, or null when
   * the gate sends reads to the thread pool. Timed as one read (two clock
   * reads a group, not two a key): the group's keys are charged together
   * when they take over the gate's slowMs.
   */
  private readNow(keys: Buffer[]): (Buffer | undefined)[] | null {
    if (this.db.status !== 'open') return null
    const startedAt = this.syncReads.begin()
    if (startedAt === null) return null
    const out: (Buffer | undefined)[] = new Array(keys.length)
    for (let i = 0; i < keys.length; i++) out[i] = this.db.getSync(keys[i])
    this.syncReads.done(startedAt)
    return out
  }

  /**
   * Adds one local entry's data mutations to the group's batch (its log
   * record goes in the group's block), keeping the group's view of the keys
   * conditions read up to date.
   */
  private putEntry(commit: GroupState, entry: LogEntry, made?: LocalWrite, from = 0): void {
    const dataKeys = made?.dataKeys
    const names = made?.names
    for (let i = 0; i < entry.ops.length; i++) {
      const op = entry.ops[i]
      const key = dataKeys?.[from + i] ?? prefixed(this.dataPrefix, op[1])
      let record: Buffer | undefined
      let expiresAt: number | undefined
      if (op[0] === OP_PUT) {
        expiresAt = opOptions(op)?.x
        record = seqRecord(key, this.dataPrefix.length, op[2], entry.seq, expiresAt)
        commit.bulk.put(key, record)
      } else commit.batch.del(key)
      // Records LwwHeads is not told of: a key it does not hold may have one.
      this.heads?.incomplete()
      this.healed(key)
      if (expiresAt !== undefined || this.expiry.size > 0 || commit.expiry.length > 0 || commit.expiryBefore) {
        commit.expiry.push([op[1], expiresAt])
      }
      const name = names?.[from + i] ?? key.toString('latin1')
      commit.keyDelta += liveness(record) - liveness(commit.current.get(name))
      commit.current.set(name, record)
    }
  }

  /** The deletes of an expiry write whose keys are still expired now (see expire()). */
  private stillExpired(commit: GroupState, ops: EntryOp[]): EntryOp[] {
    const now = this.now()
    return ops.filter((op) => {
      const name = prefixed(this.dataPrefix, op[1]).toString('latin1')
      if (commit.damaged?.has(name)) return false
      const record = commit.current.get(name)
      return record !== undefined && isExpired(record, now)
    })
  }

  /** Why a write's conditions do not hold now, or null when they all do (an expired key is absent). */
  private checkConditions(commit: GroupState, conditions: WriteCondition[]): TandemError | null {
    const now = this.now()
    for (const c of conditions) {
      const stored = commit.current.get(prefixed(this.dataPrefix, c.key).toString('latin1'))
      const record = stored === undefined || isExpired(stored, now) ? undefined : readRecord(stored)
      const live = record !== undefined && record.body.kind === 'value'
      const seq = live ? modSeqOf(record) : 0
      let why: string | null = null
      if (c.ifAbsent && live) why = `exists (modified at seq ${seq})`
      else if (c.ifPresent && !live) why = 'does not exist'
      else if (c.ifSeq !== undefined && c.ifSeq !== seq) {
        why = live
          ? `was modified at seq ${seq}, not ${c.ifSeq}`
          : `does not exist (the condition wants seq ${c.ifSeq})`
      }
      if (why !== null) {
        return new TandemError('CONFLICT', `key ${JSON.stringify(c.key)} ${why}; nothing was written`, {
          details: { key: c.key, seq },
        })
      }
    }
    return null
  }

  /** Forces everything written so far to disk (a synced write flushes LevelDB's WAL). */
  syncNow(): Promise<void> {
    // One sync at a time: the writes made meanwhile stay dirty for the next
    // one. Syncs started each period while a slow disk holds the one before
    // would pile up in the thread pool that LevelDB's reads and writes share.
    if (this.syncInFlight) return this.syncInFlight
    if (!this.dirtySinceSync || this.status !== 'open' || this.syncFailure) return Promise.resolve()
    this.dirtySinceSync = false
    const startedAt = this.clock.wall()
    const syncing = this.syncLogFiles()
      .catch((err) => {
        if (!isOpenFailure(err)) {
          // The fsync itself failed: what it covered may be lost (see syncFailure).
          if (!this.syncFailure) {
            this.syncFailure = { since: this.clock.wall(), message: (err as Error).message }
            this.options.onSyncFailure?.(this.syncFailure)
          }
          throw err
        }
        // Opening a log file failed (no fsync was made, nothing lost): a
        // synced LevelDB write fsyncs its current log file, as before.
        return this.putMeta('syncedAt', this.clock.wall(), true)
      })
      .then(() => {
        // Everything written before it began is on disk.
        this.syncedAt = startedAt
      })
      .finally(() => {
        this.syncInFlight = null
      })
    this.syncInFlight = syncing
    this.syncing = syncing.catch(() => {})
    return syncing
  }

  /**
   * fsyncs LevelDB's write-ahead log files from beside LevelDB, not through
   * it. A synced LevelDB write (what this did before) holds LevelDB's writer
   * queue for its fsync, so the group written behind it waited for the whole
   * fsync once a period: a stall of the write path under --sync periodic,
   * which Redis's appendfsync everysec avoids the same way, by fsyncing
   * its file from a background thread. It covers what a synced write
   * covered: LevelDB hands each batch to its current log file before it
   * answers, so every batch written before this began is in a log file
   * listed here or, if LevelDB retired that file meanwhile, in a table it
   * synced before retiring it. A file that cannot be opened fails this,
   * and syncNow then makes a synced LevelDB write, as before; a file whose
   * fsync fails marks the store failed (syncFailure), since a later fsync
   * may succeed over the lost pages.
   *
   * A log file LevelDB started since the last sync also needs its directory
   * entry on disk: POSIX makes a new file's name durable only with an fsync
   * of its directory, and LevelDB fsyncs its directory only when it syncs a
   * MANIFEST (PosixWritableFile::SyncDirIfManifest), which for a new log
   * comes once the memtable before it is written out as a table. Until then
   * a crash on a filesystem that needs the directory fsynced could lose the
   * new log with every batch in it. So a sync that lists a log it has not
   * seen fsyncs the directory too, once a log file (LevelDB starts one each
   * writeBufferBytes of writes).
   */
  private async syncLogFiles(): Promise<void> {
    const names = (await readdir(this.dbDir)).filter((name) => LEVELDB_LOG_FILE.test(name))
    if (names.length === 0) throw new Error(`no LevelDB log file in ${this.dbDir}`)
    const fsyncFile = this.options.fsyncFile ?? fdatasyncFile
    const newLog = names.some((name) => !this.dirSyncedLogs.has(name))
    await Promise.all([
      ...names.map((name) =>
        fsyncFile(join(this.dbDir, name)).catch((err) => {
          // Retired since it was listed: its batches are in a table LevelDB synced.
          if ((err as NodeJS.ErrnoException)?.code !== 'ENOENT') throw err
        }),
      ),
      newLog ? (this.options.fsyncDir ?? fsyncDirectory)(this.dbDir) : undefined,
    ])
    // Names listed now and no longer: forgotten (LevelDB never reuses a log's number).
    if (newLog) this.dirSyncedLogs = new Set(names)
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
    return this.readKey(key, this.valueOfRecord)
  }

  /**
   * A get that also says which writes its answer depends on (a
   * linearizable read waits until a majority holds them; see
   * read-index.ts): the seq of the write that last changed the key, as its
   * record carries it. A missing key, or a record with no seq, depends on
   * everything written so far (`writingSeq` when the read was made).
   */
  getWithSeq(key: string): Promise<SeqRead> {
    return this.readKey(key, this.seqReadOfRecord)
  }

  private readonly valueOfRecord = (record: Uint8Array | undefined, now: number): Value | undefined =>
    record === undefined || isExpired(record, now) ? undefined : decodeRecord(record)

  private readonly seqReadOfRecord = (record: Uint8Array | undefined, now: number): SeqRead => {
    const head = this.writingSeq
    const modSeq = record === undefined ? undefined : recordModSeq(record)
    // Every record LevelDB shows was written by a batch at or below writingSeq.
    return { value: this.valueOfRecord(record, now), seq: modSeq === undefined || modSeq > head ? head : modSeq }
  }

  /**
   * get()'s answer read synchronously, when the gate lets a read be
   * (throwing what get would reject with), else NOT_NOW: the caller then
   * calls get(), which reads on the thread pool. Saves an unpipelined
   * client's get its promises and their microtask hops. A value the read
   * cache holds is answered without LevelDB, whatever the gate says.
   */
  getNow(key: string): Value | undefined | typeof NOT_NOW {
    if (this.db.status !== 'open') return NOT_NOW
    // A key's cache name is the key itself (see ReadCache; only ASCII ones are kept).
    const hit = this.readCache.get(key)
    if (hit !== undefined) return hit === ABSENT ? undefined : hit
    const startedAt = this.syncReads.begin()
    if (startedAt === null) return NOT_NOW
    const full = prefixed(this.dataPrefix, key)
    const record = this.db.getSync(full)
    this.syncReads.done(startedAt)
    if (record === undefined) {
      this.readCache.fill(key, ABSENT)
      return undefined
    }
    const value = this.valueOfRecord(this.intact(full, record), this.now())
    if (value !== undefined && recordExpiresAt(record) === undefined) this.readCache.fill(key, value)
    return value
  }

  /** The read cache's figures: keys and bytes it holds, reads it answered and values it took, since start. */
  get readCacheStats(): { keys: number; bytes: number; hits: number; fills: number } {
    const cache = this.readCache
    return { keys: cache.size, bytes: cache.bytes, hits: cache.hits, fills: cache.fills }
  }

  private readKey<T>(key: string, answer: (record: Uint8Array | undefined, now: number) => T): Promise<T> {
    // getSync throws while LevelDB is (re)opening, where getMany waits for it.
    const startedAt = this.db.status === 'open' ? this.syncReads.begin() : null
    if (startedAt !== null) {
      try {
        const full = prefixed(this.dataPrefix, key)
        const ticket = this.readCache.readTicket()
        const record = this.db.getSync(full)
        this.syncReads.done(startedAt)
        const answered = answer(record === undefined ? undefined : this.intact(full, record), this.now())
        this.keepRead(ticket, key, record, answer, answered)
        return Promise.resolve(answered)
      } catch (err) {
        return Promise.reject(err)
      }
    }
    return new Promise((resolve, reject) => {
      this.pendingReads.push({
        name: key,
        key: prefixed(this.dataPrefix, key),
        answer,
        resolve: resolve as (answer: unknown) => void,
        reject,
      })
      if (this.pendingReads.length === 1) queueMicrotask(() => this.flushReads())
    })
  }

  private flushReads(): void {
    const reads = this.pendingReads
    this.pendingReads = []
    const most = this.options.readBatchKeys ?? DEFAULT_TUNING.readBatchKeys
    for (let i = 0; i < reads.length; i += most) {
      const slice = reads.slice(i, i + most)
      // Taken before LevelDB's threads read: the answers are kept only if no write began meanwhile.
      const ticket = this.readCache.readTicket()
      this.db.getMany(slice.map((r) => r.key)).then(
        (records) => {
          const now = this.now()
          for (let j = 0; j < slice.length; j++) {
            const record = records[j]
            try {
              const read = slice[j]
              const answered = read.answer(record === undefined ? undefined : this.intact(read.key, record), now)
              this.keepRead(ticket, read.name, record, read.answer, answered)
              read.resolve(answered)
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

  /**
   * Keeps a get's answer (a plain or a linearizable one) in the read cache,
   * as getNow does, whether it was read on the event loop or on LevelDB's
   * threads (the ticket says whether it may be kept: see fillAfter). Before
   * this, a read the sync-read gate sent to the thread pool never filled
   * the cache, so a node whose gate was shut stayed without one.
   */
  private keepRead(
    ticket: number,
    key: string,
    record: Uint8Array | undefined,
    answer: (record: Uint8Array | undefined, now: number) => unknown,
    answered: unknown,
  ): void {
    let value: Value | undefined
    if (answer === this.valueOfRecord) value = answered as Value | undefined
    else if (answer === this.seqReadOfRecord) value = (answered as SeqRead).value
    else return
    if (record === undefined) this.readCache.fillAfter(ticket, key, ABSENT)
    else if (value !== undefined && recordExpiresAt(record) === undefined) this.readCache.fillAfter(ticket, key, value)
  }

  /**
   * Values of `keys`, in order; with `bytes`, every value as bytes (a
   * string's UTF-8), see decodeRecordBytes. What it reads fills the read
   * cache as a get's read does (keepRead): an mget's keys, and a RESP GET
   * batch's when the sync-read gate sends them here.
   */
  async getMany(keys: string[], bytes = false): Promise<(Value | undefined)[]> {
    const full = keys.map((k) => prefixed(this.dataPrefix, k))
    const ticket = this.readCache.readTicket()
    const records = await this.db.getMany(full)
    const now = this.now()
    const decode = bytes ? decodeRecordBytes : decodeRecord
    return records.map((r, i) => {
      if (r === undefined) {
        this.readCache.fillAfter(ticket, keys[i], ABSENT)
        return undefined
      }
      if (isExpired(this.intact(full[i], r), now)) return undefined
      const value = decode(r)
      // Kept as get() answers it: a string value as a string, decoded again only when it is kept.
      if (value !== undefined && recordExpiresAt(r) === undefined && this.readCache.ticketCurrent(ticket)) {
        const kept = bytes ? decodeRecord(r) : value
        if (kept !== undefined) this.readCache.fillAfter(ticket, keys[i], kept)
      }
      return value
    })
  }

  /**
   * get()'s answers for `keys`, given as their UTF-8 bytes, read now on
   * the event loop into `out` (from its start): each a value as bytes (see
   * decodeRecordBytes; the string get() answers when it comes from the read
   * cache or goes into it), undefined when missing or expired, or the Error
   * its get would reject with (CORRUPT names a damaged record's key; the
   * other keys are answered all the same). Returns how many keys were
   * read: all of them, unless the sync-read gate sends reads to the thread
   * pool part way, and the rest are the caller's to read with getMany. A
   * key the read cache holds is answered whatever the gate says (as
   * getNow answers it): only reads of LevelDB turn the gate. The gate
   * times a chunk of LevelDB reads as one read, so a long batch read from
   * memory is not taken for one slow read, and the event loop waits for
   * at most one chunk of slow reads past the gate's budget.
   */
  getEachNow(keys: readonly Uint8Array[], out: (Value | undefined | Error)[]): number {
    if (this.db.status !== 'open') return 0
    const cache = this.readCache
    let startedAt: number | null = null
    let inChunk = 0
    let now = 0
    let i = 0
    // The keys the cache holds are answered first, all at once; the loop reads the others.
    const answered = cache.answerEach(keys, out)
    for (; i < keys.length; i++) {
      if (answered[i] === 0) {
        if (startedAt === null) {
          startedAt = this.syncReads.begin()
          if (startedAt === null) {
            // The caller reads the rest again: the ones answered from the cache past here are no hits.
            for (let j = i; j < keys.length; j++) cache.hits -= answered[j]
            break
          }
          now = this.now()
          inChunk = 0
        }
        out[i] = this.readBytesNow(keys[i], now)
      } else if (startedAt === null) {
        continue
      }
      // A chunk spans SYNC_READ_CHUNK keys from its first LevelDB read, hits among them: a longer span of
      // memory reads would be charged to the gate as one slow read.
      if (++inChunk === SYNC_READ_CHUNK) {
        this.syncReads.done(startedAt)
        startedAt = null
      }
    }
    if (startedAt !== null) this.syncReads.done(startedAt)
    return i
  }

  /** A key's answer read from LevelDB (the cache did not hold it). */
  private readBytesNow(key: Uint8Array, now: number): Value | undefined | Error {
    const full = prefixedBytes(this.dataPrefix, key)
    try {
      const record = this.db.getSync(full)
      if (record === undefined) {
        this.readCache.fillBytes(key, ABSENT)
        return undefined
      }
      if (isExpired(this.intact(full, record), now)) return undefined
      if (!this.readCache.fillable || recordExpiresAt(record) !== undefined) return decodeRecordBytes(record)
      // Kept as get() answers it (a string stays a string); a reply writes either.
      const value = decodeRecord(record)
      if (value !== undefined) this.readCache.fillBytes(key, value)
      return value
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err))
    }
  }

  /** Every field of a key's record (multi-master getAll); undefined when there is none. */
  async getRecord(key: string): Promise<KeyRecord | undefined> {
    const full = prefixed(this.dataPrefix, key)
    const record = await this.db.get(full)
    return record === undefined || isExpired(this.intact(full, record), this.now()) ? undefined : readRecord(record)
  }

  /**
   * Iterates data entries in key order within the range; the caller must
   * finish or break. Deleted keys (tombstones) are skipped, and a key with
   * concurrent values comes once per value, in dot order.
   */
  async *scan(range: KeyRange): AsyncGenerator<[string, Value]> {
    const levelRange = toLevelRange(range)
    // Tombstones and expired keys not yet deleted are skipped here, so
    // LevelDB cannot count the limit (callers stop once they have enough).
    if (this.keys !== null || this.expiry.size > 0) levelRange.limit = -1
    const iterator = this.data.iterator(levelRange)
    try {
      for await (const [key, record] of iterator) {
        if (!this.intactAt(key, 0, record)) {
          const userKey = key.toString('utf8')
          this.noteDamaged(userKey)
          throw corruptKey(userKey)
        }
        if (record[0] !== RECORD_META) {
          yield [key.toString('utf8'), decodeRecord(record) as Value]
          continue
        }
        if (isExpired(record, this.now())) continue
        const { body } = readRecord(record)
        if (body.kind === 'value') yield [key.toString('utf8'), body.value]
        else if (body.kind === 'siblings') for (const s of body.siblings) yield [key.toString('utf8'), s.value]
      }
    } finally {
      await iterator.close()
    }
  }

  /**
   * Counts the keys by a pass over the data (keyCount is kept without one):
   * only the keys are read, unless the data may hold tombstones, which are
   * not keys.
   */
  async countKeys(): Promise<number> {
    let count = 0
    if (this.keys === null) for await (const _ of this.data.keys()) count++
    else for await (const record of this.data.values()) if (isLiveRecord(record)) count++
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
    const pageRecords = this.options.snapshotPageRecords ?? DEFAULT_TUNING.snapshotPageRecords
    const sealedOnly = this.sealedOnly
    const damaged = (userKey: string) => {
      this.noteDamaged(userKey)
      return corruptKey(userKey)
    }
    return {
      seq,
      clock,
      // Whole pages at once: one thread-pool read and one await per page, on
      // the root db with the data prefix (no sublevel per-entry key
      // rewriting); the next page is read on the thread pool while the
      // caller sends this chunk. Keys are read as strings (see ChunkPacker).
      // `maxBytes`: no chunk is packed larger (a receiver's frame limit);
      // a record that cannot fit alone fails the read with TOOLARGE.
      async *chunks(
        targetBytes: number,
        maxBytes = Number.POSITIVE_INFINITY,
      ): AsyncGenerator<{ chunk: Buffer; count: number }> {
        const skip = dataPrefix.length
        const start = dataPrefix.toString('latin1')
        const end = start.slice(0, -1) + String.fromCharCode(start.charCodeAt(start.length - 1) + 1)
        // highWaterMarkBytes is classic-level's own option (see log.ts):
        // its default, 16 KiB, ends a page at ~130 records of 100 bytes, so
        // pageRecords never bound a page and a sync made eight times as many
        // thread-pool trips as pages of pageRecords. A page now holds up to
        // a chunk's bytes (one record past them at most).
        const options = {
          gte: start,
          lt: end,
          snapshot,
          keyEncoding: 'utf8',
          highWaterMarkBytes: Math.max(MIN_PAGE_BYTES, Math.min(targetBytes, maxBytes)),
        }
        const iterator = db.iterator<string, Buffer>(options)
        let next: Promise<[string, Buffer][]> = Promise.resolve([])
        // A chunk ends at the first record that takes it to targetBytes.
        const packer = new ChunkPacker(Math.min(targetBytes, maxBytes) + 64 * 1024)
        try {
          next = iterator.nextv(pageRecords)
          for (;;) {
            const page = await next
            if (page.length === 0) break
            next = iterator.nextv(pageRecords)
            for (const [fullKey, record] of page) {
              let keyBytes = packer.placeKey(fullKey, skip, record.length)
              const size = 8 + keyBytes + record.length
              if (size > maxBytes) {
                const key = fullKey.slice(skip)
                // A copy, a backup or a replica never gets bytes the disk damaged.
                if (!recordIntact(Buffer.from(key, 'utf8'), 0, record, sealedOnly)) throw damaged(key)
                throw new TandemError(
                  'TOOLARGE',
                  `the record of key ${JSON.stringify(key)} takes ${size} bytes in a snapshot chunk, more than the receiver's frame limit allows (${maxBytes})`,
                )
              }
              if (packer.size + size > maxBytes) {
                yield packer.take()
                keyBytes = packer.placeKey(fullKey, skip, record.length)
              }
              const at = packer.keyAt
              if (!recordIntact(packer.bytes, at, record, sealedOnly, at + keyBytes)) throw damaged(fullKey.slice(skip))
              packer.commit(keyBytes, record)
              if (packer.size >= targetBytes) yield packer.take()
            }
          }
          if (packer.count > 0) yield packer.take()
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
    this.readCache.hold()
    await this.committer.idle()
    // A write left over from a full sync that was cut short must not land
    // in this one, nor its failure fail this one.
    await this.snapshotWrite.catch(() => {})
    this.snapshotWrite = Promise.resolve()
    await this.putMeta('syncing', true, true)
    await this.clearAll()
    await this.flushMemtable()
  }

  /**
   * Has LevelDB write its memtable out to a table now (a compaction of the
   * meta keys' range, which first writes the memtable out), before a full
   * sync's data arrives. The sync's data keys arrive in key order, so each
   * table LevelDB writes of them lies past the ones before and goes below
   * them whole (placed at level 2, later moved down a level). The meta keys
   * beginFullSync wrote (the syncing mark, the cleared counters) would
   * otherwise share the first chunks' memtable, and its table would span
   * from the first data key to the meta keys: every later table of the
   * sync overlapped it, was kept a level above it and merged into it,
   * rewritten (77 MB again of a 1,000,000-key sync's 128 MB of tables). The
   * deletions clear() wrote of a node's earlier data span its keys the
   * same way; such a sync still merges.
   */
  private async flushMemtable(): Promise<void> {
    const start = this.metaPrefix
    const end = Buffer.from(start)
    end[end.length - 1]++
    await (this.db as unknown as CompactRange).compactRange(start, end)
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
    this.readCache.hold()
    this.heads?.incomplete()
    const batch = this.db.batch()
    const bulk = new BulkBatch(this.db, batch)
    let largest = this.largestValue ?? 0
    const keys = this.keys?.begin() ?? null
    let live = 0
    try {
      const skip = this.dataPrefix.length
      const count = unpackChunk(chunk, this.dataPrefix, (key, arrived) => {
        // From an upstream or a backup of a build that did not seal records: sealed here.
        if (!recordIntact(key, skip, arrived)) {
          throw corruptKey(key.toString('utf8', skip), 'the snapshot chunk holding it is refused')
        }
        const record = isSealed(arrived) ? arrived : sealRecord(key, skip, arrived)
        bulk.put(key, record)
        if (isLiveRecord(record)) live++
        if (record.length - 1 > largest) largest = record.length - 1
        const expiresAt = recordExpiresAt(record)
        if (expiresAt !== undefined) this.expiry.set(key.toString('utf8', skip), expiresAt)
        // The data was emptied first: every record is new.
        keys?.change(batch, key.subarray(skip), undefined, record, 0)
      })
      if (count !== expectedCount) {
        throw new Error(`snapshot chunk holds ${count} records, its frame says ${expectedCount}`)
      }
      if (keys) {
        // Current at once (the next chunk builds on it); a failed write fails the sync, which starts over empty.
        const pending = keys.pending()
        batch.put(this.digestKey, pending.digest)
        if (pending.counts !== null) batch.put(this.countsKey, Buffer.from(JSON.stringify(pending.counts)))
        // Its tombstones are counted once the write is done (tombsWritten, below).
        keys.commit(false)
      }
      // Current at once in memory; the data was emptied first, so every live
      // record is a new key. Written to disk once, by finishFullSync: a
      // meta key in a chunk's batch would give each LevelDB table the
      // range from its first data key to the meta keys, so the tables of a
      // sync (whose data keys arrive in order) would all overlap and be
      // merged level into level instead of moved. A sync cut short is
      // discarded whole at the next open (the syncing mark), count included.
      this.keyCount += live
    } catch (err) {
      void batch.close()
      throw err
    }
    // Raised before the chunk is readable; written to disk with the sync's
    // end, as the count is (see above).
    if (this.largestValue !== undefined && largest > this.largestValue) this.largestValue = largest
    const previous = this.snapshotWrite
    const write = previous.then(
      async () => {
        await this.writeBatch(batch, false)
        keys?.tombsWritten()
      },
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
    batch.put(this.keyCountKey, Buffer.from(String(this.keyCount)))
    if (this.largestValue !== undefined) {
      batch.put(prefixed(this.metaPrefix, 'largestValue'), Buffer.from(String(this.largestValue)))
    }
    batch.del(prefixed(this.metaPrefix, 'syncing'))
    if (this.expiry.size > 0) batch.put(prefixed(this.metaPrefix, 'ttl'), Buffer.from('true'))
    await this.writeBatch(batch, this.options.sync !== 'none')
    this.readCache.release()
    if (this.expiry.size > 0) this.ttlUsed = true
    this.committedVv = this.vv.toObject()
    this.lastSeq = seq
    this.writingSeq = seq
    this.nextSeq = seq + 1
    this.history = history
    this.log.restartAfter(seq)
    this.lastCommitAt = this.clock.wall()
    this.notifyCommit(seq)
  }

  /**
   * Tells each listener of a commit that is already made (on disk, counters
   * moved): a throw from one must not fail the group, whose writes would
   * then be answered as failed although applied, nor keep the listeners
   * after it (feeds, watches, read-index waiters) from hearing of it.
   */
  private notifyCommit(seq: number): void {
    for (const listener of this.listeners) {
      try {
        listener(seq)
      } catch (err) {
        this.options.onListenerThrew?.(err)
      }
    }
  }

  private async clearAll(): Promise<void> {
    this.expiry.clear()
    this.presence.clear()
    this.heads?.clear()
    this.readCache.clear()
    this.damagedKeys.clear()
    await this.data.clear()
    await this.log.clear()
    await this.tombs.clear()
    const batch = this.db.batch()
    batch.put(this.lastSeqKey, Buffer.from('0'))
    batch.put(prefixed(this.metaPrefix, 'history'), Buffer.from('[]'))
    batch.put(prefixed(this.metaPrefix, 'largestValue'), Buffer.from('0'))
    batch.put(prefixed(this.metaPrefix, 'sealed'), Buffer.from('true'))
    batch.del(this.digestKey)
    batch.del(this.oldDigestKey)
    batch.del(this.countsKey)
    batch.put(this.keyCountKey, Buffer.from('0'))
    await this.writeBatch(batch, this.options.sync !== 'none')
    this.largestValue = 0
    this.keyCount = 0
    this.sealedOnly = true
    if (this.keys) this.keys = new KeyTracker(this.tombs, new ConvergenceDigest(), EMPTY_COUNTS(), this.maxSiblings)
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
    await this.syncing
    await this.snapshotWrite.catch(() => {})
    await this.log.idle()
    while (this.recovering) await new Promise((resolve) => setTimeout(resolve, 10))
    // With a full disk there is nothing to flush: every acknowledged write
    // was made durable before it was acknowledged, and nothing else is.
    if (
      this.dirtySinceSync &&
      this.options.sync !== 'none' &&
      this.db.status === 'open' &&
      !this.noSpace &&
      !this.syncFailure
    ) {
      this.dirtySinceSync = false
      await this.putMeta('syncedAt', this.clock.wall(), true).catch((err) => {
        if (this.noSpace === null) throw err
      })
    }
    await this.db.close()
    this.status = 'closed'
  }
}

/** LevelDB's write-ahead log files are named by number (its info log is LOG, in capitals). */
const LEVELDB_LOG_FILE = /^\d+\.log$/

async function fdatasyncFile(path: string): Promise<void> {
  const file = await openFile(path, 'r')
  try {
    await file.datasync()
  } finally {
    await file.close()
  }
}

async function fsyncDirectory(path: string): Promise<void> {
  const dir = await openFile(path, 'r')
  try {
    await dir.sync()
  } finally {
    await dir.close()
  }
}

/** A log file could not be opened to be fsynced: no fsync was made, so no write was lost. */
function isOpenFailure(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.syscall === 'open'
}

function syncFailedError(state: NoSpace): TandemError {
  return new TandemError(
    'UNAVAILABLE',
    `an fsync of the data dir failed at ${new Date(state.since).toISOString()} (${state.message}): writes acknowledged before it may be missing from the disk, so this node takes no more writes until it is restarted`,
  )
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

/**
 * Stands for a record known only to exist (readCurrent's hasMany): a plain
 * empty string value, live like every record of a data dir without tombstones.
 */
const PRESENT = Buffer.from([0])

/** The identity of the entry just added to the group's raws (see GroupState.ids). */
function identify(commit: GroupState, origin: string, counter: number): void {
  commit.ids.origins.push(origin)
  commit.ids.counters.push(counter)
}

/**
 * Whether the stubs of these writes' keys may go straight into their
 * group's `current` (readOver): the writes are client writes with no
 * condition and peers' entries, which read no record but their own keys'.
 */
function headsGoStraight(writes: StoreWrite[]): boolean {
  for (let i = 0; i < writes.length; i++) {
    const write = writes[i]
    if (write.kind === 'remote') continue
    if (write.kind !== 'local' || write.conditions !== undefined || write.expire) return false
  }
  return true
}

/** 1 for a record that holds a key, 0 for none or a tombstone (see Store.keyCount). */
function liveness(record: Buffer | undefined): number {
  return record !== undefined && isLiveRecord(record) ? 1 : 0
}

const EMPTY_COUNTS = (): KeyCounts => ({ tombstones: 0, siblingKeys: 0, maxSiblings: 0 })

/** Most damaged keys a store names (damagedKeys); past it they are only counted. */
const MAX_DAMAGED_KEYS = 1000

/**
 * Keys getEachNow reads per timing of the sync-read gate: a chunk read
 * from memory stays well under the gate's slowMs, so only a chunk that
 * waited for the disk (or was preempted) is charged to its budget.
 */
const SYNC_READ_CHUNK = 16

/** The error for a read (or a write that reads) of a record whose checksum does not match. */
function corruptKey(key: string, outcome = 'refused'): TandemError {
  return new TandemError(
    'CORRUPT',
    `the record of key ${JSON.stringify(key.length > 200 ? `${key.slice(0, 200)}...` : key)} is damaged on this node (its checksum does not match what was written); ${outcome}`,
    { details: { key } },
  )
}

/** A get queued for the next getMany, with how to turn its record into the answer. */
interface PendingRead {
  /** The key as the caller gave it (the read cache's name for it). */
  name: string
  key: Buffer
  answer: (record: Uint8Array | undefined, now: number) => unknown
  resolve: (answer: unknown) => void
  reject: (err: unknown) => void
}

/** Keys of up to this many UTF-16 units are written by a loop when they are ASCII (see prefixed). */
const SHORT_KEY = 64

/**
 * The prefixed data key of `key`: the prefix, then the key's UTF-8. Every
 * key a write names is made so, once or more a put. A short ASCII key (the
 * common one) is written by a loop here, as its bytes are its char codes:
 * Buffer.byteLength, Buffer#copy and Buffer#write are calls into C++ that
 * cost more than the loop for a few dozen bytes. Any other key, or a
 * longer one, takes those calls: the same bytes.
 */
function prefixed(prefix: Buffer, key: string): Buffer {
  const units = key.length
  const at = prefix.length
  if (units <= SHORT_KEY) {
    const out = Buffer.allocUnsafe(at + units)
    let i = 0
    for (; i < units; i++) {
      const c = key.charCodeAt(i)
      if (c >= 0x80) break
      out[at + i] = c
    }
    if (i === units) {
      for (let j = 0; j < at; j++) out[j] = prefix[j]
      return out
    }
  }
  const length = Buffer.byteLength(key, 'utf8')
  const out = Buffer.allocUnsafe(at + length)
  prefix.copy(out, 0)
  out.write(key, at, 'utf8')
  return out
}

/** What must be stable before a tombstone may go: the deleting write's dot (lww), or the whole context (vclock). */
/** A plain put's entry and block length beside its origin, key and value, at most (see putEntryBytes). */
const ENTRY_OVERHEAD = 4 + 4 * 9 + 2 * 5 + 4
/** A peer's entry placed in a block beside its own bytes, at most: its block length and a placement of two 5-byte integers (see placedEntryBytes). */
const PLACED_OVERHEAD = 4 + 10

/** A put with no options (a 3-element op): logged as addPlainPut writes it. */
function isPlainPut(op: EntryOp): boolean {
  return op[0] === OP_PUT && op.length === 3
}

function tombstoneRequirement(record: KeyRecord): VersionVectorObject {
  if (record.body.kind === 'siblings') return record.body.context
  return record.version ? { [record.version.origin]: record.version.counter } : {}
}

/** A local op in apply form (key and value as bytes). */
/**
 * A record whose TTL has passed is missing to every read (and absent to a
 * condition) before the master's delete of it arrives: a node whose clock
 * is ahead of the master's hides it a little early, never serves it late.
 */
function isExpired(record: Uint8Array, now: number): boolean {
  const expiresAt = recordExpiresAt(record)
  return expiresAt !== undefined && expiresAt <= now
}

/** A client's op as the resolver reads it; `key` is its key's UTF-8 bytes (a view of the data key made for it). */
function toApplyOp(op: EntryOp, key: Uint8Array): ApplyOp {
  const ctx = opOptions(op)?.c
  const applied: ApplyOp =
    op[0] === OP_PUT
      ? typeof op[2] === 'string'
        ? { del: false, key, value: Buffer.from(op[2], 'utf8'), binary: false }
        : op[2] instanceof TextBytes
          ? { del: false, key, value: op[2].bytes, binary: false }
          : { del: false, key, value: op[2], binary: true }
      : { del: true, key, value: null, binary: false }
  if (ctx) applied.ctx = ctx
  return applied
}

/** The op as logged: as the client sent it, with the context the resolver settled on. */
function toEntryOp(op: EntryOp, applied: ApplyOp): EntryOp {
  // Nearly every op carries no options and gets none: logged as it came.
  if (!applied.ctx && op.length === (op[0] === OP_PUT ? 3 : 2)) return op
  const options: OpOptions | undefined = applied.ctx ? { c: applied.ctx } : undefined
  if (op[0] === OP_PUT) return options ? [OP_PUT, op[1], op[2], options] : [OP_PUT, op[1], op[2]]
  return options ? [OP_DEL, op[1], options] : [OP_DEL, op[1]]
}

/** A data dir opened with a --mode or --conflict other than the one it was created with, or written by a newer tandem (bad usage: exit 2). */
export class DataDirMismatchError extends TandemError {
  constructor(message: string) {
    super('INVALID', message)
    this.name = 'DataDirMismatchError'
  }
}

function mismatch(message: string): TandemError {
  return new DataDirMismatchError(message)
}

function prefixedBytes(prefix: Buffer, key: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(prefix.length + key.length)
  prefix.copy(out, 0)
  out.set(key, prefix.length)
  return out
}

export interface DataSnapshot {
  seq: Promise<number>
  /** The node's clock as of the snapshot (what writes the data holds). */
  clock: Promise<StoreClock>
  /**
   * The data as snapshot chunks of about `targetBytes` each (see
   * snapshot-chunk.ts), none larger than `maxBytes` (a record that cannot
   * fit alone: TOOLARGE).
   */
  chunks(targetBytes: number, maxBytes?: number): AsyncGenerator<{ chunk: Buffer; count: number }>
  close(): Promise<void>
}

interface KeyRange {
  prefix?: string
  gt?: string
  gte?: string
  lt?: string
  lte?: string
  limit?: number
  reverse?: boolean
}

/** The smallest byte string greater than every string starting with prefix, or undefined when none is. */
function prefixUpperBound(prefix: Buffer): Buffer | undefined {
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

/** The traced keys among entries' ops (key-trace.ts). */
function tracedKeysOf(entries: ApplyEntry[]): number[] {
  const traced: number[] = []
  for (const entry of entries) {
    for (const op of entry.ops) {
      const n = tracedKey(op.key)
      if (n >= 0) traced.push(n)
    }
  }
  return traced
}
