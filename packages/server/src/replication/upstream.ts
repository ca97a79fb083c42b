import {
  DATA_FORMAT,
  decodeFrame,
  downstreamMessageSchema,
  encodeEntriesFrame,
  encodeFrame,
  formatOf,
  type Hello,
  olderReader,
  type ReplicaStatus,
} from '@tandem/protocol'
import type { WebSocket } from 'ws'
import type { LogTail } from '../storage/log-tail.js'
import type { HistoryEpoch, Store } from '../storage/store.js'
import { DEFAULT_TUNING, type Tuning } from '../tuning.js'
import type { Clock } from '../util/clock.js'
import type { Logger } from '../util/logger.js'
import type { AckSource, AckTracker } from './acks.js'
import { Feed } from './feed.js'
import { framesUnder } from './frame-limit.js'
import { type FrameSlab, FrameSlabs } from './frame-slabs.js'
import { lastEpoch, planResync } from './history.js'
import type { FlowSocket } from './link.js'
import { proofHolds, proveToken } from './peer-auth.js'

/**
 * Upstream side of replication. Every node runs one: a master serves its
 * own log; a replica serves the log it copied, with the same seqs and
 * epochs, so replicas can hang below replicas (a tree).
 *
 * Who owns what: Upstream owns one ReplicaFeed per connected downstream.
 * A feed owns its socket, its cursor (next seq to send) and, during a full
 * sync, a LevelDB snapshot and a pin that keeps the log from being trimmed
 * past the snapshot. The Store owns the log; feeds only read it.
 *
 * Flow per feed (messages in @tandem/protocol's replication.ts):
 *   challenge -> hello (its proof checked, see peer-auth.ts) -> welcome -> planResync -> continue | fullsync (snapshot chunks, snapshotEnd) | refuse
 *   then entries as they commit (from the in-memory tail, or the log on disk
 *   when the feed is further behind), heartbeats every heartbeatMs, and acks
 *   back from the downstream, which feed w=N writes and lag.
 *
 * What an ack counts for (see onAck): an ack is the downstream saying it
 * durably holds every entry up to a seq. It counts only while the feed
 * streams and the downstream has been told the current history, and only
 * up to the last entry this feed has sent (cursor - 1), never past this
 * node's head. An ack during the handshake or a full sync counts for
 * nothing: the downstream is about to discard, or has not yet got, what
 * it would be acking. A CONTINUE resume from seq S starts the feed's
 * bound at S - 1 (planResync checked that the downstream's history agrees
 * up to there), but that claim from the hello is not itself counted: the
 * downstream's first ack on the streaming feed, sent once it has adopted
 * the history in `continue`, is. That costs one round trip and keeps one
 * rule for every ack: it comes from a downstream that is streaming on this
 * node's current history.
 *
 * Backpressure: a feed stops reading the log while its socket holds more
 * than highWaterBytes unflushed, and resumes on drain. A downstream that
 * stays over the mark, or sends nothing, for replTimeoutMs is disconnected
 * with a warning naming it.
 */

interface UpstreamOptions {
  /** Unflushed bytes per downstream before the feed stops reading the log. */
  highWaterBytes: number
  /** A downstream stuck over the high-water mark, or silent, this long is dropped. */
  replTimeoutMs: number
  heartbeatMs: number
  /** Most entries, and bytes, in one entries frame. */
  batchEntries: number
  batchBytes: number
  /** Bytes of records in one snapshot frame. */
  snapshotChunkBytes: number
  /** How long a replica has to answer the close frame before its socket is dropped. */
  closeGraceMs: number
  /** Messages waiting for their handler before the socket is paused (SerialInbox). */
  inboxDepth: number
}

/** The upstream's options from the node's tunables (see tuning.ts) and --repl-timeout. */
export function upstreamOptions(tuning: Tuning, replTimeoutMs: number): UpstreamOptions {
  return {
    highWaterBytes: tuning.replHighWaterBytes,
    replTimeoutMs,
    heartbeatMs: tuning.replHeartbeatMs,
    batchEntries: tuning.replBatchEntries,
    batchBytes: tuning.replBatchBytes,
    snapshotChunkBytes: tuning.snapshotChunkBytes,
    closeGraceMs: tuning.linkCloseGraceMs,
    inboxDepth: tuning.linkInboxDepth,
  }
}

export const DEFAULT_UPSTREAM_OPTIONS: UpstreamOptions = upstreamOptions(DEFAULT_TUNING, 10_000)

interface UpstreamHost {
  readonly store: Store
  readonly logger: Logger
  readonly acks: AckTracker
  /** The shared token downstreams must prove they hold (none: anyone may replicate). */
  readonly authToken?: string
  /** HOST:PORT of the master as this node knows it (itself when master). */
  masterAddress(): string | null
  /** HOST:PORT this node serves the Redis protocol on, or null. */
  respAddress(): string | null
  countSync(kind: 'full' | 'partial'): void
  /** The server's one clock (monotonic: when replicas were last heard). */
  readonly clock: Clock
  /** A downstream is in a newer epoch than this node: a master must step down. */
  onNewerEpoch(epoch: number, why: string): void
}

/**
 * Feeds that keep up are all at the same seq when a group commits, so they
 * would each encode the same entries frame. While one commit wakes the
 * feeds (synchronously: a feed fed from the in-memory tail sends before its
 * first await), the first to encode a frame leaves it here for the others.
 * Outside that dispatch nothing is kept, so a frame can never outlive the
 * log it was read from (a rollback reuses seqs).
 *
 * Frames from the tail are cut from reused slabs (see FrameSlabs): each
 * socket a frame is handed to holds its slab until it has written it, and
 * the frame's maker (the dispatch, or the one feed that made it outside
 * one) until it is done handing it out.
 */
class SharedEntriesFrame {
  private active = false
  private from = 0
  private count = 0
  private head = 0
  private frame: Buffer | null = null
  /** The slab of the kept frame, held until the dispatch ends. */
  private slab: FrameSlab | null = null
  private readonly slabs = new FrameSlabs()

  /** The frame of `entries` (read from the log on disk) from seq `from`. */
  encode(from: number, entries: Buffer[], head: number): Buffer {
    if (this.frame && this.from === from && this.count === entries.length && this.head === head) return this.frame
    const frame = encodeFrame({ type: 'entries', entries, head })
    this.keep(from, entries.length, head, frame, null)
    return frame
  }

  /**
   * The frame of the tail's entries from seq `from` (see LogTail.binsFrom):
   * its bytes copied once behind one header, for all the feeds at `from`.
   * Null when the tail no longer holds `from`; count 0 when nothing is newer.
   * Give the result to done() once it is sent.
   */
  fromTail(tail: LogTail, from: number, max: number, maxBytes: number, head: number): TailFrame | null {
    if (this.frame && this.from === from && this.head === head) {
      return { count: this.count, frame: this.frame, slab: this.slab, made: false }
    }
    const run = tail.binsFrom(from, max, maxBytes)
    if (run === null) return null
    if (run.count === 0) return { count: 0, frame: null, slab: null, made: false }
    const frame = encodeEntriesFrame(run.count, run.bins, head, undefined, this.slabs.carve)
    const slab = this.slabs.lastSlab
    if (this.keep(from, run.count, head, frame, slab)) return { count: run.count, frame, slab, made: false }
    return { count: run.count, frame, slab, made: true }
  }

  /** Hands a frame from fromTail() to `flow`, which holds its slab until the socket has written it. */
  send(flow: FlowSocket, frame: Buffer, slab: FrameSlab | null): void {
    if (slab === null) {
      flow.sendFrame(frame)
      return
    }
    this.slabs.hold(slab)
    if (!flow.sendFrame(frame, () => this.slabs.release(slab))) this.slabs.release(slab)
  }

  /** The caller is done with `out`: a frame made outside a dispatch is let go. */
  done(out: TailFrame): void {
    if (out.made && out.slab !== null) this.slabs.release(out.slab)
  }

  /** Keeps the frame for the other feeds while a dispatch runs; false outside one. */
  private keep(from: number, count: number, head: number, frame: Buffer, slab: FrameSlab | null): boolean {
    if (!this.active) return false
    if (this.slab !== null) this.slabs.release(this.slab)
    this.from = from
    this.count = count
    this.head = head
    this.frame = frame
    this.slab = slab
    return true
  }

  /** Runs `wake` with sharing on, and forgets the frame afterwards. */
  during(wake: () => void): void {
    this.active = true
    try {
      wake()
    } finally {
      this.active = false
      this.frame = null
      if (this.slab !== null) this.slabs.release(this.slab)
      this.slab = null
    }
  }
}

interface TailFrame {
  count: number
  frame: Buffer | null
  slab: FrameSlab | null
  /** Made outside a dispatch: the caller holds it (see done). */
  made: boolean
}

export class Upstream {
  private readonly feeds = new Set<ReplicaFeed>()
  private readonly shared = new SharedEntriesFrame()
  private unsubscribe: () => void
  private lastHistory: string

  constructor(
    private readonly host: UpstreamHost,
    readonly options: UpstreamOptions = DEFAULT_UPSTREAM_OPTIONS,
  ) {
    this.lastHistory = historyKey(host.store.history)
    this.unsubscribe = host.store.onCommit(() => this.onCommit())
  }

  /** Takes a new downstream connection; it is challenged before it is served. */
  accept(ws: WebSocket): void {
    const feed = new ReplicaFeed(ws, this.host, this.options, this.shared, () => {
      this.feeds.delete(feed)
      this.host.acks.forget(feed)
      this.host.store.log.keepTail(false)
    })
    this.feeds.add(feed)
    this.host.store.log.keepTail(true)
  }

  private onCommit(): void {
    const history = historyKey(this.host.store.history)
    if (history !== this.lastHistory) {
      this.lastHistory = history
      for (const feed of this.feeds) feed.sendHistory()
    }
    this.shared.during(() => {
      for (const feed of this.feeds) feed.wake()
    })
  }

  /** Tells downstreams about a history change that came without a commit (a promotion). */
  historyChanged(): void {
    this.onCommit()
  }

  replicas(): ReplicaStatus[] {
    const out: ReplicaStatus[] = []
    for (const f of this.feeds) if (f.nodeId) out.push(f.status())
    return out
  }

  get count(): number {
    return this.feeds.size
  }

  /** Drops every downstream (shutdown, or this node changing roles). */
  disconnectAll(reason: string): void {
    for (const f of this.feeds) f.close(1001, reason)
  }

  close(): void {
    this.unsubscribe()
    this.disconnectAll('node shutting down')
  }
}

function isSeq(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0
}

/** A history's JSON, computed once per history array (the store replaces the array on every change). */
const historyKeys = new WeakMap<HistoryEpoch[], string>()
function historyKey(history: HistoryEpoch[]): string {
  let key = historyKeys.get(history)
  if (key === undefined) {
    key = JSON.stringify(history)
    historyKeys.set(history, key)
  }
  return key
}

class ReplicaFeed extends Feed implements AckSource {
  respAddr: string | null = null
  ackedSeq = 0
  /** The history the downstream was last told (continue, fullsync, history), as historyKey(). */
  private historyTold = ''
  /**
   * When the replica was last heard, on the monotonic clock: `--max-lag`
   * judges a replica by it, and a wall clock stepped back must not make a
   * silent replica look fresh.
   */
  lastHeardMono: number
  protected readonly linkName = 'replication'
  protected readonly onGap = 'the replica must reconnect for a full sync'

  constructor(
    ws: WebSocket,
    private readonly host: UpstreamHost,
    private readonly options: UpstreamOptions,
    private readonly shared: SharedEntriesFrame,
    private readonly onGone: () => void,
  ) {
    super(ws, host.store, host.logger, host.clock, options, 'replica')
    this.lastHeardMono = this.now()
    // A downstream in a full sync has nothing to ack and pings instead.
    ws.on('ping', () => {
      this.lastHeardAt = this.host.clock.now()
    })
  }

  protected onClosed(): void {
    this.onGone()
  }

  private now(): number {
    return this.host.clock.now()
  }

  protected onMessage(data: Buffer, isBinary: boolean): void {
    this.lastHeardAt = this.host.clock.now()
    this.lastHeardMono = this.now()
    let decoded: unknown
    try {
      decoded = isBinary ? decodeFrame(data) : null
    } catch {
      return this.close(1007, 'malformed replication frame')
    }
    // Acks are nearly all a downstream sends (one per commit of frames): a
    // well-formed one skips the schema, which judges everything else.
    const ack = decoded as { type?: unknown; seq?: unknown } | null
    if (ack !== null && typeof ack === 'object' && ack.type === 'ack' && isSeq(ack.seq)) return this.onAck(ack.seq)
    const parsed = downstreamMessageSchema.safeParse(decoded)
    if (!parsed.success) return this.close(1007, `invalid replication message: ${parsed.error.issues[0]?.message}`)
    const message = parsed.data
    if (message.type === 'hello') {
      if (this.state !== 'handshake' || this.nodeId) return this.close(1008, 'hello sent twice')
      const { authToken } = this.host
      if (!proofHolds(authToken, 'replication', 'dialer', this.nonce, message.nonce, message.proof)) {
        this.log.warn('a downstream could not prove it holds the auth token; refusing it', {
          replica: message.nodeId,
          replicaAddr: message.addr,
        })
        this.flow.send({ type: 'refuse', reason: 'unauthorized', message: 'wrong or missing auth token' })
        return this.close(4401, 'unauthorized')
      }
      this.flow.send({
        type: 'welcome',
        proof: proveToken(authToken, 'replication', 'listener', this.nonce, message.nonce),
      })
      this.inbox.push(() => this.onHello(message))
    } else {
      this.onAck(message.seq)
    }
  }

  /** See "What an ack counts for" at the top of this file. */
  private onAck(seq: number): void {
    if (this.state !== 'streaming' || this.historyTold !== historyKey(this.store.history)) return
    const bounded = Math.min(seq, this.cursor - 1, this.store.lastSeq)
    if (bounded <= this.ackedSeq) return
    this.ackedSeq = bounded
    this.host.acks.ack(this, bounded)
  }

  private async onHello(hello: Hello): Promise<void> {
    this.nodeId = hello.nodeId
    this.addr = hello.addr
    this.respAddr = hello.respAddr ?? null
    this.frameLimit = hello.maxFrameBytes ?? Number.POSITIVE_INFINITY
    this.log = this.host.logger.child({ replica: hello.nodeId, replicaAddr: hello.addr })
    if (hello.nodeId === this.store.nodeId) return this.refuse('self', 'a node cannot replicate from itself')
    if (formatOf(hello.format) < DATA_FORMAT) return this.refuse('format', olderReader('replica', hello.format))
    const plan = planResync(
      {
        history: this.store.history,
        lastSeq: this.store.lastSeq,
        firstLogSeq: await this.store.log.firstSeq(),
      },
      { history: hello.history, lastSeq: hello.lastSeq },
    )
    if (plan.kind === 'refuse') {
      if (plan.reason === 'stale') this.host.onNewerEpoch(lastEpoch(hello.history), `replica ${hello.nodeId} is in it`)
      return this.refuse(plan.reason, plan.message)
    }
    if (this.state !== 'handshake') return
    this.host.acks.attach(this)
    if (plan.kind === 'continue' && (hello.conflict ?? null) !== this.store.policy.conflict) {
      // Its records follow another conflict policy: it must take this node's data whole.
      this.host.countSync('full')
      this.log.info('replica needs a full sync', { reason: 'its records follow another conflict policy' })
      return this.fullSync(null)
    }
    if (plan.kind === 'continue') {
      this.host.countSync('partial')
      this.log.info('replica resumes by partial resync', { fromSeq: plan.fromSeq, head: this.store.lastSeq })
      this.cursor = plan.fromSeq
      this.pin = this.store.log.pin(this.cursor)
      this.historyTold = historyKey(this.store.history)
      this.flow.send({
        type: 'continue',
        fromSeq: plan.fromSeq,
        history: this.store.history,
        master: this.host.masterAddress(),
        respAddr: this.host.respAddress(),
        conflict: this.store.policy.conflict,
      })
      this.state = 'streaming'
      this.pumpSafely()
      return
    }
    this.host.countSync('full')
    this.log.info('replica needs a full sync', { reason: plan.reason, replicaSeq: hello.lastSeq })
    await this.fullSync(plan.rollbackAfter ?? null)
  }

  private refuse(reason: string, message: string): void {
    this.log.warn('refusing replica', { reason, message })
    this.flow.send({ type: 'refuse', reason, message })
    this.close(1008, `refused: ${reason}`)
  }

  /**
   * Streams one consistent snapshot: a LevelDB snapshot gives the data and
   * the seq it reflects; the log after that seq is pinned until the replica
   * has switched to streaming.
   */
  private async fullSync(rollbackAfter: number | null): Promise<void> {
    this.state = 'fullsync'
    const snapshot = this.store.snapshot()
    const history = this.store.history
    try {
      const seq = await snapshot.seq
      const clock = await snapshot.clock
      this.pin = this.store.log.pin(seq + 1)
      const started = this.host.clock.now()
      this.historyTold = historyKey(history)
      this.flow.send({
        type: 'fullsync',
        seq,
        history,
        master: this.host.masterAddress(),
        respAddr: this.host.respAddress(),
        rollbackAfter,
        clock,
        conflict: this.store.policy.conflict,
      })
      const total = await this.sendSnapshot(snapshot, this.options.snapshotChunkBytes)
      if (total === null) return
      this.flow.send({ type: 'snapshotEnd', seq })
      this.log.info('full sync sent', { seq, keys: total, ms: Math.round(this.host.clock.now() - started) })
      this.cursor = seq + 1
      this.state = 'streaming'
      // An epoch may have begun while the snapshot streamed.
      this.sendHistory()
      this.pumpSafely()
    } finally {
      await snapshot.close()
    }
  }

  /** Tells a streaming downstream the current history, if it has not been told it yet. */
  sendHistory(): void {
    if (this.state !== 'streaming') return
    const key = historyKey(this.store.history)
    if (key === this.historyTold) return
    this.historyTold = key
    this.flow.send({ type: 'history', history: this.store.history })
  }

  protected sendBatch(batch: Buffer[]): void {
    const frame = this.shared.encode(this.cursor, batch, this.store.lastSeq)
    if (frame.length <= this.frameLimit) this.flow.sendFrame(frame)
    else this.sendUnderLimit(batch)
  }

  protected override sendFromTail(): number | null {
    const { batchEntries, batchBytes } = this.options
    const tail = this.store.log.tail
    const out = this.shared.fromTail(tail, this.cursor, batchEntries, batchBytes, this.store.lastSeq)
    if (out === null) return null
    if (out.frame && out.frame.length > this.frameLimit) {
      this.sendUnderLimit(tail.from(this.cursor, out.count, Number.POSITIVE_INFINITY) ?? [])
    } else if (out.frame) this.shared.send(this.flow, out.frame, out.slab)
    this.shared.done(out)
    return out.count
  }

  /** Sends `entries` in as many frames as the downstream's frame limit needs (see frame-limit.ts). */
  private sendUnderLimit(entries: Buffer[]): void {
    const head = this.store.lastSeq
    for (const frame of framesUnder(entries, this.frameLimit, (part) =>
      encodeFrame({ type: 'entries', entries: part, head }),
    )) {
      this.flow.sendFrame(frame)
    }
  }

  protected sendHeartbeat(wallMs: number): void {
    this.flow.send({
      type: 'heartbeat',
      head: this.store.lastSeq,
      time: wallMs,
      master: this.host.masterAddress(),
      epoch: this.store.epoch,
    })
  }

  status(): ReplicaStatus {
    const head = this.store.lastSeq
    const lagEntries = Math.max(0, head - this.ackedSeq)
    const since = lagEntries === 0 ? undefined : this.store.log.commitTimes.timeOf(this.ackedSeq + 1)
    return {
      nodeId: this.nodeId,
      addr: this.addr,
      respAddr: this.respAddr,
      ackedSeq: this.ackedSeq,
      lagEntries,
      lagMs: since === undefined ? 0 : Math.max(0, this.host.clock.wall() - since),
      link: this.state,
      lastHeardMsAgo: Math.round(this.now() - this.lastHeardMono),
    }
  }
}
