import { randomBytes } from 'node:crypto'
import type { MultiStatus } from '@tandem/protocol'
import { TandemError } from '@tandem/protocol'
import type { WebSocket } from 'ws'
import { AckTracker } from '../replication/acks.js'
import type { PeerTls } from '../replication/dial.js'
import { DIGEST_HASH } from '../storage/convergence.js'
import { hlcWallMs } from '../storage/hlc.js'
import { OP_DEL } from '../storage/log-entry.js'
import type { Sibling } from '../storage/record.js'
import type { ConflictResolver } from '../storage/resolver.js'
import type { Store } from '../storage/store.js'
import type { Tuning } from '../tuning.js'
import type { Clock } from '../util/clock.js'
import type { Logger } from '../util/logger.js'
import { ConflictsFile } from './conflicts-file.js'
import { FORGOTTEN_MESSAGE, FORGOTTEN_REASON, ForgottenPeers } from './forgotten.js'
import { LwwResolver } from './lww.js'
import { PeerFeed, type PeerFeedOptions } from './peer-feed.js'
import { PeerLink } from './peer-link.js'
import { type Row, StabilityTracker } from './stability.js'
import { TombstoneCollector } from './tombstone-gc.js'
import { VclockResolver } from './vclock.js'

/**
 * Multi-master: the mesh of peer links of one node and everything that
 * rides on them. Who owns what:
 *
 *   Mesh          one per multi-master node (TandemNode.mesh)
 *   ├─ PeerLink   one per address of --peers: pulls what the peer holds and
 *   │             this node lacks (peer-link.ts)
 *   ├─ PeerFeed   one per peer that dialled this node: pushes to it (peer-feed.ts)
 *   ├─ resolver   LwwResolver or VclockResolver, also the Store's
 *   ├─ stability  the matrix clock: rows heard on links (stability.ts)
 *   ├─ forgotten  origins the operator forgot: not awaited, links refused (forgotten.ts)
 *   ├─ collector  drops tombstones once stable (tombstone-gc.ts)
 *   └─ trimmer    vclock: a key over --max-siblings after peers' writes gets
 *                 a local write that drops its oldest values (vclock.ts)
 *
 * Every node pulls from each of its peers and serves whoever pulls from it,
 * so a mesh, a ring or a tree converges: entries are forwarded whatever
 * their origin and deduplicated by (origin, counter).
 *
 * Duplicates: in a full mesh each write would reach a node once from its
 * origin and once more from every other peer. A feed sends nothing its
 * peer is known to hold: what the peer acked on the feed, what the feed
 * sent, and what the peer's own link to this node reported (trusted only
 * for the same run of the peer's process: `incarnation`). And it does not
 * forward the entries of an origin the peer says it streams from directly
 * (`direct` and `directRuns`, from its hello and acks) while this node
 * serves the same run of that origin's process (pullsFrom): that run holds
 * every write of its origin this node holds, or takes no writes until it
 * has them back (amnesia, peer-link.ts), and streams them to the peer.
 * When that stops (the claim is withdrawn or names another run, the
 * origin's feed here closed) before the peer acked what was skipped, the
 * feed ends its socket so the peer resumes from what it holds.
 *
 * A node restarted from an older copy of its data dir must not issue its
 * lost counters again, though the peer that holds them may be cut off from
 * it and the peer it reaches may never have been forwarded them: a feed's
 * continue / fullsync carries `peersHold` (heldElsewhere), the most of the
 * dialler's own writes any other peer reported holding here.
 *
 * Clocks: a link refuses entries stamped further ahead than
 * --max-clock-offset (peer-link.ts). This node refuses writes (CLOCKSKEW)
 * while its own hybrid clock runs that far ahead of its wall clock, or
 * while its wall clock runs ahead of at least half of its measured peers by
 * 80% of it: the node with the fast clock fences itself and says why. What
 * counts is what a probe proves (peer-link.ts onClock), never half its
 * round trip: a stall while a probe is in flight is not skew.
 */

interface MeshOptions {
  peers: string[]
  conflict: 'lww' | 'vclock'
  maxClockOffsetMs: number
  maxSiblings: number
  authToken?: string
  tls?: PeerTls
  maxFrameBytes: number
  feed: PeerFeedOptions
  /** The node's tunables (see tuning.ts); the links read theirs. */
  tuning: Tuning
}

interface MeshHost {
  readonly store: Store
  readonly logger: Logger
  /** The server's one clock. */
  readonly clock: Clock
}

/** Meta key of the members this node knows (stability.ts): kept across restarts. */
const MEMBERS_META = 'members'

export class Mesh {
  readonly resolver: ConflictResolver
  readonly stability: StabilityTracker
  /** Per peer node id, the highest of this node's own counters it has acked (w=N). */
  readonly acks = new AckTracker()
  readonly links: PeerLink[] = []
  readonly forgotten: ForgottenPeers
  private readonly feeds = new Set<PeerFeed>()
  /**
   * Per peer origin, what the last run of its process that pulled from this
   * node acked holding, kept once its feed closes: a peer gone (or cut off)
   * still holds those writes, and heldElsewhere must keep counting them.
   * Dropped when the origin is forgotten; one entry per member.
   */
  private readonly ackedByPeer = new Map<string, Record<string, number>>()
  private readonly collector: TombstoneCollector
  private readonly conflicts: ConflictsFile
  private readonly trimQueue = new Map<string, Buffer>()
  private trimming = false
  private unsubscribe: () => void = () => {}
  private digestAlarm: string | null = null
  readonly stats = { trims: 0, digestAlarms: 0 }
  private startedAt = 0
  /** This run of the node's process: what one link reports, another trusts only for the same run. */
  readonly incarnation = randomBytes(8).toString('hex')

  constructor(
    private readonly host: MeshHost,
    readonly options: MeshOptions,
  ) {
    const store = host.store
    this.conflicts = new ConflictsFile(store.dataDir)
    this.forgotten = new ForgottenPeers(store)
    this.resolver =
      options.conflict === 'lww'
        ? new LwwResolver()
        : new VclockResolver(options.maxSiblings, (key, dropped, by) => this.onDropped(key, dropped, by))
    store.resolver = this.resolver
    store.onOverCap = (keys) => this.onOverCap(keys)
    this.stability = new StabilityTracker(
      store.origin,
      () => store.committedVv,
      () => this.links.filter((l) => l.origin === null).map((l) => l.addr),
      () => this.peerOrigins(),
      () => this.saveMembers(),
    )
    this.collector = new TombstoneCollector(
      store,
      this.stability,
      host.logger,
      options.tuning.tombstoneCollectMs,
      options.tuning.tombstonePageKeys,
    )
  }

  /** Reads the forgotten origins: before start(), so that no link of theirs is taken. */
  async load(): Promise<void> {
    await this.forgotten.load()
    for (const origin of this.forgotten.list()) this.stability.forget(origin)
    this.stability.remember((await this.host.store.getMeta<string[]>(MEMBERS_META)) ?? [])
  }

  /**
   * Keeps the members known now in meta (see stability.ts), one write at a
   * time: a member learnt while one is under way is in the next, which
   * holds the whole set.
   */
  private saveMembers(): void {
    if (this.membersWrite !== null || this.closing) {
      this.membersDirty = true
      return
    }
    this.membersDirty = false
    const members = [...this.stability.members()].filter((o) => o !== this.host.store.origin).sort()
    this.membersWrite = this.host.store
      .setMeta(MEMBERS_META, members)
      .catch((err) => this.host.logger.warn('could not keep the members in meta', { error: String(err) }))
      .finally(() => {
        this.membersWrite = null
        if (this.membersDirty) this.saveMembers()
      })
  }
  private membersWrite: Promise<void> | null = null
  private membersDirty = false
  private closing = false

  /** Dials every peer (saying this node serves at `address`) and starts collecting tombstones. */
  start(address: string): void {
    const host = this.host
    this.startedAt = this.host.clock.now()
    for (const addr of this.options.peers) {
      this.links.push(
        new PeerLink(addr, {
          store: host.store,
          logger: host.logger,
          resolver: this.resolver,
          conflict: this.options.conflict,
          address,
          authToken: this.options.authToken,
          tls: this.options.tls,
          maxFrameBytes: this.options.maxFrameBytes,
          maxClockOffsetMs: this.options.maxClockOffsetMs,
          silenceTimeoutMs: this.options.feed.replTimeoutMs,
          clock: host.clock,
          digest: () => this.digestHex(),
          rows: () => this.stability.gossip(),
          onRows: (rows) => this.onRows(rows),
          onApplied: () => this.stability.advance(),
          isForgotten: (origin) => this.forgotten.has(origin),
          tuning: this.options.tuning,
          incarnation: this.incarnation,
          direct: () => this.directOrigins(),
          directRuns: () => this.directRuns(),
        }),
      )
    }
    this.unsubscribe = host.store.onCommit(() => {
      for (const feed of this.feeds) feed.wake()
    })
    this.collector.start()
  }

  /** Takes a peer that dialled this node (already authenticated). */
  accept(ws: WebSocket): void {
    const feed = new PeerFeed(
      ws,
      {
        store: this.host.store,
        logger: this.host.logger,
        conflict: this.options.conflict,
        authToken: this.options.authToken,
        clock: this.host.clock,
        digest: () => this.digestHex(),
        rows: () => this.stability.gossip(),
        onAck: (f, vv, rows) => this.onAck(f, vv, rows),
        incarnation: this.incarnation,
        reportOf: (f) => this.reportOf(f),
        isForgotten: (origin) => this.forgotten.has(origin),
        pullsFrom: (origin, run) => this.pullsFrom(origin, run),
        heldElsewhere: (origin) => this.heldElsewhere(origin),
        vvFrameMs: this.options.tuning.peerVvFrameMs,
        framesInFlight: this.options.tuning.peerFramesInFlight,
      },
      this.options.feed,
      (f) => {
        this.feeds.delete(f)
        this.acks.forget(f)
        if (this.feeds.size === 0) this.host.store.log.keepTail(false)
      },
    )
    this.feeds.add(feed)
    this.host.store.log.keepTail(true)
  }

  /**
   * The origins this node's links have heard their peers name themselves.
   * (A peer that only dials this node reaches the others' writes through
   * whoever pulls from it, whose rows name it: its own acks' rows make it a
   * member too.)
   */
  private *peerOrigins(): Iterable<string> {
    for (const link of this.links) if (link.origin !== null) yield link.origin
  }

  /** The origins of the links that stream from their peer now (see PeerLink.direct). */
  private directOrigins(): string[] {
    const out: string[] = []
    for (const link of this.links) if (link.direct && link.origin !== null) out.push(link.origin)
    return out
  }

  /** Per origin of directOrigins(), the run of its process the link streams from. */
  private directRuns(): Record<string, string> {
    const out: Record<string, string> = {}
    for (const link of this.links) {
      if (link.direct && link.origin !== null && link.claimRun !== null) out[link.origin] = link.claimRun
    }
    return out
  }

  /** Whether `origin`'s run `run` pulls from this node now (a feed of this node streams to it). */
  private pullsFrom(origin: string, run: string): boolean {
    for (const feed of this.feeds) {
      if (feed.origin === origin && feed.incarnation === run && feed.state === 'streaming') return true
    }
    return false
  }

  /**
   * The most of `origin`'s own writes that another peer (not forgotten)
   * reported holding: on this node's link to it (its committed version
   * vector) or in its last acks on a feed (kept once the feed closes).
   * Feeds say it in continue / fullsync and again in every heartbeat.
   */
  private heldElsewhere(origin: string): number {
    let most = 0
    for (const link of this.links) {
      if (link.origin === null || link.origin === origin || this.forgotten.has(link.origin)) continue
      most = Math.max(most, link.peerVV[origin] ?? 0)
    }
    for (const [peer, acked] of this.ackedByPeer) {
      if (peer === origin || this.forgotten.has(peer)) continue
      most = Math.max(most, acked[origin] ?? 0)
    }
    return most
  }

  /** What the feed's peer reported, on this node's link to it, of the same run as the feed's hello. */
  private reportOf(feed: PeerFeed): Record<string, number> | null {
    for (const link of this.links) {
      if (link.origin === feed.origin) return link.trustedReport(feed.incarnation)
    }
    return null
  }

  private onAck(feed: PeerFeed, vv: Record<string, number>, rows: Record<string, Row>): void {
    if (!this.forgotten.has(feed.origin)) this.ackedByPeer.set(feed.origin, vv)
    this.onRows(rows)
    this.stability.observe(feed.origin, { vv, complete: rows[feed.origin]?.complete ?? false })
    // A peer holds this node's writes up to there (never past what this node has written).
    const store = this.host.store
    this.acks.ack(feed, Math.min(vv[store.origin] ?? 0, store.vv.get(store.origin)))
  }

  private onRows(rows: Record<string, Row>): void {
    for (const origin in rows) this.stability.observe(origin, rows[origin])
    this.checkDigest()
  }

  digestHex(): string {
    return this.host.store.keys?.digest.hex ?? ''
  }

  /**
   * Equal version vectors with unequal digests means the nodes hold
   * different data for the same writes. Asked at every ack a feed takes:
   * the digest (a sum over 256 buckets, written out anew after each group
   * that changes a key) is read only when a link's vector equals this
   * node's, which under writes it seldom does.
   */
  private checkDigest(): void {
    const vv = this.host.store.committedVv
    let digest: string | null = null
    for (const link of this.links) {
      // A digest of another hash (a peer of another build, in a rolling upgrade) says nothing of the data.
      if (!link.peerDigest || link.peerDigestHash !== DIGEST_HASH || !sameVv(link.peerDigestVV, vv)) continue
      digest ??= this.digestHex()
      if (link.peerDigest !== digest) {
        const alarm = `peer ${link.nodeId} at ${link.addr} holds the same writes (version vector) but its digest is ${link.peerDigest}, this node's ${digest}`
        if (this.digestAlarm !== alarm) {
          this.stats.digestAlarms++
          this.host.logger.error('convergence digests differ at equal version vectors', { alarm })
        }
        this.digestAlarm = alarm
        return
      }
    }
  }

  // ---- forget ------------------------------------------------------------

  /**
   * `tandem forget ORIGIN`: the operator says that peer is gone for good
   * (or comes back only wiped, under a new origin), so its row is no longer
   * awaited and tombstones it held up can go; from now on this node refuses
   * every link whose other end names it. Run on each node (the CLI's --all
   * walks the group): a node that has not forgotten it keeps waiting, which
   * is safe. Refused: this node's own origin, an origin it never knew of,
   * and one with a link up right now unless `force` (a node being replaced
   * while its process still runs): those links are then closed.
   */
  async forget(origin: string, force: boolean): Promise<{ origin: string; forgotten: string[]; closedLinks: number }> {
    const store = this.host.store
    if (origin === store.origin) {
      throw new TandemError('INVALID', `${origin} is this node's own origin; a node cannot forget itself`)
    }
    if (!this.forgotten.has(origin)) {
      const known = this.stability.members()
      if (!known.has(origin) && !(origin in store.committedVv)) {
        throw new TandemError(
          'INVALID',
          `unknown origin ${origin}: not a member this node knows of (members: ${[...known].sort().join(', ')})`,
        )
      }
      const live = this.liveLinks(origin)
      if (live.length > 0 && !force) {
        throw new TandemError(
          'INVALID',
          `origin ${origin} has a link up right now (${live.join(', ')}): a live peer is not gone; stop it first, or add --force to forget it anyway (its links are closed)`,
        )
      }
      await this.forgotten.add(origin)
      this.stability.forget(origin)
      this.ackedByPeer.delete(origin)
      this.host.logger.warn('forgot a peer origin: its row is no longer awaited and its links are refused', {
        origin,
        force,
      })
    }
    let closedLinks = 0
    for (const feed of this.feeds) {
      if (feed.origin === origin && feed.state !== 'closed') {
        feed.close(4403, `${FORGOTTEN_REASON}: ${FORGOTTEN_MESSAGE}`)
        closedLinks++
      }
    }
    for (const link of this.links) if (link.origin === origin && isUp(link) && link.drop()) closedLinks++
    return { origin, forgotten: this.forgotten.list(), closedLinks }
  }

  /** The links with `origin` at their other end that are up now, for the refusal's message. */
  private liveLinks(origin: string): string[] {
    const out: string[] = []
    for (const link of this.links) {
      if (link.origin === origin && isUp(link)) out.push(`pulling from ${link.addr}`)
    }
    for (const feed of this.feeds) {
      if (feed.origin === origin && feed.state !== 'closed') out.push(`pulling from this node (${feed.addr})`)
    }
    return out
  }

  // ---- writes ------------------------------------------------------------

  /**
   * Throws when this node must not take writes now: CLOCKSKEW for a clock
   * running ahead; UNAVAILABLE right after start, until a peer has answered
   * (or the tunable peerStartupGraceMs passed with none reachable), and while a peer
   * holds more of this node's own writes than it does (its data dir was
   * restored from a backup: it would reuse their counters).
   */
  assertCanWrite(): void {
    const reason = this.clockFence()
    if (reason) throw new TandemError('CLOCKSKEW', reason)
    if (
      this.links.length > 0 &&
      this.host.clock.now() - this.startedAt < this.options.tuning.peerStartupGraceMs &&
      !this.links.some((l) => l.origin !== null && l.clockMeasuredAt > 0)
    ) {
      throw new TandemError(
        'UNAVAILABLE',
        'this node has just started and is checking its clock and counters with its peers; it takes writes once one answers',
      )
    }
    const store = this.host.store
    for (const link of this.links) {
      if (link.ownHeldByPeer > store.vv.get(store.origin)) {
        throw new TandemError(
          'UNAVAILABLE',
          `peer ${link.addr} holds, or heard another peer hold, this node's writes up to #${link.ownHeldByPeer} and this node only up to #${store.vv.get(store.origin)} (its data dir was restored from an older copy, or lost); it takes writes again once it has them back`,
        )
      }
    }
  }

  /**
   * A client's session order: its next write here is stamped after `after`,
   * the greatest stamp it was given by any peer, so a delete that follows a
   * put made on a peer with a faster clock wins over it even before this
   * node hears of the put. A stamp further ahead of this node's clock than
   * --max-clock-offset would fence it (see clockFence): refused, nothing is
   * applied, and the client tries another peer.
   */
  orderAfter(after: number): void {
    const store = this.host.store
    const ahead = hlcWallMs(after) - store.now()
    const max = this.options.maxClockOffsetMs
    if (ahead > max) {
      throw new TandemError(
        'CLOCKSKEW',
        `the client has seen a write stamped ${ahead} ms ahead of this node's clock (more than --max-clock-offset ${max} ms); this node cannot order its write after it`,
      )
    }
    store.hlc.observe(after)
  }

  /** Why this node's clock keeps it from taking writes, or null. */
  clockFence(): string | null {
    const max = this.options.maxClockOffsetMs
    const ahead = this.host.store.hlc.aheadOfWallMs()
    if (ahead > max) {
      return `this node's hybrid clock is ${ahead} ms ahead of its wall clock (more than --max-clock-offset ${max} ms): it takes no writes until its clock catches up`
    }
    const now = this.host.clock.now()
    const fresh = this.options.tuning.peerClockOffsetFreshMs
    // Counted in one pass with no arrays made: every client write asks this.
    let measured = 0
    let behind = 0
    let worst = Number.NEGATIVE_INFINITY
    for (const l of this.links) {
      if (Number.isNaN(l.clockOffsetMs) || now - l.clockMeasuredAt >= fresh) continue
      measured++
      // A peer's offset is its clock minus this node's: negative when this node is proven to run ahead.
      if (-l.clockOffsetMs > 0.8 * max) {
        behind++
        if (-l.clockOffsetMs > worst) worst = -l.clockOffsetMs
      }
    }
    if (measured === 0) return null
    if (behind * 2 >= measured) {
      return `this node's clock runs at least ${worst} ms ahead of ${behind} of its ${measured} peers (more than 80% of --max-clock-offset ${max} ms): it takes no writes until its clock is fixed`
    }
    return null
  }

  // ---- sibling cap (vclock) ---------------------------------------------

  private onDropped(key: Uint8Array, dropped: Sibling[], by: { origin: string; originSeq: number; hlc: number }): void {
    this.host.logger.warn('a key passed --max-siblings: its oldest values were dropped to the conflicts file', {
      key: Buffer.from(key).toString('utf8'),
      dropped: dropped.length,
      max: this.options.maxSiblings,
    })
    this.conflicts.record(key, dropped, by)
  }

  private onOverCap(keys: Buffer[]): void {
    for (const key of keys) {
      if (this.trimQueue.size >= this.options.tuning.siblingTrimQueue) break
      this.trimQueue.set(key.toString('latin1'), key)
    }
    void this.trim()
  }

  /** Writes, for each key over the cap, a delete with an empty context: it drops the oldest values at this origin. */
  private async trim(): Promise<void> {
    if (this.trimming) return
    this.trimming = true
    try {
      while (this.trimQueue.size > 0) {
        const [name, key] = this.trimQueue.entries().next().value as [string, Buffer]
        this.trimQueue.delete(name)
        try {
          await this.host.store.write([[OP_DEL, key.toString('utf8'), { c: {} }]])
          this.stats.trims++
        } catch (err) {
          this.host.logger.warn('could not trim a key over --max-siblings', { err: (err as Error).message })
        }
      }
    } finally {
      this.trimming = false
    }
  }

  // ---- status ------------------------------------------------------------

  /** Entries the peers hold that this node lacks, as far as its links know (status peers[].lagEntries, added up). */
  get lagEntries(): number {
    let n = 0
    for (const link of this.links) n += link.lagEntries
    return n
  }

  status(): MultiStatus {
    const store = this.host.store
    const feedsByNode = new Map([...this.feeds].map((f) => [f.nodeId, f]))
    const keys = store.keys?.counts
    return {
      conflict: this.options.conflict,
      origin: store.origin,
      vv: store.committedVv,
      digest: this.digestHex(),
      digestHash: DIGEST_HASH,
      digestAlarm: this.digestAlarm,
      maxClockOffsetMs: this.options.maxClockOffsetMs,
      clockFence: this.clockFence(),
      peers: this.links.map((l) => {
        const feed = l.nodeId ? feedsByNode.get(l.nodeId) : undefined
        return {
          addr: l.addr,
          nodeId: l.nodeId,
          origin: l.origin,
          link: l.state,
          reason: l.reason,
          lagEntries: l.lagEntries,
          lagMs: l.lagMs,
          clockOffsetMs: Number.isNaN(l.clockOffsetMs) ? null : l.clockOffsetMs,
          lastHeardMsAgo: l.lastHeardAt === 0 ? null : Math.round(this.host.clock.now() - l.lastHeardAt),
          vv: l.peerVV,
          digest: l.peerDigest,
          digestHash: l.peerDigestHash,
          snapshots: l.stats.snapshots,
          clockPauses: l.stats.clockPauses,
          silenceTimeouts: l.stats.silenceTimeouts,
          vvFrames: { received: l.stats.vvFrames, merged: l.stats.vvFramesMerged },
          joinedFrames: l.stats.framesJoined,
          applyHolds: { count: l.stats.applyHolds, ms: Math.round(l.stats.applyHeldMs) },
          pulling: feed
            ? {
                state: feed.state,
                ackedVv: feed.acked,
                direct: feed.directOrigins(),
                skipping: feed.skipping(),
                filtered: feed.stats.filtered,
                skipped: feed.stats.skipped,
                directSkipped: feed.stats.directSkipped,
                vvFrames: feed.stats.vvFrames,
                frames: feed.stats.frames,
                heldBack: feed.stats.heldBack,
              }
            : null,
        }
      }),
      tombstones: {
        count: keys?.tombstones ?? 0,
        collected: this.collector.stats.collected,
        passes: this.collector.stats.passes,
        oldestAgeMs: this.collector.oldestAgeMs(),
        blockedBy: this.collector.blockedBy,
      },
      siblings: {
        keys: keys?.siblingKeys ?? 0,
        max: keys?.maxSiblings ?? 0,
        dropped: this.resolver instanceof VclockResolver ? this.resolver.stats.dropped : 0,
        trims: this.stats.trims,
      },
      lwwLost: this.resolver instanceof LwwResolver ? this.resolver.stats.lost : 0,
      received: this.links.reduce((sum, l) => sum + l.stats.received, 0),
      duplicates: store.duplicateEntries,
      damaged: { skipped: store.damagedSkips, keys: [...store.damagedKeys.keys()] },
      members: [...this.stability.members()],
      forgotten: this.forgotten.list(),
    }
  }

  async close(): Promise<void> {
    this.closing = true
    this.unsubscribe()
    this.collector.stop()
    for (const feed of this.feeds) feed.close(1001, 'node shutting down')
    await Promise.all(this.links.map((l) => l.stop()))
    this.acks.failAll(new TandemError('UNAVAILABLE', 'node is shutting down'))
    await this.conflicts.close()
    // A member learnt last is written before the store closes (one still dirty waits for the next run's handshake).
    await this.membersWrite
  }
}

const isUp = (link: PeerLink) => link.state === 'streaming' || link.state === 'merging'

/** Whether two version vectors name the same counters (an origin at 0 is one not named). */
function sameVv(a: Record<string, number>, b: Record<string, number>): boolean {
  for (const k in a) if (a[k] > 0 && b[k] !== a[k]) return false
  for (const k in b) if (b[k] > 0 && a[k] !== b[k]) return false
  return true
}
