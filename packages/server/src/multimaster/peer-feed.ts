import {
  DATA_FORMAT,
  decodeFrame,
  encodeEntriesFrame,
  encodeFrame,
  fastPeerAck,
  formatOf,
  olderReader,
  type PeerHello,
  type PullerMessage,
  pullerMessageSchema,
} from '@tandem/protocol'
import type { WebSocket } from 'ws'
import type { AckSource } from '../replication/acks.js'
import { Feed, type FeedTiming } from '../replication/feed.js'
import { framesUnder } from '../replication/frame-limit.js'
import { proofHolds, proveToken } from '../replication/peer-auth.js'
import { DIGEST_HASH } from '../storage/convergence.js'
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
 *   peer already holds (by origin and counter), those of an origin the peer
 *   gets from that origin itself (below), and this node's housekeeping.
 *
 * What the peer holds (`known`) is what it said on this socket, what this
 * feed sent it, and what it reported on this node's link to it when that
 * link speaks with the same run of its process (Mesh.reportOf): never a
 * report from an older run, which may claim writes it lost.
 *
 * Direct origins. The peer says which origins it streams from their own
 * node and which run of that node's process (`directRuns`, in hello and
 * acks). This feed skips an origin O's entries only while O's run named
 * there pulls from this node too (a feed here streams to that run). That
 * run has checked, when it dialled, that this node held no more of its
 * writes than it did, or takes none until it has them back (amnesia,
 * peer-link.ts), and this node sends it what it lacks; so every write of
 * O's that this node holds is one O's run holds and streams to the peer.
 * A claim alone is not enough: O restarted from an older copy of its
 * data dir, cut off from this node, would take the peer's lagging count of
 * its writes as all it had written and issue its lost counters again (the
 * peer's continue tells it what others hold, `peersHold`, but only a
 * forwarder that stops skipping gets them to it). When the skip no longer
 * holds (the claim is withdrawn or names another run, O's feed here
 * closed) and the peer has not acked what was skipped, the socket ends
 * (1012) and the peer, dialling again, resumes from what it holds. An
 * entries frame with no entries tells the peer what this node holds when
 * everything new was skipped (for its `peersHold`).
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
  /** Whether the run `run` of `origin`'s process pulls from this node now (a feed streams to it). */
  pullsFrom(origin: string, run: string): boolean
  /** The most of `origin`'s own writes another peer of this node reported holding. */
  heldElsewhere(origin: string): number
  /** A peer reported what it holds (an ack): stability rows, w=N, lag. */
  onAck(peer: PeerFeed, vv: Record<string, number>, rows: Record<string, Row>): void
  /** This run of this node's process. */
  readonly incarnation: string
  /** What the peer reported holding on this node's link to it, when said by the run of `feed.incarnation`. */
  reportOf(feed: PeerFeed): Record<string, number> | null
  /** Whether the operator forgot this origin (forgotten.ts): its links are refused. */
  isForgotten(origin: string): boolean
  /** Least time between two entries frames with no entries (the tunable peerVvFrameMs). */
  readonly vvFrameMs: number
  /** Entries frames a peer that counts them may leave unacknowledged (the tunable peerFramesInFlight). */
  readonly framesInFlight: number
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
   * (`skipped`, see skipHeld); entries not sent because the peer streams
   * their origin from that origin's own run (`directSkipped`); and entries
   * frames with no entries sent for them (`vvFrames`). Entries frames sent
   * with entries (`frames`), and times new entries waited for the next one
   * while frames were unacknowledged (`heldBack`, see holdBack).
   */
  readonly stats = { filtered: 0, skipped: 0, directSkipped: 0, vvFrames: 0, frames: 0, heldBack: 0 }
  /** Entries frames holding entries sent on this socket. */
  private framesSent = 0
  /** How many of them the peer said it applied (its acks' `frames`); null: it does not say. */
  private framesAcked: number | null = null
  /** Origins the peer says it streams from their own node (for status). */
  private readonly direct = new Set<string>()
  /** Per origin the peer streams directly, the run of its process it streams from. */
  private readonly directRuns = new Map<string, string>()
  /** The lists `direct` and `directRuns` were last made from (an ack's, as decoded): every ack repeats them. */
  private directGiven: readonly string[] = []
  private runsGiven: Readonly<Record<string, string>> = {}
  /** Per origin whose entries this feed skipped as direct, the highest counter skipped. */
  private readonly skippedDirect = new Map<string, number>()
  /** When a frame saying this node's version vector last went out (monotonic ms). */
  private vvSentAt = Number.NEGATIVE_INFINITY
  /** An entries frame with no entries waiting for its turn (see sendVv). */
  private vvTimer: NodeJS.Timeout | null = null
  /** Within a batch (admit): whether an entry was skipped as direct, and the origin of the run of entries being read and whether it is skipped. */
  private skippedAny = false
  private runOrigin = ''
  private runSkips = false
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
    if (this.vvTimer) clearTimeout(this.vvTimer)
    this.vvTimer = null
    this.onGone(this)
  }

  protected onMessage(data: Buffer, isBinary: boolean): void {
    this.lastHeardAt = this.host.clock.now()
    let decoded: unknown
    try {
      decoded = isBinary ? decodeFrame(data) : null
    } catch {
      return this.close(1007, 'malformed peer frame')
    }
    // Acks, checked by hand; the schema judges the rest and words the refusals.
    let message: PullerMessage | null = fastPeerAck(decoded)
    if (message === null) {
      const parsed = pullerMessageSchema.safeParse(decoded)
      if (!parsed.success) return this.close(1007, `invalid peer message: ${parsed.error.issues[0]?.message}`)
      message = parsed.data
    }
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
        this.onDirect(message.direct ?? [], message.directRuns ?? {})
        if (message.frames !== undefined) {
          this.framesAcked = Math.min(message.frames, this.framesSent)
          this.wake()
        }
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
    this.takeDirect(hello.direct ?? [], hello.directRuns ?? {})
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
      peersHold: this.host.heldElsewhere(hello.origin),
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
        peersHold: this.host.heldElsewhere(this.origin),
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

  /** The peer's new list of origins it streams directly, and the runs (see the class comment). */
  private onDirect(origins: string[], runs: Record<string, string>): void {
    this.takeDirect(origins, runs)
    this.checkSkipped()
  }

  /**
   * `direct` and `directRuns` made from the peer's lists, in place, and
   * only when they differ from the lists last given: every ack carries
   * them and they seldom change, and a new Set and Map (and the entries'
   * array) for each ack were garbage at the ack rate.
   */
  private takeDirect(origins: readonly string[], runs: Readonly<Record<string, string>>): void {
    if (sameStrings(origins, this.directGiven) && sameRuns(runs, this.runsGiven)) return
    this.direct.clear()
    for (const origin of origins) this.direct.add(origin)
    this.directRuns.clear()
    for (const origin in runs) if (Object.hasOwn(runs, origin)) this.directRuns.set(origin, runs[origin])
    this.directGiven = origins
    this.runsGiven = runs
  }

  /** Whether this feed skips `origin`'s entries now (see the class comment). */
  private skips(origin: string): boolean {
    if (origin === this.store.origin) return false
    const run = this.directRuns.get(origin)
    return run !== undefined && this.host.pullsFrom(origin, run)
  }

  /**
   * Forgets the skipped counters the peer has acked since; if it lacks some
   * of an origin this feed no longer skips, ends the socket (the cursor is
   * past them: the peer resumes from what it holds). False when it ended.
   */
  private checkSkipped(): boolean {
    if (this.state !== 'streaming' || this.skippedDirect.size === 0) return true
    const report = this.host.reportOf(this)
    if (report !== null) this.known.join(report)
    for (const [origin, upTo] of this.skippedDirect) {
      if (this.known.get(origin) >= upTo) {
        this.skippedDirect.delete(origin)
      } else if (!this.skips(origin)) {
        this.log.info('the peer no longer gets an origin directly; it resumes from what it holds', {
          origin,
          skippedUpTo: upTo,
          peerHolds: this.known.get(origin),
        })
        this.close(1012, `${origin} no longer direct: dial again`)
        return false
      }
    }
    return true
  }

  /** The origins the peer says it streams directly, for status. */
  directOrigins(): string[] {
    return [...this.direct]
  }

  /** The origins whose entries this feed skips now (for status: a claim alone does not make a skip). */
  skipping(): string[] {
    const out: string[] = []
    for (const origin of this.directRuns.keys()) if (this.skips(origin)) out.push(origin)
    return out
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

  /**
   * Coalescing without idle latency. A frame goes out as soon as entries
   * are committed, unless peerFramesInFlight frames are still unacked by a
   * peer that counts them: what commits meanwhile then waits and goes in
   * one frame when the ack comes. Each frame costs both nodes the same
   * whatever it holds (a socket write and wake-up, a parse, an inbox task,
   * a remote write in the peer's group commit, an ack back), so under load
   * a frame a group commit costs more than a frame a round trip; on an
   * idle link the first frame is never held. A full batch waiting is sent
   * at once (nothing is gained by holding it: a node catching up streams
   * as before), so only small frames are held, and only for a round trip.
   */
  protected override holdBack(): boolean {
    if (this.framesAcked === null || this.framesSent - this.framesAcked < this.host.framesInFlight) return false
    if (this.store.lastSeq - this.cursor + 1 >= this.timing.batchEntries) return false
    this.stats.heldBack++
    return true
  }

  /** Sends the entries of `batch` the peer lacks (by origin and counter) and gets from nowhere else. */
  protected sendBatch(batch: Buffer[]): void {
    if (!this.beginBatch()) return
    const out: Buffer[] = []
    // Where in the batch the first entry sent lies (for the peer_send stage).
    let firstSent = -1
    // Views into the tail's ring stay valid until the next commit: the
    // frame is encoded here, before anything else can run.
    for (let i = 0; i < batch.length; i++) {
      if (!this.admit(batch[i])) continue
      if (firstSent < 0) firstSent = i
      out.push(batch[i])
    }
    if (out.length === 0) return this.endEmpty()
    this.sendEncoded(out)
    this.observeSent(firstSent)
  }

  /**
   * From the in-memory tail: the entries the peer lacks go out as the tail
   * holds them (msgpack bins), the runs kept copied into the frame behind
   * one header (encodeEntriesFrame), with no encoder walking the entries;
   * the replica feed's way (upstream.ts), but for the entries dropped.
   */
  protected override sendFromTail(): number | null {
    const tail = this.store.log.tail
    const run = tail.binsFrom(this.cursor, this.timing.batchEntries, this.timing.batchBytes)
    if (run === null) return null
    if (run.count === 0 || !this.beginBatch()) return run.count
    const { bins, count } = run
    const runs: Buffer[] = []
    let kept = 0
    let runStart = -1
    let at = 0
    let firstSent = -1
    for (let i = 0; i < count; i++) {
      const start = at
      const seq = this.cursor + i
      // The identity the store pushed the entry with: its bytes are not read.
      const origin = tail.originAt(seq)
      let admitted: boolean
      if (origin !== null) {
        at = start + tail.binBytesAt(seq)
        admitted = this.admitIdentity(origin, tail.counterAt(seq))
      } else {
        const raw = binAt(bins, at)
        at = raw.byteOffset - bins.byteOffset + raw.length
        admitted = this.admit(raw)
      }
      if (admitted) {
        if (firstSent < 0) firstSent = i
        kept++
        if (runStart < 0) runStart = start
      } else if (runStart >= 0) {
        runs.push(bins.subarray(runStart, start))
        runStart = -1
      }
    }
    if (runStart >= 0) runs.push(bins.subarray(runStart, at))
    if (kept === 0) {
      this.endEmpty()
      return count
    }
    const head = this.store.lastSeq
    const frame = encodeEntriesFrame(kept, runs, head, encodeFrame(this.store.committedVv))
    if (frame.length > this.frameLimit) {
      // Cut under the peer's frame limit, entry by entry (framesUnder).
      const out: Buffer[] = []
      for (const part of runs) {
        for (let p = 0; p < part.length; ) {
          const raw = binAt(part, p)
          out.push(raw)
          p = raw.byteOffset - part.byteOffset + raw.length
        }
      }
      this.sendEncoded(out)
    } else {
      this.vvSentAt = this.host.clock.now()
      this.framesSent++
      this.stats.frames++
      this.flow.sendFrame(frame)
    }
    this.observeSent(firstSent)
    return count
  }

  /** The peer_send stage: from the commit of the first entry sent (the batch's `firstSent`th from the cursor) to now. */
  private observeSent(firstSent: number): void {
    const committedAt = this.store.log.commitTimes.timeOf(this.cursor + firstSent)
    if (committedAt !== undefined) {
      this.store.stages.observe('peer_send', Math.max(0, this.host.clock.wall() - committedAt) / 1000)
    }
  }

  /** Before a batch: what the peer holds, as the other link reports it; false when the socket ended. */
  private beginBatch(): boolean {
    const report = this.host.reportOf(this)
    if (report !== null) this.known.join(report)
    this.skippedAny = false
    this.runOrigin = ''
    return this.checkSkipped()
  }

  /** Whether to send the entry `raw`: the peer lacks it and gets it from nowhere else (counted either way). */
  private admit(raw: Buffer): boolean {
    const id = peekIdentity(raw) ?? readForApply(raw)
    return this.admitIdentity(id.origin, id.originSeq)
  }

  /** admit() of the entry of `origin`'s counter `originSeq`. */
  private admitIdentity(origin: string, originSeq: number): boolean {
    if (origin === NO_ORIGIN || originSeq <= this.known.get(origin)) {
      this.stats.filtered++
      return false
    }
    // Entries of one origin come in runs: its decision is kept while it repeats.
    if (origin !== this.runOrigin) {
      this.runOrigin = origin
      this.runSkips = this.directRuns.size > 0 && this.skips(origin)
    }
    if (this.runSkips) {
      if (originSeq > (this.skippedDirect.get(origin) ?? 0)) this.skippedDirect.set(origin, originSeq)
      this.stats.directSkipped++
      this.skippedAny = true
      return false
    }
    this.known.advance(origin, originSeq)
    return true
  }

  /** A batch with nothing to send: the peer still hears what this node holds when entries were skipped. */
  private endEmpty(): void {
    if (this.skippedAny) this.sendVv()
  }

  /** Sends `out` (entries the peer lacks) in frames under the peer's frame limit. */
  private sendEncoded(out: Buffer[]): void {
    const head = this.store.lastSeq
    const vv = this.store.committedVv
    this.vvSentAt = this.host.clock.now()
    for (const frame of framesUnder(out, this.frameLimit, (part) =>
      encodeFrame({ type: 'entries', entries: part, head, vv }),
    )) {
      this.framesSent++
      this.stats.frames++
      this.flow.sendFrame(frame)
    }
  }

  /**
   * Tells the peer what this node holds when all that was new was skipped:
   * an entries frame with no entries, at most one per vvFrameMs. Under a
   * stream of small group commits there would be one a commit, each a task
   * in the peer's inbox; a frame saying it went out less than that ago
   * (this one, entries, a heartbeat) defers it, and the deferred one says
   * the vector as it is when it goes.
   */
  private sendVv(): void {
    if (this.vvTimer !== null) return
    const wait = this.vvSentAt + this.host.vvFrameMs - this.host.clock.now()
    if (wait <= 0) return this.sendVvNow()
    this.vvTimer = setTimeout(() => {
      this.vvTimer = null
      if (this.state === 'streaming') this.sendVvNow()
    }, wait)
    this.vvTimer.unref()
  }

  private sendVvNow(): void {
    this.vvSentAt = this.host.clock.now()
    this.stats.vvFrames++
    this.flow.sendFrame(
      encodeFrame({ type: 'entries', entries: [], head: this.store.lastSeq, vv: this.store.committedVv }),
    )
  }

  protected sendHeartbeat(): void {
    if (!this.checkSkipped()) return
    this.vvSentAt = this.host.clock.now()
    this.flow.send({
      type: 'heartbeat',
      time: this.host.clock.wall(),
      vv: this.store.committedVv,
      digest: this.host.digest(),
      digestHash: DIGEST_HASH,
      rows: this.host.rows(),
      peersHold: this.host.heldElsewhere(this.origin),
    })
  }
}

/** Whether two lists hold the same strings in the same order. */
export function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Whether two records hold the same own keys with the same values. */
export function sameRuns(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  let keys = 0
  for (const key in a) {
    if (!Object.hasOwn(a, key)) continue
    if (!Object.hasOwn(b, key) || a[key] !== b[key]) return false
    keys++
  }
  for (const key in b) if (Object.hasOwn(b, key)) keys--
  return keys === 0
}

/** The bytes of the msgpack bin at `at` of `bins` (bin 8, 16 or 32, as the log tail lays them: LogTail.binsFrom). */
function binAt(bins: Buffer, at: number): Buffer {
  const header = bins[at]
  if (header === 0xc4) return bins.subarray(at + 2, at + 2 + bins[at + 1])
  if (header === 0xc5) return bins.subarray(at + 3, at + 3 + bins.readUInt16BE(at + 1))
  return bins.subarray(at + 5, at + 5 + bins.readUInt32BE(at + 1))
}
