import { type NodeStatus, TandemError } from '@tandem/protocol'
import type { WatchHub } from './api/watch.js'
import type { AckTracker } from './replication/acks.js'
import type { Downstream } from './replication/downstream.js'
import type { ReadIndex } from './replication/read-index.js'
import type { Topology } from './replication/topology.js'
import type { Upstream } from './replication/upstream.js'
import type { Store } from './storage/store.js'
import type { Logger } from './util/logger.js'

export type Role = NodeStatus['role']

/**
 * The node's role and its transitions, one at a time.
 *
 *                 takeOver(epoch) / becomeMaster(why)
 *   replica  ─────────────────────────────────────────▶  master
 *      ▲  ◀──────────────────── follow(upstream) ──────────  │
 *      │  ◀──── stepDown(epoch): replica, fenced ───────────┘
 *      └── follow(upstream), stopFollowing(), resync()
 *
 *   witness, peer: fixed at start, never change.
 *
 * `fenced` marks a replica that stepped down for a newer epoch and follows
 * no master yet (its writes get FENCED). Transitions that wait (stopping
 * the old link, beginning an epoch) run serially: a heartbeat from a new
 * master and an election result can arrive together. stepDown does not
 * wait its turn: a newer epoch must stop writes at once.
 *
 * What a transition does to the rest of the node (its downstreams, watches,
 * waiting writes and reads) is done here, so that every path into a role
 * does the same.
 */

/** The roles each role may change to. */
const NEXT: Record<Role, readonly Role[]> = {
  master: ['master', 'replica'],
  replica: ['master', 'replica'],
  witness: [],
  peer: [],
}

interface RolesHost {
  readonly store: Store
  readonly logger: Logger
  readonly topology: Topology
  /** HOST:PORT others reach this node at. */
  readonly address: string
  readonly nodeId: string
  /** Serves this node's log to its downstreams. */
  readonly upstreamSide: Upstream
  readonly watchers: WatchHub
  readonly acks: AckTracker
  readonly readIndex: ReadIndex
  /**
   * Whether the master is learnt from fail-over heartbeats (a `--cluster`
   * group), not from the upstream: then a new upstream does not clear it.
   */
  readonly inGroup: boolean
  /** Opens a replication link to `upstream`. */
  dial(upstream: string): Downstream
}

export class Roles {
  /** Set when this node stepped down for a newer epoch and follows no master yet. */
  fenced = false
  /** Follows `topology.upstream` while this node is a replica. */
  downstream: Downstream | null = null
  /** The newest epoch this node has heard of (its own, or one it stepped down for). */
  newestEpoch = 0
  private current: Role
  private transitions: Promise<void> = Promise.resolve()

  constructor(
    private readonly host: RolesHost,
    initial: Role,
  ) {
    this.current = initial
  }

  get role(): Role {
    return this.current
  }

  private enter(role: Role): void {
    if (!NEXT[this.current].includes(role)) {
      throw new TypeError(`a ${this.current} cannot become a ${role}`)
    }
    this.current = role
  }

  /** The upstream this node replicates from now, if it is a replica. */
  following(): string | null {
    return this.current === 'replica' ? this.host.topology.upstream : null
  }

  private serially(change: () => Promise<void>): Promise<void> {
    const next = this.transitions.then(change)
    this.transitions = next.catch(() => {})
    return next
  }

  /** Stops the replication link, if any, and forgets the upstream. */
  private async leaveUpstream(): Promise<void> {
    await this.downstream?.stop()
    this.downstream = null
    this.host.topology.upstream = null
  }

  /** Fail-over made this node master of `epoch`: clients are told. */
  takeOver(epoch: number, why: string): Promise<void> {
    return this.serially(async () => {
      const { host } = this
      await this.leaveUpstream()
      this.fenced = false
      await host.store.beginEpoch(epoch, host.nodeId, why)
      this.enter('master')
      host.upstreamSide.historyChanged()
      host.watchers.roleChanged()
      host.logger.info('became master', { epoch, startSeq: host.store.lastSeq + 1 })
      host.topology.announce(host.address, epoch)
    })
  }

  /**
   * Takes writes from now on. A node whose current epoch was begun by
   * another node (it was a replica) starts a new epoch first: two masters
   * must never write the same epoch, or their logs could differ at the same
   * seq without the histories showing it.
   */
  becomeMaster(why: string): Promise<void> {
    return this.serially(async () => {
      const { host } = this
      await this.leaveUpstream()
      if (!host.inGroup) host.topology.master = null
      const history = host.store.history
      const last = history[history.length - 1]
      if (!last || last.by !== host.nodeId || why !== 'start') {
        // Past any epoch it stepped down for, or two masters would share a number.
        const epoch = await host.store.beginEpoch(Math.max(host.store.epoch, this.newestEpoch) + 1, host.nodeId, why)
        host.logger.info('began a new epoch as master', { epoch: epoch.epoch, startSeq: epoch.startSeq, why })
        host.upstreamSide.historyChanged()
      }
      this.enter('master')
      host.watchers.roleChanged()
    })
  }

  /** Replicates from `upstream` from now on (a no-op when already streaming from it). */
  follow(upstream: string): Promise<void> {
    return this.serially(() => this.startFollowing(upstream))
  }

  private async startFollowing(upstream: string): Promise<void> {
    const { host } = this
    if (upstream === host.address) throw new TandemError('INVALID', 'a node cannot replicate from itself')
    if (this.current === 'replica' && host.topology.upstream === upstream && this.downstream && !this.fenced) return
    if (this.current === 'witness') {
      throw new TandemError('INVALID', 'a witness stores no data and follows no master')
    }
    this.enter('replica')
    this.fenced = false
    host.topology.upstream = upstream
    if (!host.inGroup) host.topology.master = null
    host.watchers.roleChanged()
    await this.downstream?.stop()
    this.downstream = host.dial(upstream)
    host.logger.info('following upstream', { upstream })
  }

  /**
   * A replica whose data must be thrown away (a damaged record): stops its
   * link, runs `discard`, and follows the same upstream again, which then
   * sends a full sync. Nothing happens unless this node is a replica with
   * an upstream.
   */
  resync(discard: (upstream: string) => Promise<void>): Promise<void> {
    return this.serially(async () => {
      const upstream = this.host.topology.upstream
      if (this.current !== 'replica' || upstream === null) return
      await this.downstream?.stop()
      this.downstream = null
      await discard(upstream)
      await this.startFollowing(upstream)
    })
  }

  /** Stops following the current upstream; resolves once what was received is applied. */
  stopFollowing(): Promise<void> {
    return this.serially(async () => {
      if (this.current !== 'replica' || this.downstream === null) return
      await this.leaveUpstream()
      // What was received before the stop is applied, so the log is final.
      await this.host.store.idle()
    })
  }

  /** A newer epoch exists: stop taking writes now, before anything else. */
  stepDown(epoch: number): void {
    if (this.current !== 'master') return
    const { host } = this
    this.enter('replica')
    this.fenced = true
    // These writes are committed here and may or may not survive on the new
    // master: UNCERTAIN, so that clients do not silently send them again.
    host.acks.failAll(
      new TandemError(
        'UNCERTAIN',
        `a newer epoch (${epoch}) exists and this node stepped down before the write reached enough replicas; it may or may not survive`,
      ),
    )
    host.readIndex.failAll(
      new TandemError('FENCED', `a newer epoch (${epoch}) exists and this node stepped down; read from the new master`),
    )
    host.upstreamSide.disconnectAll('this node stepped down')
    host.watchers.roleChanged()
    host.logger.warn('stepped down', { epoch })
  }
}
