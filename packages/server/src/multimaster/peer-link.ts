import { DATA_FORMAT, decodeFrame, fastPeerEntries, type PusherMessage, pusherMessageSchema } from '@tandem/protocol'
import type { RawData, default as WebSocket } from 'ws'
import { dialPeer, type PeerTls } from '../replication/dial.js'
import { FlowSocket, SerialInbox, watchSilence } from '../replication/link.js'
import { newNonce, proofHolds, proveToken } from '../replication/peer-auth.js'
import { type ApplyEntry, peekHlc, readForApply } from '../storage/entry-scan.js'
import { hlcWallMs } from '../storage/hlc.js'
import type { ConflictResolver } from '../storage/resolver.js'
import { unpackChunk } from '../storage/snapshot-chunk.js'
import type { Store, StoreClock } from '../storage/store.js'
import type { VersionVectorObject } from '../storage/version-vector.js'
import type { Tuning } from '../tuning.js'
import type { Clock } from '../util/clock.js'
import { guarded } from '../util/handler-guard.js'
import type { Logger } from '../util/logger.js'
import { FORGOTTEN_MESSAGE, FORGOTTEN_REASON } from './forgotten.js'
import type { Row } from './stability.js'

/**
 * The pulling side of a peer link: this node dials one peer (an address of
 * --peers), says what it holds, and applies what the peer sends (see
 * @tandem/protocol's peer.ts), through its conflict resolver, appended to its own log
 * (placement 'append': entries it already holds are skipped by origin and
 * counter). Acks carry this node's version vector back.
 *
 * Rules it keeps:
 * - an entry stamped further ahead of this node's wall clock than
 *   --max-clock-offset is never applied, nor skipped: the link applies what
 *   came before it, pauses, says so in status, and asks again later, so a
 *   fast clock cannot win conflicts;
 * - a snapshot is joined into the data (Store.merge), never replaces it;
 * - if the peer holds more of this node's own writes than this node does,
 *   or says another of its peers reported holding more (`peersHold`: the
 *   one that holds them may be cut off from this node), this node's data
 *   dir was restored from a backup or an older copy: it takes no writes
 *   until it has them back (amnesia: it would reuse their counters);
 * - every second it probes the peer's clock, for the offset status shows
 *   and the Mesh's decision to refuse writes when this node's clock runs ahead;
 * - what the peer reports it holds (peerVV) is trusted by this node's feed
 *   to that peer only while both links speak with the same run of the
 *   peer's process (its incarnation, named in continue / fullsync and in
 *   its hello to the feed): a peer restarted with less than its old socket
 *   said must be sent what it lost (see trustedReport).
 * - a peer that names an origin this node forgot (forgotten.ts) is refused
 *   before anything of it is applied, and asked again only after a backoff.
 *
 * - a peer that sends nothing for --repl-timeout (a stopped process, a
 *   stalled path: the socket stays open) is given up: the link closes its
 *   socket, says why in status and redials. Its feed heartbeats every
 *   replHeartbeatMs and answers the clock probe in every state, so only a
 *   peer that cannot speak is silent that long; time this node's own inbox
 *   holds the socket paused, or its own process was stalled, is not the
 *   peer's silence.
 *
 * After any break it reconnects with backoff and asks again from what it holds.
 */

type PeerLinkState = 'connecting' | 'handshake' | 'merging' | 'streaming' | 'paused' | 'refused' | 'stopped'

interface PeerLinkHost {
  readonly store: Store
  readonly logger: Logger
  readonly resolver: ConflictResolver
  readonly conflict: 'lww' | 'vclock'
  readonly address: string
  readonly authToken?: string
  readonly tls?: PeerTls
  readonly maxFrameBytes: number
  readonly maxClockOffsetMs: number
  /** A peer silent this long (monotonic ms, --repl-timeout) is given up and redialled. */
  readonly silenceTimeoutMs: number
  /** The server's one clock. */
  readonly clock: Clock
  digest(): string
  rows(): Record<string, Row>
  /** The peer reported rows (heartbeat): stability. */
  onRows(rows: Record<string, Row>): void
  /** Entries from this link were applied. */
  onApplied(): void
  /** Whether the operator forgot this origin (forgotten.ts). */
  isForgotten(origin: string): boolean
  /** The link's tunables (see tuning.ts). */
  readonly tuning: PeerLinkTuning
  /** This run of this node's process, sent in hello. */
  readonly incarnation: string
  /** The origins this node streams from their own node now (see PeerLink.direct). */
  direct(): string[]
  /** Per origin of direct(), the run of its process streamed from (see PeerLink.claimRun). */
  directRuns(): Record<string, string>
}

type PeerLinkTuning = Pick<
  Tuning,
  | 'peerMinBackoffMs'
  | 'peerMaxBackoffMs'
  | 'peerRefusedBackoffMs'
  | 'peerClockPauseMs'
  | 'peerClockProbeMs'
  | 'peerMaxQueuedApply'
  | 'peerHandshakeTimeoutMs'
  | 'linkInboxDepth'
  | 'peerDirectSilenceMs'
>

export class PeerLink {
  state: PeerLinkState = 'connecting'
  /** The peer's node id and origin, once it answered. */
  nodeId: string | null = null
  origin: string | null = null
  /** The peer's version vector as of its last message. */
  peerVV: VersionVectorObject = {}
  /** The peer's digest and the version vector it was taken at (its last heartbeat). */
  peerDigest = ''
  /** Which hash peerDigest is of (its heartbeat says; an older build's does not: 1, SHA-256). */
  peerDigestHash = 1
  peerDigestVV: VersionVectorObject = {}
  /** When the peer was last heard (monotonic ms, 0: never), as the times below: differences only. */
  lastHeardAt = 0
  /** Since when this node has been behind the peer (0: caught up). */
  behindSince = 0
  /** Why the link is paused or refused, for status. */
  reason: string | null = null
  /**
   * The peer's clock minus this node's, in ms, as far as the last clock
   * probe proves it (see onClock): 0 when its round trip cannot tell the
   * clocks apart. NaN until measured.
   */
  clockOffsetMs = Number.NaN
  clockMeasuredAt = 0
  /** The peer holds this node's own writes up to here, more than this node does (amnesia). */
  ownHeldByPeer = 0
  /** The most of this node's own writes the peer last said another of its peers holds (peersHold). */
  private peersHold = 0
  /** The run of the peer's process this connection speaks with (null until it answered on it). */
  peerIncarnation: string | null = null
  /**
   * The run of the peer's process this link last streamed from, kept while
   * it reconnects: its claim to pull the peer's writes directly names it,
   * so a peer forwarding them to this node skips them only for that run.
   */
  claimRun: string | null = null
  /** Entries received from the peer (those this node already held included). */
  readonly stats = {
    connects: 0,
    snapshots: 0,
    applied: 0,
    clockPauses: 0,
    received: 0,
    silenceTimeouts: 0,
    /** Entries frames with no entries received, and those merged into the one queued before (see connect). */
    vvFrames: 0,
    vvFramesMerged: 0,
    /** Entries frames with entries that joined the one queued before them (see QueuedEntries). */
    framesJoined: 0,
    /**
     * Times the link stopped reading the peer's socket because more than
     * peerMaxQueuedApply of its frames were in the committer, not yet
     * durable, and the ms it stayed stopped (holds that ended).
     */
    applyHolds: 0,
    applyHeldMs: 0,
  }
  private ws: WebSocket | null = null
  private stopped = false
  private backoff: number
  private retryTimer: NodeJS.Timeout | null = null
  private timers: NodeJS.Timeout[] = []
  private log: Logger
  private mergeClock: StoreClock | null = null
  private applying: Promise<unknown> = Promise.resolve()
  private inbox: SerialInbox | null = null
  private ackPending = false
  /** When this link last sent an ack (monotonic ms). */
  private lastAckAt = Number.NEGATIVE_INFINITY
  /** Entries frames holding entries applied on the current connection, said in acks (see @tandem/protocol peer.ts). */
  private framesApplied = 0

  constructor(
    /** HOST:PORT of the peer, as configured. */
    readonly addr: string,
    private readonly host: PeerLinkHost,
  ) {
    this.log = host.logger.child({ peerAddr: addr })
    this.backoff = host.tuning.peerMinBackoffMs
    this.connect()
  }

  private get store(): Store {
    return this.host.store
  }

  private connect(): void {
    if (this.stopped) return
    if (this.state !== 'paused' && this.state !== 'refused') this.state = 'connecting'
    this.peerIncarnation = null
    // No token in the request: the peer first proves it holds it (replication/peer-auth.ts).
    const ws = dialPeer(this.addr, '/peer', this.host.tls, {
      maxPayload: this.host.maxFrameBytes,
      perMessageDeflate: false,
      handshakeTimeout: this.host.tuning.peerHandshakeTimeoutMs,
    })
    this.ws = ws
    this.framesApplied = 0
    const flow = new FlowSocket(ws, 1024 * 1024)
    let failed = false
    const live = () => this.ws === ws && !failed && !this.stopped
    const inbox = new SerialInbox(
      ws,
      (err) => {
        failed = true
        this.log.warn('peer link failed', { err: (err as Error).message })
        ws.terminate()
      },
      this.host.tuning.linkInboxDepth,
      (ms) => {
        this.stats.applyHolds++
        this.stats.applyHeldMs += ms
      },
      this.host.clock,
    )
    const previous = this.inbox
    this.inbox = inbox
    const nonce = newNonce()
    const { authToken } = this.host
    let challenge: Uint8Array | null = null
    let proven = false
    // An entries frame with no entries only says what the peer holds. While
    // one is the last task queued, the next only replaces its vector: a peer
    // sending them in a tight loop costs one task, not one each.
    let queuedVv: { vv: VersionVectorObject } | null = null
    // Entries frames that reach this node together (one socket read, or
    // while the inbox waits) join the one queued before them, not started
    // yet: one task and one write in the group committer for them all (see
    // QueuedEntries).
    let queuedEntries: QueuedEntries | null = null
    ws.on('open', () => {
      this.stats.connects++
      if (this.state !== 'paused' && this.state !== 'refused') this.state = 'handshake'
      this.lastHeardAt = this.host.clock.now()
      const deadline = setTimeout(() => {
        if (!proven && this.ws === ws) ws.terminate()
      }, this.host.tuning.peerHandshakeTimeoutMs)
      ws.once('close', () => clearTimeout(deadline))
    })
    const onChallenge = (peerNonce: Uint8Array) => {
      challenge = peerNonce
      // What the previous link handed to the committer is in before this
      // one says what the node holds.
      void Promise.all([this.applying, previous?.idle()]).then(() => {
        if (!live() || ws.readyState !== ws.OPEN) return
        flow.send({
          type: 'hello',
          nodeId: this.store.nodeId,
          origin: this.store.origin,
          addr: this.host.address,
          conflict: this.host.conflict,
          vv: this.store.committedVv,
          time: this.host.clock.wall(),
          format: DATA_FORMAT,
          nonce,
          proof: proveToken(authToken, 'peer', 'dialer', peerNonce, nonce),
          incarnation: this.host.incarnation,
          direct: this.host.direct(),
          directRuns: this.host.directRuns(),
          maxFrameBytes: this.host.maxFrameBytes,
        })
      })
    }
    /** Before the peer has proven itself, only its challenge, its welcome and a refusal are taken. */
    const authenticate = (message: PusherMessage): boolean => {
      if (message.type === 'challenge' && challenge === null) {
        onChallenge(message.nonce)
        return false
      }
      if (message.type === 'refuse') return true
      if (message.type === 'welcome' && challenge !== null) {
        if (proofHolds(authToken, 'peer', 'listener', challenge, nonce, message.proof)) {
          proven = true
          this.timers.push(setInterval(() => this.ackIdle(flow), ACK_EVERY_MS))
          this.watchSilence(ws, inbox)
          this.timers.push(
            setInterval(
              () => flow.send({ type: 'clock', t0: this.host.clock.wall() }),
              this.host.tuning.peerClockProbeMs,
            ),
          )
          flow.send({ type: 'clock', t0: this.host.clock.wall() })
          return false
        }
      }
      this.log.warn('the peer could not prove it holds the auth token; applying nothing from it', { got: message.type })
      ws.terminate()
      return false
    }
    const onMessage = (data: RawData) => {
      const receivedAt = this.host.clock.now()
      this.lastHeardAt = receivedAt
      let message: PusherMessage
      try {
        const decoded = decodeFrame(data as Buffer)
        // Entries frames, checked by hand; the schema judges the rest and words the refusals.
        const entries = fastPeerEntries(decoded)
        if (entries !== null) {
          message = entries
        } else {
          const parsed = pusherMessageSchema.safeParse(decoded)
          if (!parsed.success) throw new Error(parsed.error.issues[0]?.message)
          message = parsed.data
        }
      } catch (err) {
        this.log.warn('bad message from peer; reconnecting', { err: (err as Error).message })
        ws.terminate()
        return
      }
      if (!proven && !authenticate(message)) return
      if ((message.type === 'continue' || message.type === 'fullsync') && this.host.isForgotten(message.origin)) {
        // Nothing after this message is applied: the link is failed before its entries can arrive.
        failed = true
        this.refuseForgotten(message.nodeId, message.origin)
        ws.close(4403, `${FORGOTTEN_REASON}: ${FORGOTTEN_MESSAGE}`.slice(0, 120))
        return
      }
      if (message.type === 'clock') return this.onClock(message.t0, message.t1)
      if (message.type === 'refuse') return this.onRefuse(message.reason, message.message)
      if (message.type === 'entries') {
        const receivedWall = this.host.clock.wall()
        if (message.entries.length === 0) {
          this.stats.vvFrames++
          if (queuedVv !== null) {
            queuedVv.vv = message.vv
            this.stats.vvFramesMerged++
            return
          }
          queuedEntries = null
          const queued = { vv: message.vv }
          queuedVv = queued
          inbox.push(() => {
            if (queuedVv === queued) queuedVv = null
            if (live()) this.onEntries([], queued.vv, 1, flow, inbox, ws, receivedAt, receivedWall)
          })
          return
        }
        queuedVv = null
        const bytes = (data as Buffer).length
        if (queuedEntries !== null && joins(queuedEntries, bytes, this.host)) {
          queuedEntries.parts.push(message.entries)
          queuedEntries.vv = message.vv
          queuedEntries.frames++
          queuedEntries.bytes += bytes
          this.stats.framesJoined++
          inbox.joined()
          return
        }
        const queued: QueuedEntries = { parts: [message.entries], vv: message.vv, frames: 1, bytes }
        queuedEntries = queued
        inbox.push(() => {
          if (queuedEntries === queued) queuedEntries = null
          inbox.left(queued.frames - 1)
          if (!live()) return
          const raws = queued.parts.length === 1 ? queued.parts[0] : queued.parts.flat()
          this.onEntries(raws, queued.vv, queued.frames, flow, inbox, ws, receivedAt, receivedWall)
        })
        return
      }
      queuedVv = null
      queuedEntries = null
      inbox.push(() => (live() ? this.onControl(message, flow, live) : undefined))
    }
    ws.on(
      'message',
      guarded('peer', this.log, () => ws.terminate(), onMessage),
    )
    ws.on('error', (err) => {
      this.log.debug('peer socket error', { err: err.message })
      // Something answered at the address, but not a WebSocket upgrade
      // (an HTTP server, a proxy's error page): not a tandem node. Said
      // once in the log and kept in status until a link is made.
      const answer = /^Unexpected server response: (\d+)/.exec(err.message)
      if (answer === null || this.ws !== ws || this.state !== 'connecting') return
      const reason = `not a tandem node: ${this.addr} answered the peer handshake with HTTP ${answer[1]}; will retry`
      if (reason !== this.reason)
        this.log.warn('peer address does not answer as a tandem node', { peer: this.addr, status: Number(answer[1]) })
      this.reason = reason
    })
    ws.on('close', (code, reason) => this.onClose(code, reason.toString()))
  }

  /**
   * Gives the peer up once it has sent nothing for silenceTimeoutMs. The
   * silence counts from what was last heard, or from when this node last
   * held the socket paused (its inbox full, its committer busy: the peer
   * could not be heard), whichever is later. A check that comes late by
   * more than half the timeout means this node's own process was stalled
   * (a pause, a long GC): the bytes the peer sent meanwhile wait in the
   * socket, read before the next check, so no verdict is given on this one.
   */
  private watchSilence(ws: WebSocket, inbox: SerialInbox): void {
    this.timers.push(
      watchSilence({
        timeoutMs: this.host.silenceTimeoutMs,
        clock: this.host.clock,
        inbox,
        current: () => this.ws === ws,
        lastHeardAt: () => this.lastHeardAt,
        onSilent: (silentMs) => this.onSilenceTimeout(ws, silentMs),
      }),
    )
  }

  private onSilenceTimeout(ws: WebSocket, silentMs: number): void {
    this.stats.silenceTimeouts++
    this.reason = `silent: the peer sent nothing for ${silentMs} ms (more than --repl-timeout ${this.host.silenceTimeoutMs} ms); redialling`
    this.log.warn('peer link given up: the peer is silent', { silentMs, timeoutMs: this.host.silenceTimeoutMs })
    ws.terminate()
  }

  /**
   * One ack for every frame applied in this turn of the event loop: the
   * frames of one group commit complete together, and the last ack says
   * all the first ones would (each carries the whole version vector).
   */
  private ackSoon(flow: FlowSocket): void {
    if (this.ackPending) return
    this.ackPending = true
    setImmediate(() => {
      this.ackPending = false
      this.sendAck(flow)
    })
  }

  /**
   * The periodic ack, for an idle link: what this node holds moves with its
   * own writes too, and the peer's stability rows wait on it. Not sent
   * when an ack went out less than a tick ago (under load, one a commit
   * that applied the peer's frames): that one said as much, but for what
   * committed since, which the next tick or ack says.
   */
  private ackIdle(flow: FlowSocket): void {
    if (this.host.clock.now() - this.lastAckAt < ACK_EVERY_MS) return
    this.sendAck(flow)
  }

  private sendAck(flow: FlowSocket): void {
    this.lastAckAt = this.host.clock.now()
    flow.send({
      type: 'ack',
      vv: this.store.committedVv,
      digest: this.host.digest(),
      rows: this.host.rows(),
      direct: this.host.direct(),
      directRuns: this.host.directRuns(),
      frames: this.framesApplied,
    })
  }

  /**
   * Whether this node gets the peer's own writes from the peer itself: the
   * link has heard the peer within peerDirectSilenceMs and is not refused
   * or paused. Feeds to other peers are told, with the run it streams from
   * (claimRun), and skip forwarding this origin's entries to this node only
   * while they serve that same run (see peer-feed.ts). A reconnect within
   * that time keeps the claim (the link resumes from what this node holds,
   * so it gets every write of the peer's it lacks): withdrawing it makes the
   * other feeds end their sockets, and each of those reconnects would
   * withdraw its own claim in turn. A dead or stalled peer stops counting
   * once silent that long; a restarted one is a new run.
   */
  get direct(): boolean {
    return (
      this.origin !== null &&
      this.state !== 'paused' &&
      this.state !== 'refused' &&
      this.state !== 'stopped' &&
      this.lastHeardAt > 0 &&
      this.host.clock.now() - this.lastHeardAt < this.host.tuning.peerDirectSilenceMs
    )
  }

  /**
   * What the peer said it holds on this connection (its committed version
   * vector, in its entries and heartbeats), when the connection speaks with
   * the run of the peer's process named `incarnation`; else null. A report
   * of another run (a socket of a process since restarted, not yet seen
   * closed) may claim writes the peer lost.
   */
  trustedReport(incarnation: string | undefined): VersionVectorObject | null {
    if (incarnation === undefined || this.peerIncarnation !== incarnation || this.ws === null) return null
    if (this.state !== 'streaming') return null
    return this.peerVV
  }

  /**
   * The answer to a clock probe: this node sent t0 (its wall clock), the
   * peer read t1 from its own as it answered, and the answer is here now.
   * The peer read t1 at some moment between t0 and now on this node's
   * clock, so all the probe proves is that the peer's offset lies in
   * [t1 - now, t1 - t0] (Cristian's bound). The midpoint of that interval
   * is a guess off by up to half the round trip: a stall of either process
   * or of the path while a probe is in flight (a pause, a long GC, a loaded
   * machine) would read as that much skew and fence this node's writes.
   * The offset kept is what is proven, the point of the interval nearest
   * zero: 0 while the round trip cannot tell the clocks apart, otherwise
   * how far the peer's clock runs ahead (positive) or behind (negative) at
   * least.
   */
  private onClock(t0: number, t1: number): void {
    const now = this.host.clock.wall()
    const rtt = now - t0
    if (rtt < 0 || rtt > 5000) return
    // + 0: never -0 (status prints it).
    this.clockOffsetMs = Math.round(Math.max(t1 - now, Math.min(t1 - t0, 0))) + 0
    this.clockMeasuredAt = this.host.clock.now()
  }

  private async onControl(message: PusherMessage, flow: FlowSocket, live: () => boolean): Promise<void> {
    switch (message.type) {
      case 'continue':
        this.identify(message.nodeId, message.origin, message.vv, message.incarnation, message.peersHold)
        this.log.info('peer link resumes from its log', { fromSeq: message.fromSeq })
        this.state = 'streaming'
        this.backoff = this.host.tuning.peerMinBackoffMs
        this.reason = null
        this.noteBehind()
        return
      case 'fullsync':
        this.identify(message.nodeId, message.origin, message.clock.vv, message.incarnation, message.peersHold)
        this.stats.snapshots++
        this.state = 'merging'
        this.reason = null
        this.mergeClock = message.clock
        this.log.info('joining a snapshot from the peer', { seq: message.seq })
        return
      case 'snapshot': {
        if (this.state !== 'merging') throw new Error('snapshot outside a full sync')
        const records: [Buffer, Buffer][] = []
        const count = unpackChunk(message.chunk, EMPTY, (key, record) => records.push([key, Buffer.from(record)]))
        if (count !== message.count)
          throw new Error(`snapshot chunk holds ${count} records, its frame says ${message.count}`)
        await this.store.merge(records)
        return
      }
      case 'snapshotEnd':
        if (this.state !== 'merging' || !this.mergeClock) throw new Error('unexpected snapshotEnd')
        await this.store.finishMerge(this.mergeClock)
        this.log.info('snapshot joined', { seq: message.seq })
        this.mergeClock = null
        if (!live()) return
        this.state = 'streaming'
        this.backoff = this.host.tuning.peerMinBackoffMs
        this.host.onApplied()
        this.sendAck(flow)
        return
      case 'heartbeat':
        this.peerVV = message.vv
        if (message.peersHold !== undefined) this.peersHold = message.peersHold
        this.checkOwnHeld()
        this.peerDigest = message.digest
        this.peerDigestHash = message.digestHash ?? 1
        this.peerDigestVV = message.vv
        this.host.onRows(message.rows)
        this.noteBehind()
        return
      default:
        return
    }
  }

  /**
   * The peer will not serve this node, and closes the link right after
   * saying why: taken as it arrives, not behind the inbox's tasks (a
   * snapshot being joined), which a closed link drops.
   */
  private onRefuse(reason: string, message: string): void {
    this.state = 'refused'
    this.reason = `${reason}: ${message}`
    this.log.warn('peer refused this node; will retry', { reason, message })
    this.backoff = this.host.tuning.peerRefusedBackoffMs
  }

  /**
   * The peer named an origin this node forgot. Its origin is still taken as
   * the link's, so the link counts as having reached its peer (stability
   * leaves forgotten origins out whatever the links say).
   */
  private refuseForgotten(nodeId: string, origin: string): void {
    this.nodeId = nodeId
    this.origin = origin
    this.state = 'refused'
    this.reason = `${FORGOTTEN_REASON}: the peer is origin ${origin}, which this node forgot (tandem forget); ${FORGOTTEN_MESSAGE}`
    this.backoff = this.host.tuning.peerRefusedBackoffMs
    this.log.warn('refusing a peer whose origin this node forgot', { reason: FORGOTTEN_REASON, origin, peer: nodeId })
  }

  /** Closes the link's socket now, if it has one (it reconnects after a backoff). Whether it had one. */
  drop(): boolean {
    if (!this.ws) return false
    this.ws.terminate()
    return true
  }

  /**
   * The peer named itself: check that neither it nor, as far as it heard,
   * any of its other peers holds more of this node's writes than this node
   * does. (A peer that holds them may be cut off from this node while the
   * one it reaches never got them: forwarders skip the writes of an origin
   * to a peer that pulls them from their origin directly.)
   */
  private identify(
    nodeId: string,
    origin: string,
    vv: VersionVectorObject,
    incarnation: string | undefined,
    peersHold: number | undefined,
  ): void {
    this.nodeId = nodeId
    this.origin = origin
    this.peerVV = vv
    this.peerIncarnation = incarnation ?? null
    if (incarnation !== undefined) this.claimRun = incarnation
    this.log = this.host.logger.child({ peerAddr: this.addr, peer: nodeId })
    this.peersHold = peersHold ?? 0
    this.checkOwnHeld()
  }

  /**
   * What the peer says now of this node's own writes, itself or through its
   * other peers. Set anew each time, not only raised: a count the peer took
   * from a peer it has since forgotten (its writes given up) no longer
   * holds this node's writes back, and would otherwise until a restart.
   */
  private checkOwnHeld(): void {
    const mine = this.store.origin
    const held = Math.max(this.peerVV[mine] ?? 0, this.peersHold)
    const holds = this.store.vv.get(mine)
    if (held > holds && held > this.ownHeldByPeer) {
      this.log.error(
        'the peer or another of its peers holds more of this node’s own writes than this node does (its data dir was restored from an older copy, or lost); taking no writes until they are back',
        { peerHolds: this.peerVV[mine] ?? 0, itsPeersHold: this.peersHold, thisNodeHolds: holds },
      )
    }
    this.ownHeldByPeer = held
  }

  /**
   * Applies `raws`, the entries of `frames` entries frames (joined while
   * they waited: see QueuedEntries), `peerVV` the last one's vector.
   */
  private onEntries(
    raws: Uint8Array[],
    peerVV: VersionVectorObject,
    frames: number,
    flow: FlowSocket,
    inbox: SerialInbox,
    ws: WebSocket,
    receivedAt: number,
    receivedWall: number,
  ): void {
    if (this.stopped) return
    if (this.state !== 'streaming') throw new Error(`entries while ${this.state}`)
    this.peerVV = peerVV
    this.stats.received += raws.length
    const limit = this.host.clock.wall() + this.host.maxClockOffsetMs
    // Only each entry's HLC is read here: the store reads the entries when
    // it builds their group (Store.applyEncoded), so a frame waits as bytes.
    const entries: Buffer[] = []
    let firstHlc = 0
    let ahead: ApplyEntry | null = null
    for (const bytes of raws) {
      const raw = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes)
      const hlc = peekHlc(raw) ?? readForApply(raw).hlc
      if (hlcWallMs(hlc) > limit) {
        ahead = readForApply(raw)
        break
      }
      if (entries.length === 0) firstHlc = hlc
      entries.push(raw)
    }
    if (entries.length > 0) {
      const { stages } = this.store
      stages.observe('peer_arrive', Math.max(0, receivedWall - hlcWallMs(firstHlc)) / 1000)
      stages.observe('peer_inbox', (this.host.clock.now() - receivedAt) / 1000)
      const applied = this.store.applyEncoded(entries, this.host.resolver, 'append', receivedAt)
      this.applying = applied.catch(() => {})
      inbox.handedOff(applied, this.host.tuning.peerMaxQueuedApply)
      applied.then(
        () => {
          if (this.ws === ws) this.framesApplied += frames
          this.stats.applied += entries.length
          this.noteBehind()
          this.host.onApplied()
          this.ackSoon(flow)
        },
        (err) => {
          this.log.warn('could not apply the peer’s entries; reconnecting', { err: (err as Error).message })
          ws.terminate()
        },
      )
    }
    if (ahead) this.pauseForClock(ahead, ws)
  }

  /** An entry stamped too far ahead: apply nothing more from this link until the clocks agree. */
  private pauseForClock(entry: ApplyEntry, ws: WebSocket): void {
    const aheadMs = hlcWallMs(entry.hlc) - this.host.clock.wall()
    this.stats.clockPauses++
    this.reason = `clock: an entry of origin ${entry.origin} (#${entry.originSeq}) is stamped ${aheadMs} ms ahead of this node's clock, more than --max-clock-offset ${this.host.maxClockOffsetMs} ms; it waits`
    if (this.state !== 'paused') this.log.warn('peer link paused: a clock runs ahead', { reason: this.reason })
    this.state = 'paused'
    this.backoff = this.host.tuning.peerClockPauseMs
    ws.terminate()
  }

  private noteBehind(): void {
    let behind = false
    for (const origin in this.peerVV) if (this.peerVV[origin] > this.store.vv.get(origin)) behind = true
    if (!behind) this.behindSince = 0
    else if (this.behindSince === 0) this.behindSince = this.host.clock.now()
  }

  /** Entries the peer holds that this node lacks, as far as it knows. */
  get lagEntries(): number {
    let n = 0
    for (const origin in this.peerVV) n += Math.max(0, this.peerVV[origin] - this.store.vv.get(origin))
    return n
  }

  get lagMs(): number {
    return this.behindSince === 0 ? 0 : Math.round(this.host.clock.now() - this.behindSince)
  }

  private onClose(code: number, reason: string): void {
    for (const t of this.timers) clearInterval(t)
    this.timers = []
    this.ws = null
    if (this.stopped) return
    if (this.state !== 'refused' && this.state !== 'paused') this.state = 'connecting'
    this.log.debug('peer link closed; reconnecting', { code, reason, inMs: Math.round(this.backoff) })
    this.retryTimer = setTimeout(() => this.connect(), this.backoff)
    this.backoff = Math.min(this.host.tuning.peerMaxBackoffMs, this.backoff * 2)
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.state = 'stopped'
    if (this.retryTimer) clearTimeout(this.retryTimer)
    for (const t of this.timers) clearInterval(t)
    this.ws?.close(1000, 'stopped')
    this.ws?.terminate()
    this.ws = null
    await this.applying
  }
}

const EMPTY = Buffer.alloc(0)

/** How often an idle link acks (see ackIdle). */
const ACK_EVERY_MS = 250

/**
 * Entries frames queued as one inbox task, not started yet. Each frame
 * costs the link a task and the group committer a write, whatever it
 * holds, and frames that wait together would be applied in the same group
 * anyway: joined, they are one write (in their order), and the ack that
 * follows its commit counts them all (`frames`). A frame joins while the
 * task has not started, up to linkInboxDepth frames (each counts towards
 * the inbox's depth, so the socket pauses as before) and the largest frame
 * the link takes in all (maxFrameBytes): one write holds no more than one
 * frame could.
 */
interface QueuedEntries {
  parts: Uint8Array[][]
  vv: VersionVectorObject
  frames: number
  bytes: number
}

function joins(queued: QueuedEntries, bytes: number, host: PeerLinkHost): boolean {
  return queued.frames < host.tuning.linkInboxDepth && queued.bytes + bytes <= host.maxFrameBytes
}
