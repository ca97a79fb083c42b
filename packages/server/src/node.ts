import {
  type BatchOp,
  byteLength,
  type Consistency,
  type GetAllResult,
  type LogRange,
  type NodeStatus,
  refuseForeignExtensions,
  type ScanOptions,
  type ScanPage,
  TandemError,
  type Value,
  type ValueMeta,
  type WriteConcern,
  type WriteResult,
} from '@tandem/protocol'
import { WatchHub } from './api/watch.js'
import type { Config } from './config.js'
import { Expirer } from './expirer.js'
import { decodeContext, encodeContext } from './multimaster/context.js'
import { LwwResolver } from './multimaster/lww.js'
import { Mesh } from './multimaster/mesh.js'
import { VclockResolver } from './multimaster/vclock.js'
import { AckTracker } from './replication/acks.js'
import type { PeerTls } from './replication/dial.js'
import { Downstream } from './replication/downstream.js'
import { FailoverManager } from './replication/failover.js'
import { ReadIndex } from './replication/read-index.js'
import { writeRollbackFile } from './replication/rollback.js'
import { Topology } from './replication/topology.js'
import { Upstream, upstreamOptions } from './replication/upstream.js'
import { type Role, Roles } from './roles.js'
import { DataDirSize } from './storage/data-dir-size.js'
import { type EntryOp, OP_DEL, OP_PUT } from './storage/log-entry.js'
import { modSeqOf, SiblingsError } from './storage/record.js'
import type { ConflictResolver } from './storage/resolver.js'
import { type ConflictPolicy, NOT_NOW, type Store, type WriteCondition } from './storage/store.js'
import type { WriteValue } from './storage/text-bytes.js'
import type { VersionVectorObject } from './storage/version-vector.js'
import type { Clock } from './util/clock.js'
import type { Logger } from './util/logger.js'

interface WriteOptions {
  w?: WriteConcern
  timeoutMs?: number
  /** The newest epoch the client has seen (see noteEpoch). */
  epoch?: number
  /** Multi-master: the causal context a read returned (vclock). */
  context?: string
  /** Multi-master: the greatest stamp the client was given; this write is stamped after it. */
  after?: number
}

/** A write's compare-and-set conditions on its key (see WriteCondition). */
interface KeyConditions {
  ifSeq?: number
  ifAbsent?: boolean
  ifPresent?: boolean
}

/** The condition on `key` that `options` asks for, or null when it asks none. */
function conditionOf(key: string, options: KeyConditions): WriteCondition | null {
  if (options.ifSeq === undefined && !options.ifAbsent && !options.ifPresent) return null
  const condition: WriteCondition = { key }
  if (options.ifSeq !== undefined) condition.ifSeq = options.ifSeq
  if (options.ifAbsent) condition.ifAbsent = true
  if (options.ifPresent) condition.ifPresent = true
  return condition
}

/** msgpack bytes around one value in an mget reply. */
// A node decodes bytes from clients, upstreams, peers and watchers: plain msgpack only (README, Error codes).
refuseForeignExtensions()

const MGET_ITEM_OVERHEAD = 5
/** msgpack bytes around one entry of a scan page: its array header and its key's and value's (str32/bin32). */
const SCAN_ENTRY_OVERHEAD = 11

function mgetTooLarge(keys: number, config: Config): TandemError {
  return new TandemError(
    'TOOLARGE',
    `the reply to an mget of ${keys} keys would be larger than a frame (--max-frame-bytes ${config.maxFrameBytes}); ask for fewer keys`,
  )
}

function checkMgetBytes(values: (Value | undefined)[], keys: number, maxBytes: number, config: Config) {
  let bytes = 0
  for (const v of values) bytes += v === undefined ? 1 : byteLength(v) + MGET_ITEM_OVERHEAD
  if (bytes > maxBytes) throw mgetTooLarge(keys, config)
  return values
}

/**
 * TandemNode: what this node is (role, epoch, upstream) and the operations
 * clients can ask of it. The API layer validates and routes requests here;
 * this class decides whether the node may take them.
 */
export class TandemNode {
  /** Who the master is, whom this node follows, the group's members (topology.ts). */
  readonly topology: Topology
  /** This node's role and its transitions (roles.ts). */
  readonly roles: Roles
  /** In a fail-over group (--cluster, --witness): the master is learnt from heartbeats. */
  private readonly inGroup: boolean
  readonly acks = new AckTracker()
  readonly startedAt: number
  /** Serves this node's log to its downstreams (every node has one). */
  readonly upstreamSide: Upstream
  /** Serves watches (change feeds) from this node's log. */
  readonly watchers: WatchHub
  private readonly expirer: Expirer
  readonly counters = { fullSyncs: 0, partialSyncs: 0, rollbacks: 0, rolledBackEntries: 0 }
  lastRollbackFile: string | null = null
  /** Fail-over group membership, heartbeats, leases and votes (with --cluster). */
  failover: FailoverManager | null = null
  /** What linearizable reads wait for (see read-index.ts). */
  readonly readIndex: ReadIndex
  /** Whose acks count towards a majority: the group's members, in a fail-over group. */
  private readonly isMember = (id: string) => this.failover?.isMember(id) ?? true
  /** Client connections and the bytes they hold, for status (set by the server). */
  clientStatus: () => Record<string, number> | null = () => null
  private addr = ''
  /** Keys whose left-out replicated writes were logged (onDamagedSkip), so each is logged once. */
  private readonly damagedSkipsLogged = new Set<string>()
  /** Set while a replica discards damaged data for a full resync (onDamagedRecord). */
  private resyncingDamage = false
  /** HOST:PORT Redis-protocol clients reach this node at (--resp-port), or null when it serves none. */
  respAddress: string | null = null
  /** Multi-master: the peer mesh (with --mode multi). */
  mesh: Mesh | null = null
  /** The server's one clock, the one its store was opened with (see util/clock.ts). */
  readonly clock: Clock
  /** The data dir's bytes on disk, for status, /metrics and the console. */
  readonly disk: DataDirSize

  constructor(
    readonly config: Config,
    readonly store: Store,
    readonly logger: Logger,
    /** TLS for the links this node dials (its upstream, fail-over members), from --tls-*. */
    private readonly peerTls?: PeerTls,
  ) {
    const role: Role =
      config.mode === 'multi'
        ? 'peer'
        : config.witness
          ? 'witness'
          : config.replicaof || config.failover === 'auto'
            ? 'replica'
            : 'master'
    this.clock = store.clock
    this.startedAt = this.clock.wall()
    this.disk = new DataDirSize(store.dataDir, config.tune, () => this.clock.now())
    store.onCorrupt = (key) => this.onDamagedRecord(key)
    store.onDamagedSkip = (key, origin, originSeq) => this.onDamagedSkip(key, origin, originSeq)
    this.topology = new Topology(config.cluster)
    this.inGroup = config.cluster.length > 0 || config.witness
    this.upstreamSide = new Upstream(
      {
        store,
        logger,
        clock: this.clock,
        acks: this.acks,
        authToken: config.authToken,
        masterAddress: () => this.masterAddress(),
        respAddress: () => this.respAddress,
        countSync: (kind) => this.countServed(kind),
        onNewerEpoch: (epoch, why) => this.noteEpoch(epoch, why),
      },
      upstreamOptions(config.tune, config.replTimeout),
    )
    this.watchers = new WatchHub({
      store,
      logger,
      maxKeyBytes: config.maxKeyBytes,
      head: () => this.watchHead(),
      isMaster: () => this.role === 'master',
      masterAddress: () => this.masterAddress(),
      unavailable: () => this.dataUnavailable(),
      tuning: config.tune,
    })
    this.readIndex = new ReadIndex({
      committedSeq: () => this.committedSeq(),
      // Only elections can replace an entry a majority holds (see read-index.ts);
      // outside a fail-over group a promotion is the operator's choice.
      epochStartSeq: () => {
        const history = this.store.history
        return this.failover === null || history.length === 0 ? 0 : history[history.length - 1].startSeq
      },
      // Checked like a write: a node that stepped down meanwhile must not add to its log.
      writeBarrier: () => {
        this.assertCanServe('linearizable')
        return this.store.write([])
      },
      headSeq: () => this.store.writingSeq,
      check: () => this.assertCanServe('linearizable'),
      now: () => this.clock.now(),
    })
    // In a fail-over group, what a watch on the master may deliver moves with
    // the replicas' acks; so does what linearizable reads wait for.
    this.acks.onAdvance = () => {
      if (this.failover && this.role === 'master') this.watchers.wake()
      this.readIndex.advance()
    }
    store.onCommit(() => this.readIndex.advance())
    const node = this
    this.roles = new Roles(
      {
        store,
        logger,
        topology: this.topology,
        upstreamSide: this.upstreamSide,
        watchers: this.watchers,
        acks: this.acks,
        readIndex: this.readIndex,
        inGroup: this.inGroup,
        get address() {
          return node.address
        },
        get nodeId() {
          return node.nodeId
        },
        dial: (upstream) => this.dial(upstream),
      },
      role,
    )
    this.expirer = new Expirer(store, () => this.canWrite() && !this.mesh, logger, config.tune)
    if (role !== 'witness') this.expirer.start()
    if (config.mode === 'multi') {
      this.mesh = new Mesh(
        { store, logger, clock: this.clock },
        {
          peers: config.peers,
          conflict: config.conflict,
          maxClockOffsetMs: config.maxClockOffset,
          maxSiblings: config.maxSiblings,
          authToken: config.authToken,
          tls: this.peerTls,
          maxFrameBytes: config.maxFrameBytes * 2,
          feed: upstreamOptions(config.tune, config.replTimeout),
          tuning: config.tune,
        },
      )
    }
  }

  /** A resolver for records of `policy` (a replica applies its upstream's entries with it). */
  resolverFor(policy: ConflictPolicy): ConflictResolver {
    if (this.mesh && policy === this.config.conflict) return this.mesh.resolver
    return policy === 'lww' ? new LwwResolver() : new VclockResolver(this.config.maxSiblings)
  }

  /**
   * The highest seq a majority holds: a majority of the group's members in a
   * fail-over group (as for w='majority'), else of the master and its direct
   * replicas; never past this node's own durable log.
   */
  private committedSeq(): number {
    const held = this.majorityHeld
    const members = this.failover ? this.failover.membershipVersion() : 0
    const epoch = this.store.epoch
    if (held.acks !== this.acks.changes || held.members !== members || held.epoch !== epoch) {
      const needed = this.failover ? this.failover.majorityAcks() : this.acks.required('majority')
      const seq = this.acks.seqHeldBy(needed, this.failover ? this.isMember : undefined)
      // In a fail-over group, what a majority of members held stays held
      // (rule 2 of failover.ts): a replica link that drops takes its acks
      // with it, not the entries it holds. (Elsewhere the majority counts
      // the replicas attached now, so it follows them.)
      const kept = this.failover !== null && held.members === members && held.epoch === epoch && held.seq > seq
      held.seq = kept ? held.seq : seq
      held.acks = this.acks.changes
      held.members = members
      held.epoch = epoch
    }
    const last = this.store.lastSeq
    return Math.min(held.seq, last)
  }

  /**
   * The highest seq a majority of replicas holds, recomputed only when an
   * ack, a link or the group's membership changes: every linearizable read
   * asks for it. In a fail-over group, never lowered within an epoch and
   * membership (started again when either changes).
   */
  private readonly majorityHeld = { acks: -1, members: -1, epoch: -1, seq: 0 }

  /** Why this node's data cannot be served whole now (watches, snapshots), or null. */
  dataUnavailable(): string | null {
    if (this.role === 'witness') return 'this node is a witness: it votes and holds no data'
    if (this.downstream?.state === 'fullsync') return 'this node is taking a full sync: its data is partial; retry'
    return null
  }

  /**
   * The last seq a watch on this node may deliver. On the master of a
   * fail-over group: the last seq a majority of the group holds (the point
   * where a w: 'majority' write is acknowledged), so that no watcher is
   * shown a write an election can roll back. Elsewhere: the last committed
   * seq (a replica shows what it has applied; see the README on watches
   * across a fail-over).
   */
  watchHead(): number {
    if (this.role !== 'master' || !this.failover) return this.store.lastSeq
    return this.committedSeq()
  }

  /** Syncs served to downstreams, by kind (status and metrics). */
  readonly served = { full: 0, partial: 0 }
  private countServed(kind: 'full' | 'partial'): void {
    this.served[kind]++
  }

  get role(): Role {
    return this.roles.role
  }

  /** HOST:PORT this node follows, when it is a replica. */
  get upstream(): string | null {
    return this.topology.upstream
  }

  /** The replication link to `upstream`, while this node is a replica. */
  get downstream(): Downstream | null {
    return this.roles.downstream
  }

  /**
   * HOST:PORT of the master as this node knows it: itself; in a fail-over
   * group, the master whose heartbeats it still hears; else the master its
   * upstream named, or the upstream until it names one.
   */
  masterAddress(): string | null {
    if (this.role === 'master' || this.role === 'peer') return this.address
    if (this.failover) return this.failover.knownMaster()
    return this.topology.master ?? this.topology.upstream
  }

  get nodeId(): string {
    return this.store.nodeId
  }

  /** HOST:PORT others reach this node at. */
  get address(): string {
    return this.addr
  }

  set address(addr: string) {
    this.addr = addr
  }

  /** Starts following --replicaof, or makes sure a master has an epoch of its own to write in. */
  async init(): Promise<void> {
    if (this.store.damage.length > 0) await this.discardDamagedData()
    // The first figure before the node serves: status and /metrics then always have one.
    await this.disk.ready()
    if (this.store.discardedPartialSync) {
      this.logger.warn('found an interrupted full sync; its partial data was discarded and will be synced again')
    }
    if (this.mesh) {
      // A multi-master node's log has an epoch of its own, so that read
      // replicas follow it as they follow a master.
      const history = this.store.history
      if (history.length === 0 || history[history.length - 1].by !== this.nodeId) {
        await this.store.beginEpoch(this.store.epoch + 1)
      }
      await this.mesh.load()
      this.mesh.start(this.address)
    } else if (this.config.replicaof && !this.config.witness) {
      await this.roles.follow(this.config.replicaof)
    } else if (!this.config.witness && this.config.failover !== 'auto') {
      // (A witness follows no one; with --failover auto a replica waits for
      // a master's heartbeat, or for an election it may win.)
      await this.roles.becomeMaster('start')
    }
    if (this.inGroup) {
      const timeout = this.config.failoverTimeout
      this.failover = new FailoverManager(
        this.failoverHost(),
        {
          auto: this.config.failover === 'auto',
          witness: this.config.witness,
          heartbeatMs: this.config.heartbeatInterval,
          electionTimeoutMs: timeout,
          leaseMs: Math.round(timeout * 0.7),
        },
        () => this.clock.now(),
      )
      await this.failover.start()
    }
  }

  /**
   * The data dir was found damaged and this node starts as a replica: save
   * what of its log can still be read to a rollback file, drop the data, and
   * let the upstream send a full sync. The damaged files are named in the log.
   */
  private async discardDamagedData(): Promise<void> {
    const damage = this.store.damage.map((d) => ({ file: d.file || 'db', problem: d.problem }))
    this.logger.error('the data dir is damaged; discarding it and resyncing from the upstream', {
      dataDir: this.store.dataDir,
      damage,
    })
    try {
      const from = await this.store.log.firstSeq()
      const saved = await writeRollbackFile(this.store, from - 1, 'damaged data dir discarded for a full resync')
      if (saved) {
        this.counters.rollbacks++
        this.counters.rolledBackEntries += saved.entries
        this.lastRollbackFile = saved.file
        this.logger.warn('saved the readable entries of the damaged log', { file: saved.file, entries: saved.entries })
      }
    } catch (err) {
      this.logger.warn('could not read the damaged log to save its entries', { err })
    }
    await this.store.discardDamaged()
  }

  /**
   * A read found a damaged record (its checksum did not match; the read
   * failed with CORRUPT). A replica has a healthy copy upstream: it saves
   * its log to a rollback file, discards its data and takes a full sync, as
   * a start that finds damage does. A master, a peer or a node alone is
   * the copy: reads of the key fail with CORRUPT until it is written again.
   */
  private onDamagedRecord(key: string): void {
    const resync = this.role === 'replica' && this.upstream !== null
    this.logger.error('a damaged record was found on read: its checksum does not match', {
      key,
      action: resync
        ? 'discarding the data and resyncing from the upstream'
        : this.role === 'replica'
          ? 'discarding the data and resyncing once this node follows an upstream'
          : 'reads of the key fail with CORRUPT until it is written again',
    })
    if (resync) this.scheduleDamageResync()
  }

  /**
   * A replicated write was left out: its key's record here is damaged
   * (Store.damagedSkips). Logged once per key while it stays damaged; every
   * one is counted.
   */
  private onDamagedSkip(key: string, origin: string, originSeq: number): void {
    if (this.damagedSkipsLogged.has(key)) return
    if (this.damagedSkipsLogged.size >= 1000) this.damagedSkipsLogged.clear()
    this.damagedSkipsLogged.add(key)
    this.logger.error('a write from a peer was not applied: its key is damaged here', {
      key,
      origin: origin || null,
      originSeq: originSeq || null,
      action: 'the link goes on; reads of the key fail with CORRUPT until it is written again on this node',
    })
  }

  private scheduleDamageResync(): void {
    if (this.resyncingDamage) return
    this.resyncingDamage = true
    void this.roles
      .resync((upstream) => this.discardDamagedForResync(upstream))
      .catch((err) => this.logger.error('could not discard the damaged data for a resync', { err }))
      .finally(() => {
        this.resyncingDamage = false
      })
  }

  /** Saves the log of a replica with a damaged record to a rollback file and discards its data (see onDamagedRecord). */
  private async discardDamagedForResync(upstream: string): Promise<void> {
    this.upstreamSide.disconnectAll('upstream is taking a full sync; resync')
    this.watchers.closeAll('this node is taking a full sync: its log is replaced')
    try {
      const from = await this.store.log.firstSeq()
      const saved = await writeRollbackFile(
        this.store,
        from - 1,
        'damaged record found on read; data discarded for a full resync',
      )
      if (saved) {
        this.counters.rollbacks++
        this.counters.rolledBackEntries += saved.entries
        this.lastRollbackFile = saved.file
        this.logger.warn("saved the entries of the damaged data dir's log", {
          file: saved.file,
          entries: saved.entries,
        })
      }
    } catch (err) {
      this.logger.warn('could not read the damaged log to save its entries', { err })
    }
    await this.store.discardForResync()
    this.logger.warn('discarded the damaged data; resyncing from the upstream', { upstream })
  }

  private failoverHost() {
    return {
      store: this.store,
      logger: this.logger,
      nodeId: this.nodeId,
      address: this.address,
      respAddress: this.respAddress,
      authToken: this.config.authToken,
      tls: this.peerTls,
      topology: this.topology,
      roles: this.roles,
    }
  }

  /**
   * Someone (a replica's hello, a client's write) knows of `epoch`. A
   * master of an older one is not the master any more: a promotion
   * happened that it missed (in manual mode, an old master restarted
   * without --replicaof). It steps down as in a fail-over group (rule 5).
   */
  noteEpoch(epoch: number, why: string): void {
    if (epoch <= this.store.epoch) return
    if (epoch > this.roles.newestEpoch) this.roles.newestEpoch = epoch
    if (this.failover) return this.failover.noteEpoch(epoch, why)
    if (this.role !== 'master') return
    this.logger.warn('stepping down: a newer epoch exists', { epoch, why })
    this.roles.stepDown(epoch)
  }

  /** A replication link to `upstream`, counted in this node's status. */
  private dial(upstream: string): Downstream {
    const link = new Downstream(upstream, {
      store: this.store,
      logger: this.logger,
      clock: this.clock,
      tuning: this.config.tune,
      address: this.address,
      respAddress: this.respAddress,
      authToken: this.config.authToken,
      tls: this.peerTls,
      maxFrameBytes: this.config.maxFrameBytes * 2,
      silenceTimeoutMs: this.config.replTimeout,
      countSync: (kind) => {
        if (kind === 'full') this.counters.fullSyncs++
        else this.counters.partialSyncs++
      },
      onRollback: (entries, file) => {
        this.counters.rollbacks++
        this.counters.rolledBackEntries += entries
        this.lastRollbackFile = file
      },
      // In a fail-over group the master is learnt from heartbeats (topology.ts).
      onMaster: (master) => {
        if (master && !this.inGroup) this.topology.master = master
      },
      onFullSyncStart: () => {
        this.upstreamSide.disconnectAll('upstream is taking a full sync; resync')
        this.watchers.closeAll('this node is taking a full sync: its log is replaced')
      },
      resolverFor: (policy) => this.resolverFor(policy),
    })
    // Damage found while this node followed no upstream (a fail-over member
    // not yet following its master): resynced once this link is up.
    if (this.store.damagedKeys.size > 0) this.scheduleDamageResync()
    return link
  }

  /** `tandem forget ORIGIN` (multi-master): see Mesh.forget. */
  forget(origin: string, force: boolean): Promise<{ origin: string; forgotten: string[]; closedLinks: number }> {
    if (!this.mesh) {
      throw new TandemError(
        'INVALID',
        'forget is for multi-master nodes (--mode multi): this node keeps no peers whose rows it waits for',
      )
    }
    return this.mesh.forget(origin, force)
  }

  /** `replicaof HOST:PORT` / `replicaof no one` at run time. */
  async replicaof(upstream: string | null): Promise<void> {
    if (this.mesh) {
      throw new TandemError(
        'INVALID',
        "a multi-master node takes writes itself: it is no one's replica and needs no promotion",
      )
    }
    if (upstream === null) {
      if (this.failover) return this.failover.promote()
      if (this.role !== 'master') await this.roles.becomeMaster('replicaof no one')
      return
    }
    // Writes waiting for replica acks are committed here but may be dropped by
    // the new upstream's history: their outcome is unknown, and a client must
    // not resend them elsewhere as if they had been refused.
    if (this.role === 'master') {
      this.acks.failAll(
        new TandemError('UNCERTAIN', 'this node became a replica while the write waited for replicas; it may be lost'),
      )
      this.readIndex.failAll(new TandemError('READONLY', 'this node became a replica; read from the master'))
    }
    await this.roles.follow(upstream)
  }

  // ---- writes ------------------------------------------------------------

  private assertWritable(): void {
    if (this.mesh) {
      this.mesh.assertCanWrite()
      if (this.config.minReplicas > 0) this.assertEnoughReplicas()
      return
    }
    if (this.role === 'master') {
      this.failover?.assertCanWrite()
      if (this.config.minReplicas > 0) this.assertEnoughReplicas()
      return
    }
    this.refuseAsNotMaster()
  }

  /** Throws the error a node that is not the master answers: FENCED, NOMASTER or READONLY (naming the master). */
  private refuseAsNotMaster(): never {
    if (this.roles.fenced) {
      throw new TandemError('FENCED', 'this node was the master of an older epoch and has stepped down', {
        details: {
          master: this.failover?.knownMaster() ?? null,
          epoch: Math.max(this.roles.newestEpoch, this.store.epoch),
        },
      })
    }
    if (this.failover && !this.failover.hearsMaster()) {
      throw new TandemError('NOMASTER', 'there is no master right now; the group is read-only until one is elected', {
        details: { master: null, epoch: this.store.epoch },
      })
    }
    if (this.role === 'replica' && this.upstream === null) {
      throw new TandemError('NOMASTER', 'this node follows no master yet', { details: { master: null } })
    }
    const master = this.masterAddress()
    throw new TandemError('READONLY', `this node is a read-only replica; write to the master at ${master}`, {
      details: { master, epoch: this.store.epoch },
    })
  }

  /**
   * --min-replicas: enough replicas streaming, within --max-lag both in the
   * entries they lack (lagMs) and in how long ago they were last heard. A
   * replica cut off while no writes happen lacks nothing, yet it cannot
   * hold the next write: judged by its last ack alone (every 250 ms), a
   * master cut off from its replicas stops taking writes --max-lag after it
   * last heard them, not at the end of its lease.
   */
  private assertEnoughReplicas(): void {
    const maxLag = this.config.maxLag
    const good = this.upstreamSide
      .replicas()
      .filter((r) => r.link === 'streaming' && r.lagMs <= maxLag && (r.lastHeardMsAgo ?? 0) <= maxLag).length
    if (good < this.config.minReplicas) {
      throw new TandemError(
        'NOREPLICAS',
        `${good} replicas are within ${maxLag} ms; --min-replicas is ${this.config.minReplicas}`,
      )
    }
  }

  write(ops: EntryOp[], options: WriteOptions, conditions?: WriteCondition[]): Promise<WriteResult> {
    try {
      // Multi-master peers have no common epoch: each one's counts its own history.
      if (!this.mesh && options.epoch !== undefined && options.epoch > this.store.epoch) {
        this.noteEpoch(options.epoch, 'a client has seen it')
      }
      this.assertWritable()
      if (this.mesh) {
        if (conditions) {
          throw new TandemError(
            'INVALID',
            'conditional writes (ifSeq, ifAbsent, ifPresent) are refused in multi-master mode: no one node orders every write, so a condition checked here could be broken by a peer; use vclock contexts',
          )
        }
        this.assertPeersCanAck(options.w)
        return this.writeMulti(ops, options, this.mesh)
      }
    } catch (err) {
      return Promise.reject(err)
    }
    // Most writes wait for no replica: one promise step, not an async function's.
    if (options.w === undefined) return this.store.write(ops, conditions).then(toWriteResult)
    return this.writeAcked(ops, options, conditions)
  }

  /** A single-master write that waits for replicas (w) once committed. */
  private async writeAcked(ops: EntryOp[], options: WriteOptions, conditions?: WriteCondition[]): Promise<WriteResult> {
    const seq = await this.store.write(ops, conditions)
    const needed =
      options.w === 'majority' && this.failover ? this.failover.majorityAcks() : this.acks.required(options.w)
    // w='majority' in a fail-over group counts only the group's members (see FailoverManager.isMember).
    const failover = this.failover
    const from = options.w === 'majority' && failover ? (id: string) => failover.isMember(id) : undefined
    if (needed > 0)
      await this.acks.waitFor(seq, needed, options.timeoutMs ?? this.config.tune.defaultWriteTimeoutMs, from)
    return { seq }
  }

  /**
   * Multi-master: `w: N` counts peers that hold the write, and the group is
   * this node and its --peers (as for 'majority'). A larger N is refused
   * before anything is written, rather than committed and left to wait out
   * its timeout for acks a symmetric group can never send. (A master is not
   * checked so: replicas may attach while a write waits, as with Redis WAIT.)
   */
  private assertPeersCanAck(w: WriteOptions['w']): void {
    const peers = this.config.peers.length
    if (typeof w !== 'number' || w <= peers) return
    throw new TandemError(
      'INVALID',
      `w ${w} asks for more peers than this node has (${peers} in --peers): a multi-master write waits for at most its peers; nothing was written`,
    )
  }

  /**
   * A multi-master write: resolves with its identity; `w: N` waits until N
   * peers hold it (they ack this node's own counter), 'majority' until a
   * majority of the mesh does (this node counts as one).
   */
  private async writeMulti(ops: EntryOp[], options: WriteOptions, mesh: Mesh): Promise<WriteResult> {
    if (options.after !== undefined) mesh.orderAfter(options.after)
    const result = await this.store.writeWithIdentity(ops)
    const needed = options.w === 'majority' ? Math.floor((this.config.peers.length + 1) / 2 + 1) - 1 : (options.w ?? 0)
    if (needed > 0) {
      try {
        await mesh.acks.waitFor(result.originSeq, needed, options.timeoutMs ?? this.config.tune.defaultWriteTimeoutMs)
      } catch (err) {
        if (err instanceof TandemError && err.code === 'TIMEOUT') {
          throw new TandemError(
            'TIMEOUT',
            `write ${result.origin}:${result.originSeq} is committed on this node but reached ${mesh.acks.countAtLeast(result.originSeq)} of ${needed} peers in time; it stays committed`,
            { details: { seq: result.seq } },
          )
        }
        throw err
      }
    }
    return { seq: result.seq, origin: result.origin, originSeq: result.originSeq, hlc: result.hlc }
  }

  put(key: string, value: WriteValue, options: WriteOptions & KeyConditions & { ttlMs?: number }) {
    const condition = conditionOf(key, options)
    const op =
      options.ttlMs === undefined
        ? this.withContext([OP_PUT, key, value], options.context)
        : this.ttlPut(key, value, options.ttlMs)
    return this.write([op], options, condition ? [condition] : undefined)
  }

  /**
   * Plain puts (no options), each a write of its own, submitted together
   * (pipelined SETs, a frame's puts): resolves with the last one's seq
   * (theirs are consecutive, in order) once every one is committed, or
   * rejects for all with what refused them (as each alone would be).
   * `epoch`: the newest fail-over epoch their clients have seen.
   */
  putEach(ops: EntryOp[], epoch?: number): Promise<number> {
    try {
      if (!this.mesh && epoch !== undefined && epoch > this.store.epoch) this.noteEpoch(epoch, 'a client has seen it')
      this.assertWritable()
    } catch (err) {
      return Promise.reject(err)
    }
    return this.store.writeEach(ops)
  }

  /**
   * Multi-master plain puts (no options but the client's session stamp),
   * each a write of its own, submitted together: resolves with each one's
   * identity, as put() answers it, or the error that refused it alone
   * (Store.writeEachWithIdentity). The client's stamps (`after`) are
   * taken before, put by put (orderAfter).
   */
  putEachMulti(ops: EntryOp[]): Promise<(WriteResult | Error)[]> {
    try {
      this.assertWritable()
    } catch (err) {
      return Promise.reject(err)
    }
    return this.store.writeEachWithIdentity(ops)
  }

  /**
   * Multi-master: a later write of this node is stamped after `after`, the
   * greatest stamp the client was given (throws CLOCKSKEW when it runs too
   * far ahead of this node's clock). Does nothing on other nodes.
   */
  orderAfter(after: number): void {
    this.mesh?.orderAfter(after)
  }

  /**
   * A put with a TTL: its expiry time, on this (the master's) clock, goes in
   * the entry, so every node stores the same and the log says when.
   */
  private ttlPut(key: string, value: WriteValue, ttlMs: number): EntryOp {
    if (this.mesh) {
      throw new TandemError(
        'INVALID',
        'TTL is not available in multi-master mode: no one node decides when a key expires',
      )
    }
    return [OP_PUT, key, value, { x: this.store.now() + ttlMs }]
  }

  del(key: string, options: WriteOptions & KeyConditions) {
    const condition = conditionOf(key, options)
    return this.write([this.withContext([OP_DEL, key], options.context)], options, condition ? [condition] : undefined)
  }

  /** The op with the client's causal context (vclock; ignored under lww, which needs none). */
  private withContext(op: [typeof OP_PUT, string, WriteValue] | [typeof OP_DEL, string], context?: string): EntryOp {
    if (context === undefined || this.config.mode !== 'multi' || this.config.conflict !== 'vclock') return op
    const c = decodeContext(context)
    return op[0] === OP_PUT ? [OP_PUT, op[1], op[2], { c }] : [OP_DEL, op[1], { c }]
  }

  /** All ops or none; a condition on any op makes the whole batch conditional. */
  batch(ops: BatchOp[], options: WriteOptions) {
    const conditions: WriteCondition[] = []
    for (const op of ops) {
      const condition = conditionOf(op.key, op)
      if (condition) conditions.push(condition)
    }
    return this.write(
      ops.map((op): EntryOp => {
        if (op.type === 'del') return [OP_DEL, op.key]
        return op.ttlMs === undefined ? [OP_PUT, op.key, op.value] : this.ttlPut(op.key, op.value, op.ttlMs)
      }),
      options,
      conditions.length > 0 ? conditions : undefined,
    )
  }

  /** Waits until `replicas` replicas hold this node's current seq; resolves with how many do. */
  async wait(replicas: number, timeoutMs: number): Promise<number> {
    const seq = this.store.lastSeq
    try {
      await this.acks.waitFor(seq, replicas, timeoutMs)
    } catch (err) {
      if (!(err instanceof TandemError && err.code === 'TIMEOUT')) throw err
    }
    return this.acks.countAtLeast(seq)
  }

  /**
   * Whether this node takes writes now: it is the master and, in a fail-over
   * group, holds its lease. (--min-replicas refusals are not read-only: the
   * node is still the master that clients must find.)
   */
  canWrite(): boolean {
    if (this.mesh) {
      try {
        this.mesh.assertCanWrite()
        return true
      } catch {
        return false
      }
    }
    if (this.role !== 'master') return false
    try {
      this.failover?.assertCanWrite()
      return true
    } catch {
      return false
    }
  }

  async close(): Promise<void> {
    this.expirer.close()
    this.failover?.close()
    await this.downstream?.stop()
    await this.mesh?.close()
    this.upstreamSide.close()
    this.watchers.close()
    this.acks.failAll(new TandemError('UNAVAILABLE', 'node is shutting down'))
    this.readIndex.close()
  }

  // ---- reads -------------------------------------------------------------

  /**
   * The consistency a read gets: what it asked for, else linearizable on a
   * master in a fail-over group and local anywhere else (a replica serves
   * its own data, as readFrom 'replica' asks).
   */
  private readMode(asked: Consistency | undefined): Consistency {
    if (asked !== undefined) return asked
    return this.role === 'master' && this.config.cluster.length > 0 ? 'linearizable' : 'local'
  }

  /** Throws unless this node may serve a read of `mode` now: lease and linearizable need the master, holding its lease. */
  private assertCanServe(mode: Consistency): void {
    if (this.role === 'witness')
      throw new TandemError('UNAVAILABLE', 'this node is a witness: it votes and holds no data')
    if (mode === 'local') return
    if (this.role === 'peer') {
      // No node of a multi-master group orders every write: there is no master to read through.
      throw new TandemError('INVALID', `a multi-master peer serves local reads only, not ${mode}`)
    }
    if (this.role !== 'master') this.refuseAsNotMaster()
    this.failover?.assertCanRead()
  }

  /**
   * Runs a read in `mode`: checks the node may serve it, reads, and for
   * linearizable waits for the read index (read-index.ts); lease and
   * linearizable reads check the lease again as they reply.
   */
  private read<T>(asked: Consistency | undefined, run: () => Promise<T>): Promise<T> {
    const mode = this.readMode(asked)
    this.assertCanServe(mode)
    if (mode === 'local') return run()
    return run().then((value) => {
      if (mode === 'lease') {
        this.assertCanServe(mode)
        return value
      }
      return this.confirmed(this.store.writingSeq, value)
    })
  }

  /** `value` once the read index lets a linearizable read that depends on the writes up to `seq` answer. */
  private confirmed<T>(seq: number, value: T): T | Promise<T> {
    const wait = this.readIndex.confirm(seq)
    if (wait === null) {
      this.assertCanServe('linearizable')
      return value
    }
    return wait.then(() => {
      this.assertCanServe('linearizable')
      return value
    })
  }

  get(key: string, consistency?: Consistency): Promise<Value | undefined> {
    let read: Promise<Value | undefined>
    if (this.readMode(consistency) === 'linearizable') {
      // One key: the read depends only on the write that last changed it (read-index.ts).
      this.assertCanServe('linearizable')
      read = this.store.getWithSeq(key).then((r) => this.confirmed(r.seq, r.value))
    } else {
      read = this.read(consistency, () => this.store.get(key))
    }
    return this.store.policy.conflict === 'vclock' ? read.catch(siblingsError) : read
  }

  /**
   * get(key, consistency) answered in this turn when it can be: a local
   * read that LevelDB answers synchronously (see Store.getNow); NOT_NOW
   * when the caller must call get().
   */
  getNow(key: string, consistency?: Consistency): Value | undefined | typeof NOT_NOW {
    const mode = this.readMode(consistency)
    if (mode !== 'local') return NOT_NOW
    this.assertCanServe(mode)
    if (this.store.policy.conflict !== 'vclock') return this.store.getNow(key)
    try {
      return this.store.getNow(key)
    } catch (err) {
      siblingsError(err)
    }
  }

  /** The key's value with its modification seq (get with meta); undefined when missing. */
  getMeta(key: string, consistency?: Consistency): Promise<ValueMeta | undefined> {
    // A multi-master record (or a replica's copy of one) keeps no modification
    // seq: the seq is for compare-and-set, which multi-master refuses. Before
    // this check a value answered the sentinel seq and siblings NOTFOUND.
    const conflict = this.store.policy.conflict
    if (conflict !== null) {
      return Promise.reject(
        new TandemError(
          'INVALID',
          `get with meta (a key's modification seq, for compare-and-set) is not kept under multi-master (conflict policy ${conflict}); read the value with get, or every value and the causal context with getAll`,
        ),
      )
    }
    return this.read(consistency, async () => {
      const record = await this.store.getRecord(key)
      if (record === undefined || record.body.kind !== 'value') return undefined
      const meta: ValueMeta = { value: record.body.value, seq: modSeqOf(record) }
      if (record.expiresAt !== undefined) meta.expiresAt = record.expiresAt
      return meta
    })
  }

  /**
   * What get(key, consistency) answers for each of `keys`, value or
   * failure, read together: a pipelined run of RESP GETs becomes one
   * LevelDB getMany (one crossing into LevelDB for the run) instead of a
   * read and a promise per key. Only local reads of one value per key
   * batch; linearizable reads (each waits for its own key's write) and a
   * vclock node (SIBLINGS) read key by key. A batch that fails (a damaged
   * record: CORRUPT names one key) is read again key by key, so each key
   * succeeds or fails as its get alone would. With `bytes`, the values
   * batched are bytes (a string's UTF-8): for replies that are bytes.
   */
  getEach(
    keys: string[],
    consistency?: Consistency,
    bytes = false,
  ): Promise<PromiseSettledResult<Value | undefined>[]> {
    const getOne = (key: string) => {
      try {
        return this.get(key, consistency)
      } catch (err) {
        return Promise.reject(err)
      }
    }
    const oneByOne = () => Promise.allSettled(keys.map(getOne))
    if (this.readMode(consistency) !== 'local' || this.store.policy.conflict === 'vclock') return oneByOne()
    try {
      this.assertCanServe('local')
    } catch (reason) {
      return Promise.resolve(keys.map(() => ({ status: 'rejected', reason })))
    }
    return this.store
      .getMany(keys, bytes)
      .then((values) => values.map((value) => ({ status: 'fulfilled', value })), oneByOne)
  }

  /**
   * getEach(keys)'s answers for keys given as their UTF-8 bytes, read now
   * and synchronously into `out` (Store.getEachNow: a value as bytes or a string,
   * undefined, or the Error that key's get would fail with); returns how
   * many were read. 0 when these reads cannot be made so: a linearizable
   * read (each waits for its own key's write) or a vclock node (SIBLINGS);
   * fewer than all once the sync-read gate sends reads to the thread pool.
   * The caller reads the rest with getEach. Throws what every get would
   * reject with when this node serves no reads (a witness).
   */
  getEachNow(keys: readonly Uint8Array[], out: (Value | undefined | Error)[]): number {
    if (this.readMode(undefined) !== 'local' || this.store.policy.conflict === 'vclock') return 0
    this.assertCanServe('local')
    return this.store.getEachNow(keys, out)
  }

  /**
   * Values of `keys`, in order. The reply must fit in `maxBytes`: keys are
   * read a slice at a time, and once their values pass it the call fails
   * with TOOLARGE without reading the rest, so an mget of many large
   * values never holds more than about maxBytes plus one slice.
   */
  mget(keys: string[], maxBytes: number, consistency?: Consistency): Promise<(Value | undefined)[]> {
    return this.read(consistency, () => this.readMany(keys, maxBytes)).catch(siblingsError)
  }

  private async readMany(keys: string[], maxBytes: number): Promise<(Value | undefined)[]> {
    const largest = Math.max(1, this.store.largestValue ?? this.config.maxValueBytes)
    const slice = Math.max(1, Math.min(this.config.tune.mgetSliceKeys, Math.floor(maxBytes / largest)))
    if (slice >= keys.length) return checkMgetBytes(await this.store.getMany(keys), keys.length, maxBytes, this.config)
    const out: (Value | undefined)[] = []
    let bytes = 0
    for (let i = 0; i < keys.length; i += slice) {
      const values = await this.store.getMany(keys.slice(i, i + slice))
      for (const v of values) {
        bytes += v === undefined ? 1 : byteLength(v) + MGET_ITEM_OVERHEAD
        out.push(v)
      }
      if (bytes > maxBytes) throw mgetTooLarge(keys.length, this.config)
    }
    return out
  }

  /** Every concurrent value of a key (none when missing) and the causal context to write with. */
  getAll(key: string, consistency?: Consistency): Promise<GetAllResult> {
    return this.read(consistency, async () => {
      const record = await this.store.getRecord(key)
      if (record === undefined) return { values: [], context: '' }
      const { body, version } = record
      if (body.kind === 'siblings')
        return { values: body.siblings.map((s) => s.value), context: encodeContext(body.context) }
      const context = version ? encodeContext({ [version.origin]: version.counter }) : ''
      return { values: body.kind === 'value' ? [body.value] : [], context }
    })
  }

  /** How many keys this node holds: the store's kept count, no pass over the keys. */
  countKeys(): number {
    this.assertCanServe('local')
    return this.store.keyCount
  }

  /**
   * One page of a scan. The page holds at most `pageSize` entries and at
   * most `pageBytes` of encoded entries (keys, values and their msgpack
   * headers), so a budget taken from the frame limit keeps the reply in
   * one frame; `more` says whether the client should ask again (from
   * after the last key) for the rest. A page always takes its first entry,
   * and a key's concurrent values stay together.
   */
  scanPage(options: ScanOptions, pageSize: number, pageBytes: number, consistency?: Consistency): Promise<ScanPage> {
    return this.read(consistency, () => this.readPage(options, pageSize, pageBytes))
  }

  private async readPage(options: ScanOptions, pageSize: number, pageBytes: number): Promise<ScanPage> {
    const want = options.limit === undefined ? pageSize : Math.min(options.limit, pageSize)
    const entries: [string, Value][] = []
    if (want === 0) return { entries, more: false }
    let bytes = 0
    let more = false
    for await (const entry of this.store.scan({ ...options, limit: want + 1 })) {
      const cost = byteLength(entry[0]) + byteLength(entry[1]) + SCAN_ENTRY_OVERHEAD
      // A key's concurrent values (vclock) stay on one page: the next page starts after the key.
      const full = entries.length >= want || (entries.length > 0 && bytes + cost > pageBytes)
      if (full && entry[0] !== entries[entries.length - 1]?.[0]) {
        more = true
        break
      }
      entries.push(entry)
      bytes += cost
    }
    // A page cut short by the caller's own limit is the end of the scan.
    if (options.limit !== undefined && entries.length >= options.limit) more = false
    return { entries, more }
  }

  // ---- status ------------------------------------------------------------

  /** The seqs the log holds (see LogRange). */
  logRange(): LogRange {
    const newestSeq = this.store.lastSeq
    const oldestSeq = Math.min(this.store.log.start, newestSeq + 1)
    return { oldestSeq, newestSeq, entries: newestSeq - oldestSeq + 1 }
  }

  /** `diskMaxAgeMs`: how old a data-dir size the caller accepts (see DataDirSize.bytes). */
  /**
   * The three figures that say whether nodes hold the same data (GET
   * /convergence): what status says of them, without building the rest of
   * it, so that a harness or a monitor can ask every few milliseconds.
   */
  convergence(): { vv: VersionVectorObject; digest: string | null; lagEntries: number } {
    return {
      vv: this.store.committedVv,
      digest: this.store.keys?.digest.hex ?? null,
      lagEntries: this.mesh?.lagEntries ?? 0,
    }
  }

  status(options: { diskMaxAgeMs?: number } = {}): NodeStatus {
    const stats = this.store.commitStats
    return {
      nodeId: this.nodeId,
      role: this.role,
      epoch: this.store.epoch,
      seq: this.store.lastSeq,
      /** Oldest seq still in the log: a downstream behind it needs a full sync. */
      logStart: this.store.log.start,
      log: this.logRange(),
      keys: this.store.keyCount,
      diskBytes: this.disk.bytes(options.diskMaxAgeMs),
      upstream: this.upstream,
      readOnly: (this.role !== 'master' && this.role !== 'peer') || !this.canWrite(),
      replicas: this.upstreamSide.replicas(),
      failover: this.failover?.status() ?? null,
      address: this.address,
      respAddress: this.respAddress,
      master: this.masterAddress(),
      link: this.downstream
        ? {
            state: this.downstream.state,
            lagEntries: this.downstream.lagEntries,
            lagMs: this.downstream.lagMs,
            upstreamHead: this.downstream.upstreamHead,
            lastHeardMsAgo:
              this.downstream.lastHeardAt === 0 ? null : Math.round(this.clock.now() - this.downstream.lastHeardAt),
            refusal: this.downstream.lastRefusal,
            silenceTimeouts: this.downstream.silenceTimeouts,
            reason: this.downstream.lastSilence,
          }
        : null,
      sync: {
        fullSyncs: this.counters.fullSyncs,
        partialSyncs: this.counters.partialSyncs,
        servedFull: this.served.full,
        servedPartial: this.served.partial,
      },
      readIndex: { waiting: this.readIndex.waiting, ...this.readIndex.stats },
      rollbacks: {
        count: this.counters.rollbacks,
        entries: this.counters.rolledBackEntries,
        lastFile: this.lastRollbackFile,
      },
      clients: this.clientStatus(),
      mode: this.config.mode,
      conflict: this.store.policy.conflict,
      /** Per origin, the highest counter this node holds (its cursors). */
      vv: this.store.committedVv,
      digest: this.store.keys?.digest.hex ?? null,
      records: this.store.keys?.counts ?? null,
      multi: this.mesh?.status() ?? null,
      syncMode: this.config.sync,
      // --sync periodic: what the last fsync covered (writes made before it), and a failed one.
      syncedAt: this.config.sync === 'periodic' ? this.store.syncedAt || null : null,
      syncFailure: this.store.syncFailure,
      uptimeMs: this.clock.wall() - this.startedAt,
      history: this.store.history,
      ttlKeys: this.store.expiry.size,
      commit: {
        groups: stats.groups,
        writes: stats.writes,
        avgGroupSize: stats.groups === 0 ? 0 : Math.round((stats.writes / stats.groups) * 10) / 10,
        largestGroup: stats.largestGroup,
        overlapped: stats.overlapped,
        queued: this.store.queuedWrites,
      },
    }
  }
}

/** A key with several concurrent values read as one: SIBLINGS, carrying them and the context to write with. */
function siblingsError(err: unknown): never {
  if (err instanceof SiblingsError) {
    throw new TandemError(
      'SIBLINGS',
      `the key holds ${err.siblings.length} concurrent values; read them all with getAll (or tandem get), then write with their context`,
      { details: { values: err.siblings.map((s) => s.value), context: encodeContext(err.context) } },
    )
  }
  throw err
}

const toWriteResult = (seq: number): WriteResult => ({ seq })
