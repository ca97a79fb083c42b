import {
  DATA_FORMAT,
  decodeFrame,
  encodeFrame,
  formatOf,
  olderReader,
  type PeerHello,
  pullerMessageSchema,
} from '@tandem/protocol'
import type { WebSocket } from 'ws'
import type { AckSource } from '../replication/acks.js'
import { Feed, type FeedTiming } from '../replication/feed.js'
import { framesUnder } from '../replication/frame-limit.js'
import { proofHolds, proveToken } from '../replication/peer-auth.js'
import { peekIdentity, readForApply } from '../storage/entry-scan.js'
import { NO_ORIGIN } from '../storage/log-entry.js'
import type { Store } from '../storage/store.js'
import { VersionVector, vvCovers } from '../storage/version-vector.js'
import type { Clock } from '../util/clock.js'
import type { Logger } from '../util/logger.js'
import { FORGOTTEN_MESSAGE, FORGOTTEN_REASON } from './forgotten.js'
import type { Row } from './stability.js'

/**
 * The pushing side of a peer link: a peer dialled this node to pull what it
 * lacks. One feed per connected peer, owned by the Mesh.
 *
 *   challenge -> hello (its proof checked, see replication/peer-auth.ts) ->
 *   welcome; then, from its version vector: -> continue from the newest resume point it
 *   covers (WriteLog.resumeFrom), or fullsync: a snapshot of the data with
 *   per-key metadata and tombstones, and the version vector it holds, which
 *   the peer joins into its own data (never replacing it); then every entry
 *   of this node's log from there on, whatever its origin, except those the
 *   peer already holds (by origin and counter) and this node's housekeeping.
 *
 * What the peer holds (`known`) is what it said on this socket, what this
 * feed sent it, and what it reported on this node's link to it when that
 * link speaks with the same run of its process (Mesh.reportOf): never a
 * report from an older run, which may claim writes it lost.
 *
 * The origins the peer says it streams from directly (`direct`, in hello
 * and acks) are shown in status, and their entries are still forwarded:
 * skipping them on that claim alone let an origin restarted from an older
 * copy of its data dir, cut off from this node, take the peer's lagging
 * count of its writes as all it had written, and issue its lost counters
 * again. Skipping them safely needs the origin's own report on this node's
 * link to it, of the run that holds them, and a socket closed when that
 * report regresses.
 *
 * Entries go out as this node stored them; the peer re-places them in its
 * own log and keeps their identity bytes (see log-entry.ts). Backpressure
 * and timeouts are the replication feed's (upstream.ts).
 */

interface PeerFeedHost {
  readonly store: Store
  readonly logger: Logger
  readonly conflict: 'lww' | 'vclock'
  /** The shared token a peer must prove it holds (none: any peer may pull). */
  readonly authToken?: string
  /** The server's one clock. */
  readonly clock: Clock
  digest(): string
  rows(): Record<string, Row>
  /** A peer reported what it holds (an ack): stability rows, w=N, lag. */
  onAck(peer: PeerFeed, vv: Record<string, number>, rows: Record<string, Row>): void
  /** This run of this node's process. */
  readonly incarnation: string
  /** What the peer reported holding on this node's link to it, when said by the run of `feed.incarnation`. */
  reportOf(feed: PeerFeed): Record<string, number> | null
  /** Whether the operator forgot this origin (forgotten.ts): its links are refused. */
  isForgotten(origin: string): boolean
}

export interface PeerFeedOptions extends FeedTiming {
  snapshotChunkBytes: number
}

export class PeerFeed extends Feed implements AckSource {
  origin = ''
  /** What the peer holds, as it said in hello and its acks, and as this feed sent since. */
  readonly known = new VersionVector()
  /** The peer's version vector as of its last ack. */
  acked: Record<string, number> = {}
  /** The run of the peer's process that said hello (undefined: a peer that does not say). */
  incarnation: string | undefined
  /**
   * Entries of this node's log the feed passed over, the peer holding them:
   * read one by one and dropped (`filtered`), or stepped over unread
   * (`skipped`, see skipHeld).
   */
  readonly stats = { filtered: 0, skipped: 0 }
  /** Origins the peer says it streams from their own node (status only: their entries are still forwarded). */
  private direct = new Set<string>()
  protected readonly linkName = 'peer link'
  protected readonly onGap = 'the peer must reconnect for a snapshot'

  constructor(
    ws: WebSocket,
    private readonly host: PeerFeedHost,
    private readonly options: PeerFeedOptions,
    private readonly onGone: (feed: PeerFeed) => void,
  ) {
    super(ws, host.store, host.logger, host.clock, options, 'peer')
  }

  protected onClosed(): void {
    this.onGone(this)
  }

  protected onMessage(data: Buffer, isBinary: boolean): void {
    this.lastHeardAt = this.host.clock.now()
    let parsed: ReturnType<typeof pullerMessageSchema.safeParse>
    try {
      parsed = pullerMessageSchema.safeParse(isBinary ? decodeFrame(data) : null)
    } catch {
      return this.close(1007, 'malformed peer frame')
    }
    if (!parsed.success) return this.close(1007, `invalid peer message: ${parsed.error.issues[0]?.message}`)
    const message = parsed.data
    switch (message.type) {
      case 'hello': {
        if (this.state !== 'handshake' || this.nodeId) return this.close(1008, 'hello sent twice')
        const { authToken } = this.host
        if (!proofHolds(authToken, 'peer', 'dialer', this.nonce, message.nonce, message.proof)) {
          this.log.warn('refusing a peer that could not prove it holds the auth token', { addr: message.addr })
          this.flow.send({ type: 'refuse', reason: 'unauthorized', message: 'wrong or missing auth token' })
          return this.close(4401, 'unauthorized')
        }
        this.flow.send({ type: 'welcome', proof: proveToken(authToken, 'peer', 'listener', this.nonce, message.nonce) })
        this.inbox.push(() => this.onHello(message))
        return
      }
      case 'ack':
        if (!this.origin) return
        this.acked = message.vv
        this.known.join(message.vv)
        this.host.onAck(this, message.vv, message.rows)
        this.onDirect(message.direct ?? [])
        return
      case 'clock':
        this.flow.send({ type: 'clock', t0: message.t0, t1: this.host.clock.wall() })
        return
    }
  }

  private async onHello(hello: PeerHello): Promise<void> {
    this.nodeId = hello.nodeId
    this.origin = hello.origin
    this.incarnation = hello.incarnation
    this.direct = new Set(hello.direct)
    this.frameLimit = hello.maxFrameBytes ?? Number.POSITIVE_INFINITY
    this.addr = hello.addr
    this.log = this.host.logger.child({ peer: hello.nodeId, peerAddr: hello.addr })
    if (hello.origin === this.store.origin) return this.refuse('self', 'a node cannot be its own peer')
    if (this.host.isForgotten(hello.origin)) return this.refuse(FORGOTTEN_REASON, FORGOTTEN_MESSAGE)
    if (formatOf(hello.format) < DATA_FORMAT) return this.refuse('format', olderReader('peer', hello.format))
    if (hello.conflict !== this.host.conflict) {
      return this.refuse(
        'conflict',
        `this node resolves conflicts with --conflict ${this.host.conflict}, the peer with ${hello.conflict}; every peer of a group must use the same`,
      )
    }
    this.known.join(hello.vv)
    this.acked = hello.vv
    const from = await this.store.log.resumeFrom((checkpoint) => vvCovers(hello.vv, checkpoint))
    if (this.state === 'closed') return
    if (from === null) return this.fullSync()
    this.log.info('peer resumes from the log', { fromSeq: from, head: this.store.lastSeq })
    this.cursor = from
    this.pin = this.store.log.pin(from)
    this.flow.send({
      type: 'continue',
      fromSeq: from,
      nodeId: this.store.nodeId,
      origin: this.store.origin,
      vv: this.store.committedVv,
      time: this.host.clock.wall(),
      incarnation: this.host.incarnation,
    })
    this.state = 'streaming'
    this.pumpSafely()
  }

  private refuse(reason: string, message: string): void {
    this.log.warn('refusing peer', { reason, message })
    this.flow.send({ type: 'refuse', reason, message })
    this.close(1008, `refused: ${reason}`)
  }

  /** A snapshot the peer joins into its data, then the log after it (pinned meanwhile). */
  private async fullSync(): Promise<void> {
    this.state = 'fullsync'
    const snapshot = this.store.snapshot()
    try {
      const seq = await snapshot.seq
      const clock = await snapshot.clock
      this.pin = this.store.log.pin(seq + 1)
      this.log.info('peer needs a snapshot', { seq })
      const started = this.host.clock.now()
      this.flow.send({
        type: 'fullsync',
        seq,
        nodeId: this.store.nodeId,
        origin: this.store.origin,
        clock,
        time: this.host.clock.wall(),
        incarnation: this.host.incarnation,
      })
      const total = await this.sendSnapshot(snapshot, this.options.snapshotChunkBytes)
      if (total === null) return
      this.flow.send({ type: 'snapshotEnd', seq })
      this.log.info('snapshot sent to peer', { seq, keys: total, ms: Math.round(this.host.clock.now() - started) })
      this.known.join(clock.vv)
      this.cursor = seq + 1
      this.state = 'streaming'
      this.pumpSafely()
    } finally {
      await snapshot.close()
    }
  }

  /** The peer's new list of origins it streams directly (shown in status; see the class comment). */
  private onDirect(origins: string[]): void {
    this.direct = new Set(origins)
  }

  /** The origins the peer says it streams directly, for status. */
  directOrigins(): string[] {
    return [...this.direct]
  }

  /**
   * Skips to the newest resume point when the peer holds every write its
   * version vector names: each entry up to it is then one sendBatch would
   * drop (see WriteLog.newestResume). After a partition a node's log holds,
   * behind its own writes, every write it took from the peer, applied as
   * they came: read and dropped one by one, they cost this node as much as
   * reading its own writes to send them.
   */
  protected override skipHeld(): void {
    const point = this.store.log.newestResume
    if (point === null || point.seq < this.cursor || point.seq > this.store.lastSeq) return
    const report = this.host.reportOf(this)
    if (report !== null) this.known.join(report)
    if (!this.known.covers(point.vv)) return
    this.stats.skipped += point.seq + 1 - this.cursor
    this.cursor = point.seq + 1
    this.pin?.move(this.cursor)
  }

  /** Sends the entries of `batch` the peer lacks (by origin and counter). */
  protected sendBatch(batch: Buffer[]): void {
    const report = this.host.reportOf(this)
    if (report !== null) this.known.join(report)
    const out: Buffer[] = []
    for (const raw of batch) {
      const id = peekIdentity(raw) ?? readForApply(raw)
      if (id.origin === NO_ORIGIN || id.originSeq <= this.known.get(id.origin)) {
        this.stats.filtered++
        continue
      }
      this.known.advance(id.origin, id.originSeq)
      // Views into the tail's ring stay valid until the next commit: the
      // frame is encoded here, before anything else can run.
      out.push(raw)
    }
    if (out.length === 0) return
    const head = this.store.lastSeq
    const vv = this.store.committedVv
    for (const frame of framesUnder(out, this.frameLimit, (part) =>
      encodeFrame({ type: 'entries', entries: part, head, vv }),
    )) {
      this.flow.sendFrame(frame)
    }
  }

  protected sendHeartbeat(): void {
    this.flow.send({
      type: 'heartbeat',
      time: this.host.clock.wall(),
      vv: this.store.committedVv,
      digest: this.host.digest(),
      rows: this.host.rows(),
    })
  }
}
