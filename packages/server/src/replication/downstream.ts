import { DATA_FORMAT, decodeFrame, type UpstreamMessage, upstreamMessageSchema } from '@tandem/protocol'
import type { RawData, default as WebSocket } from 'ws'
import { type ApplyEntry, readForApply } from '../storage/entry-scan.js'
import { type ConflictResolver, logOrderWins } from '../storage/resolver.js'
import type { ConflictPolicy, HistoryEpoch, Store, StoreClock } from '../storage/store.js'
import type { Tuning } from '../tuning.js'
import type { Clock } from '../util/clock.js'
import { guarded } from '../util/handler-guard.js'
import type { Logger } from '../util/logger.js'
import { dialPeer, type PeerTls } from './dial.js'
import { epochAt, forkPoint } from './history.js'
import { FlowSocket, SerialInbox, watchSilence } from './link.js'
import { newNonce, proofHolds, proveToken } from './peer-auth.js'
import { writeRollbackFile } from './rollback.js'

/**
 * Downstream side of replication: follows one upstream (a master or a
 * replica). It connects, says where its log ends (hello), and applies what
 * the upstream answers: a partial resync from its log, or a full sync (a
 * snapshot, then the log). Entries go through the Store's group committer
 * with the upstream's seqs, so the position is persisted atomically with
 * the data; the seq is acked upstream only once durably applied.
 *
 * Acks: only while the link streams, that is once `continue` has given
 * this node the upstream's history or a full sync has finished, and then
 * this node's lastSeq, which moves only when a commit is durable (per
 * --sync). During the handshake and a full sync nothing is acked: the log
 * this node holds then is about to be kept, discarded or replaced, and an
 * ack of it would let a w=N write count a replica that lacks it.
 *
 * Rules it keeps:
 * - entries are applied in seq order, each exactly lastSeq + 1 (the Store
 *   refuses anything else, and the link is then restarted);
 * - an entry is applied only if its epoch is the one the shared history
 *   gives its seq;
 * - before a full sync, every entry it would discard that its snapshot
 *   does not cover (a divergent tail, or anything past the snapshot's seq)
 *   is written to a rollback file, whatever the upstream claims;
 * - nothing from an upstream is applied before it has proven that it
 *   holds the shared token (peer-auth.ts).
 *
 * An upstream that sends nothing for --repl-timeout (a stopped process, a
 * stalled path: its socket stays open) is given up: the link closes its
 * socket, says why in status and redials. The upstream heartbeats a
 * streaming link every replHeartbeatMs, and before that this node pings it
 * every replAckIntervalMs and counts its pongs, so only an upstream that
 * cannot speak is silent that long; time this node's own inbox holds the
 * socket paused, or its own process was stalled, is not the upstream's
 * silence.
 *
 * After any break it reconnects with backoff and asks again from where it is.
 */

type LinkState = 'connecting' | 'handshake' | 'fullsync' | 'streaming' | 'refused' | 'stopped'

export interface DownstreamHost {
  readonly store: Store
  readonly logger: Logger
  /** The server's one clock. */
  readonly clock: Clock
  /** The link's tunables (see tuning.ts). */
  readonly tuning: DownstreamTuning
  /** HOST:PORT this node serves at, sent in hello. */
  readonly address: string
  /** HOST:PORT this node serves the Redis protocol on, sent in hello, or null. */
  readonly respAddress: string | null
  readonly authToken?: string
  /** TLS for the link (--tls-cert/--tls-key/--tls-ca); plain ws:// without. */
  readonly tls?: PeerTls
  readonly maxFrameBytes: number
  /** An upstream silent this long (monotonic ms, --repl-timeout) is given up and redialled. */
  readonly silenceTimeoutMs: number
  countSync(kind: 'full' | 'partial'): void
  onRollback(entries: number, file: string): void
  /** The upstream named a master (for READONLY errors and clients). */
  onMaster(master: string | null): void
  /** This node's data is about to be replaced: its own downstreams must resync. */
  onFullSyncStart(): void
  /** The resolver for records of a multi-master upstream's policy. */
  resolverFor(policy: ConflictPolicy): ConflictResolver
}

/** The tunables a replication link reads (see tuning.ts). */
type DownstreamTuning = Pick<
  Tuning,
  | 'replHandshakeTimeoutMs'
  | 'replMinBackoffMs'
  | 'replMaxBackoffMs'
  | 'replMaxQueuedApply'
  | 'replAckIntervalMs'
  | 'linkInboxDepth'
>

export class Downstream {
  state: LinkState = 'connecting'
  /** The upstream's lastSeq as of its last message. */
  upstreamHead = 0
  /** When this node last heard from the upstream (monotonic ms, 0: never). */
  lastHeardAt = 0
  /** Since when this node has been behind the upstream's head (0 = caught up). */
  behindSince = 0
  lastRefusal: string | null = null
  /** Times the link gave up an upstream that sent nothing for --repl-timeout. */
  silenceTimeouts = 0
  /** Why the link was last given up for silence, or null. */
  lastSilence: string | null = null
  /** HOST:PORT the upstream serves the Redis protocol on, as it said in the handshake. */
  upstreamRespAddr: string | null = null
  private ws: WebSocket | null = null
  private stopped = false
  private backoff: number
  private retryTimer: NodeJS.Timeout | null = null
  private ackTimer: NodeJS.Timeout | null = null
  private silenceTimer: NodeJS.Timeout | null = null
  private log: Logger
  private syncSeq = 0
  /** The last replicated write handed to the committer (settled or not). */
  private applying: Promise<unknown> = Promise.resolve()

  constructor(
    readonly upstream: string,
    private readonly host: DownstreamHost,
  ) {
    this.log = host.logger.child({ upstream })
    this.backoff = host.tuning.replMinBackoffMs
    this.connect()
  }

  private get store(): Store {
    return this.host.store
  }

  private connect(): void {
    if (this.stopped) return
    this.state = 'connecting'
    // No token in the request: the upstream must first prove that it is
    // one of the group (see peer-auth.ts).
    const ws = dialPeer(this.upstream, '/replication', this.host.tls, {
      maxPayload: this.host.maxFrameBytes,
      perMessageDeflate: false,
      handshakeTimeout: this.host.tuning.replHandshakeTimeoutMs,
    })
    this.ws = ws
    const flow = new FlowSocket(ws, 1024 * 1024)
    // A link is live while it is the current one and none of its tasks has
    // failed. Its socket's 'close' comes a turn or more after terminate(),
    // so a failed task must also stop the tasks queued behind it (a chunk
    // refused, then snapshotEnd, must not finish the sync).
    let failed = false
    const live = () => this.ws === ws && !failed && !this.stopped
    const inbox = new SerialInbox(
      ws,
      (err) => {
        failed = true
        this.log.warn('replication link failed', { err })
        ws.terminate()
      },
      this.host.tuning.linkInboxDepth,
    )
    // Tasks of the previous link may still be running (a chunk write, the
    // end of a full sync): this link starts only once they are done.
    const previous = this.inbox
    this.inbox = inbox
    const nonce = newNonce()
    let ackQueued = false
    /**
     * Acks what this node durably holds, once for all the frames whose
     * commits settle in this turn of the event loop: frames that share a
     * group commit settle together, and one ack of the last seq says as
     * much as one per frame did. It goes out at the end of the turn
     * (setImmediate), after every frame of the commit has settled, so no
     * ack waits longer than the turn its commit ended in. Each ack costs
     * the upstream a wake-up, a frame read and decoded, and a pass over
     * its w=N waiters.
     */
    const ackSoon = () => {
      if (ackQueued) return
      ackQueued = true
      setImmediate(() => {
        ackQueued = false
        if (live() && this.state === 'streaming') flow.send({ type: 'ack', seq: this.store.lastSeq })
      })
    }
    /** The upstream's challenge, once it came; the link is used only after its welcome proves the token. */
    let challenge: Uint8Array | null = null
    let proven = false
    ws.on('open', () => {
      this.state = 'handshake'
      this.lastHeardAt = this.host.clock.now()
      this.watchSilence(ws, inbox)
      // Something that accepts the connection but never proves itself must
      // not hold this node's link forever.
      const deadline = setTimeout(() => {
        if (proven || this.ws !== ws) return
        this.log.warn('the upstream did not complete the handshake in time; reconnecting', {
          ms: this.host.tuning.replHandshakeTimeoutMs,
        })
        ws.terminate()
      }, this.host.tuning.replHandshakeTimeoutMs)
      ws.once('close', () => clearTimeout(deadline))
    })
    const { authToken } = this.host
    const onChallenge = (upstreamNonce: Uint8Array) => {
      challenge = upstreamNonce
      // Entries from the previous link may still be in the committer. Say
      // where the log ends only once they are in, or the upstream would
      // resend them and they would clash with the ones being committed.
      void Promise.all([this.applying, previous?.idle()]).then(() => {
        if (!live() || ws.readyState !== ws.OPEN) return
        flow.send({
          type: 'hello',
          nodeId: this.store.nodeId,
          addr: this.host.address,
          respAddr: this.host.respAddress,
          history: this.store.history,
          lastSeq: this.store.lastSeq,
          nonce,
          proof: proveToken(authToken, 'replication', 'dialer', upstreamNonce, nonce),
          conflict: this.store.policy.conflict,
          format: DATA_FORMAT,
          maxFrameBytes: this.host.maxFrameBytes,
        })
        this.ackTimer = setInterval(() => {
          if (!live() || ws.readyState !== ws.OPEN) return
          // Before it streams, this node has nothing to ack, but the upstream
          // drops a downstream it has not heard from in --repl-timeout (a
          // full sync can take longer): a ping says it is alive.
          if (this.state === 'streaming') flow.send({ type: 'ack', seq: this.store.lastSeq })
          else ws.ping()
        }, this.host.tuning.replAckIntervalMs)
      })
    }
    /** Before the upstream has proven itself, only its challenge, its welcome and a refusal are taken. */
    const authenticate = (message: UpstreamMessage): boolean => {
      if (message.type === 'challenge' && challenge === null) {
        onChallenge(message.nonce)
        return false
      }
      if (message.type === 'refuse') return true
      if (message.type === 'welcome' && challenge !== null) {
        if (proofHolds(authToken, 'replication', 'listener', challenge, nonce, message.proof)) {
          proven = true
          return false
        }
      }
      this.log.warn('the upstream could not prove it holds the auth token; applying nothing from it', {
        got: message.type,
      })
      ws.terminate()
      return false
    }
    const onMessage = (data: RawData) => {
      const receivedAt = this.host.clock.now()
      this.lastHeardAt = receivedAt
      let message: UpstreamMessage
      try {
        const parsed = upstreamMessageSchema.safeParse(decodeFrame(data as Buffer))
        if (!parsed.success) throw new Error(parsed.error.issues[0]?.message)
        message = parsed.data
      } catch (err) {
        this.log.warn('bad message from upstream; reconnecting', { err })
        ws.terminate()
        return
      }
      if (!proven && !authenticate(message)) return
      if (message.type === 'refuse') return this.onRefuse(message.reason, message.message)
      if (message.type === 'entries') {
        // Entries are handed to the committer in arrival order without
        // waiting, so consecutive frames share group commits.
        inbox.push(() => {
          if (live()) this.onEntries(message.entries, message.head, flow, inbox, ackSoon, receivedAt)
        })
      } else {
        // A task still queued when its link has closed is dropped: what it
        // carried is asked for again, by position, on the next link.
        inbox.push(() => (live() ? this.onControl(message, flow, live) : undefined))
      }
    }
    ws.on(
      'message',
      guarded('replication', this.log, () => ws.terminate(), onMessage),
    )
    ws.on('pong', () => {
      this.lastHeardAt = this.host.clock.now()
    })
    ws.on('error', (err) => this.log.debug('replication socket error', { err: err.message }))
    ws.on('close', (code, reason) => this.onClose(code, reason.toString()))
  }

  /**
   * Gives the upstream up once it has sent nothing (no message, no pong)
   * for silenceTimeoutMs. The silence counts from what was last heard, or
   * from when this node last held the socket paused (its inbox full, its
   * committer busy: the upstream could not be heard), whichever is later.
   * A check that comes late by more than half the timeout means this
   * node's own process was stalled: what the upstream sent meanwhile waits
   * in the socket, read before the next check, so no verdict is given on
   * this one.
   */
  private watchSilence(ws: WebSocket, inbox: SerialInbox): void {
    if (this.silenceTimer) clearInterval(this.silenceTimer)
    this.silenceTimer = watchSilence({
      timeoutMs: this.host.silenceTimeoutMs,
      clock: this.host.clock,
      inbox,
      current: () => this.ws === ws,
      lastHeardAt: () => this.lastHeardAt,
      onSilent: (silentMs) => this.onSilenceTimeout(ws, silentMs),
    })
  }

  private onSilenceTimeout(ws: WebSocket, silentMs: number): void {
    this.silenceTimeouts++
    this.lastSilence = `silent: the upstream sent nothing for ${silentMs} ms (more than --repl-timeout ${this.host.silenceTimeoutMs} ms); redialling`
    this.log.warn('replication link given up: the upstream is silent', {
      silentMs,
      timeoutMs: this.host.silenceTimeoutMs,
    })
    ws.terminate()
  }

  /** Handles a control message; after each wait it goes on only while its link is `live()`. */
  private async onControl(message: UpstreamMessage, flow: FlowSocket, live: () => boolean): Promise<void> {
    switch (message.type) {
      case 'continue':
        this.host.countSync('partial')
        this.host.onMaster(message.master)
        this.upstreamRespAddr = message.respAddr ?? null
        if (JSON.stringify(message.history) !== JSON.stringify(this.store.history)) {
          await this.store.setHistory(message.history as HistoryEpoch[])
          if (!live()) return
        }
        this.resolver = this.resolverOf(message.conflict ?? null)
        this.log.info('partial resync', { fromSeq: message.fromSeq })
        this.state = 'streaming'
        this.backoff = this.host.tuning.replMinBackoffMs
        this.lastRefusal = null
        flow.send({ type: 'ack', seq: this.store.lastSeq })
        return
      case 'fullsync': {
        this.host.countSync('full')
        this.host.onMaster(message.master)
        this.upstreamRespAddr = message.respAddr ?? null
        this.state = 'fullsync'
        this.lastRefusal = null
        // Whatever the upstream says, entries the snapshot does not cover
        // (past its seq, or past where its history parts from this node's)
        // are written out before the data is cleared: a full sync never
        // drops an entry without a trace.
        const history = message.history as HistoryEpoch[]
        const covered = forkPoint(this.store.history, this.store.lastSeq, history, message.seq)
        const keep = Math.min(covered, message.rollbackAfter ?? covered)
        if (this.store.lastSeq > keep) {
          const reason =
            message.rollbackAfter === keep
              ? 'divergent tail after fail-over'
              : `full sync to seq ${message.seq} that does not hold these entries`
          const result = await writeRollbackFile(this.store, keep, reason)
          if (!live()) return
          if (result) {
            this.log.warn('rolled back entries the full sync does not hold', {
              entries: result.entries,
              file: result.file,
              reason,
            })
            this.host.onRollback(result.entries, result.file)
          }
        }
        this.log.info('full sync started', { seq: message.seq, discardingSeq: this.store.lastSeq })
        this.host.onFullSyncStart()
        await this.store.beginFullSync()
        if (!live()) return
        await this.store.adoptPolicy(message.conflict ?? null)
        this.resolver = this.resolverOf(message.conflict ?? null)
        this.syncSeq = message.seq
        this.syncHistory = message.history as HistoryEpoch[]
        this.syncClock = message.clock
        return
      }
      case 'snapshot':
        if (this.state !== 'fullsync') throw new Error('snapshot outside a full sync')
        await this.store.applySnapshotChunk(message.chunk, message.count)
        return
      case 'snapshotEnd':
        if (this.state !== 'fullsync' || message.seq !== this.syncSeq) throw new Error('unexpected snapshotEnd')
        await this.store.finishFullSync(message.seq, this.syncHistory, this.syncClock)
        this.log.info('full sync done', { seq: message.seq })
        if (!live()) return
        this.state = 'streaming'
        this.backoff = this.host.tuning.replMinBackoffMs
        flow.send({ type: 'ack', seq: this.store.lastSeq })
        return
      case 'history':
        // Only ever extends: the shared part was checked at handshake.
        await this.store.setHistory(message.history as HistoryEpoch[])
        // The upstream counts acks only from a downstream on its current history.
        if (live() && this.state === 'streaming') flow.send({ type: 'ack', seq: this.store.lastSeq })
        return
      case 'heartbeat':
        this.noteHead(message.head)
        this.host.onMaster(message.master)
        return
      case 'refuse':
        return this.onRefuse(message.reason, message.message)
      case 'entries':
      case 'challenge':
      case 'welcome':
        // Entries go to onEntries; a second challenge or welcome is ignored.
        return
    }
  }

  /**
   * The upstream will not serve this node, and closes the link right after
   * saying why: taken as it arrives, not behind the inbox's tasks (a full
   * sync being set up), which a closed link drops.
   */
  private onRefuse(reason: string, message: string): void {
    this.state = 'refused'
    this.lastRefusal = `${reason}: ${message}`
    this.log.warn('upstream refused to serve this node; will retry', { reason, message })
    this.backoff = this.host.tuning.replMaxBackoffMs
  }

  private syncHistory: HistoryEpoch[] = []
  /** How entries from this upstream are applied: its log's order, or its conflict policy (a multi-master upstream). */
  private resolver: ConflictResolver = logOrderWins

  private resolverOf(conflict: ConflictPolicy | null): ConflictResolver {
    return conflict === null ? logOrderWins : this.host.resolverFor(conflict)
  }
  private syncClock: StoreClock | undefined
  /** The current link's inbox. */
  private inbox: SerialInbox | null = null

  private onEntries(
    entries: Uint8Array[],
    head: number,
    flow: FlowSocket,
    inbox: SerialInbox,
    ackSoon: () => void,
    receivedAt: number,
  ): void {
    // Entries still queued from a link this node has left must not be
    // applied: they may belong to a history it no longer follows.
    if (this.stopped) return
    if (this.state !== 'streaming') throw new Error(`entries while ${this.state}`)
    if (entries.length === 0) return this.noteHead(head)
    const decoded: ApplyEntry[] = new Array(entries.length)
    for (let i = 0; i < entries.length; i++) {
      const bytes = entries[i]
      const raw = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes)
      const entry = readForApply(raw)
      if (entry.epoch !== epochAt(this.store.history, entry.seq)) {
        throw new Error(`entry ${entry.seq} is from epoch ${entry.epoch}, not the shared history's`)
      }
      decoded[i] = entry
    }
    // One frame is one write for the committer: one promise; the frames of
    // one commit, one ack.
    const last = this.store.applyRemote(decoded, this.resolver, 'keep', receivedAt)
    this.applying = last.catch(() => {})
    this.noteHead(head)
    inbox.handedOff(last, this.host.tuning.replMaxQueuedApply)
    last.then(
      () => {
        this.noteHead(this.upstreamHead)
        ackSoon()
      },
      (err) => {
        this.log.warn('could not apply replicated entries; reconnecting', { err })
        flow.ws.terminate() // this frame's link, not a newer one
      },
    )
  }

  private noteHead(head: number): void {
    if (head > this.upstreamHead) this.upstreamHead = head
    if (this.store.lastSeq >= this.upstreamHead) this.behindSince = 0
    else if (this.behindSince === 0) this.behindSince = this.host.clock.now()
  }

  /** Entries this node still lacks, as far as it knows. */
  get lagEntries(): number {
    return Math.max(0, this.upstreamHead - this.store.lastSeq)
  }

  get lagMs(): number {
    return this.behindSince === 0 ? 0 : Math.round(this.host.clock.now() - this.behindSince)
  }

  private onClose(code: number, reason: string): void {
    if (this.ackTimer) clearInterval(this.ackTimer)
    this.ackTimer = null
    if (this.silenceTimer) clearInterval(this.silenceTimer)
    this.silenceTimer = null
    this.ws = null
    if (this.stopped) return
    if (this.state !== 'refused') this.state = 'connecting'
    this.log.info('replication link closed; reconnecting', { code, reason, inMs: Math.round(this.backoff) })
    this.retryTimer = setTimeout(() => this.connect(), this.backoff)
    this.backoff = Math.min(this.host.tuning.replMaxBackoffMs, this.backoff * 2)
  }

  /**
   * Stops following, and resolves once every entry already handed to the
   * committer is written: whoever follows next must start from a position
   * that no late write from this link can move.
   */
  async stop(): Promise<void> {
    this.stopped = true
    this.state = 'stopped'
    if (this.retryTimer) clearTimeout(this.retryTimer)
    if (this.ackTimer) clearInterval(this.ackTimer)
    if (this.silenceTimer) clearInterval(this.silenceTimer)
    this.ws?.close(1000, 'stopped following')
    this.ws?.terminate()
    this.ws = null
    await this.store.idle()
  }
}
