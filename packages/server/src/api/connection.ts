import type { Socket } from 'node:net'
import {
  decodeFrame,
  encodeFrame,
  FrameDecodeError,
  fastFrameMessages,
  fastRequest,
  framedMessages,
  mayHoldInvalidUtf8,
  messagesWithInvalidUtf8,
  OPS,
  quote,
  type Request,
  requestSchema,
  TandemError,
  truncate,
  type WireError,
  type WriteResult,
} from '@tandem/protocol'
import type { Config } from '../config.js'
import type { TandemNode } from '../node.js'
import { type EntryOp, OP_PUT } from '../storage/log-entry.js'
import { RunRefused } from '../storage/run-refused.js'
import type { Logger } from '../util/logger.js'
import type { LatencyHistogram } from '../util/metrics.js'
import { tokenMatches } from './auth.js'
import type { ClientSocket } from './client-socket.js'
import { checkLimits, handle, replyReserve } from './handlers.js'
import { ReplyOutbox } from './reply-outbox.js'
import { encodeIdentityReply, encodeReply } from './reply-writer.js'
import type { Flushable, TurnFlush } from './turn-flush.js'

/** WebSocket close codes tandem uses. */
export const CLOSE = {
  GOING_AWAY: 1001,
  UNSUPPORTED_DATA: 1003,
  INVALID_PAYLOAD: 1007,
  POLICY: 1008,
  UNAUTHORIZED: 4401,
} as const

interface ConnectionHooks {
  onRequest(op: string): void
  onError(code: string): void
  /** Seconds from reading a request to sending its reply, by op. */
  latency?: LatencyHistogram
  /** Where replies wait for the end of the loop's turn (tunable clientFlushPerTurn); without it, each connection flushes on the next tick. */
  turnFlush?: TurnFlush
}

/**
 * One client socket. Requests may be pipelined; each reply carries the
 * request's id. Replies produced in the same turn leave together, in as
 * few frames as fit under --max-frame-bytes (a reply that alone would not
 * fit is replaced by TOOLARGE naming the limit).
 *
 * Backpressure: a request is dispatched only while fewer than
 * `maxInFlight` are unanswered and its reply fits in the reply budget
 * (`maxReplyBufferBytes`) next to the connection's reply bytes: those in
 * the socket not yet flushed, those encoded and waiting for the flush, and
 * those reserved for requests still running (a read reserves the most its
 * reply can take, see replyReserve). With nothing else pending, one
 * request is dispatched whatever its reserve, so a reply up to a frame
 * can always be served: a connection's reply bytes stay under the larger
 * of the budget and the frame limit. Requests read but not yet dispatched
 * (the rest of a pipelined frame, or of one socket read) wait in
 * `backlog`, and while it is not empty the socket is paused, so TCP
 * pushes back on the client. The backlog is thus bounded by one frame plus
 * one socket read, and the caps hold however the client frames its
 * requests.
 */
/**
 * Plain puts (no write concern, no context) dispatched one after another,
 * submitted together when the pass over the backlog ends or another
 * request comes: each is a write of its own, the run one item in the group
 * committer (node.putEach), answered each with its own seq; on a
 * multi-master node (node.putEachMulti) each with its own identity, as a
 * put alone is answered, the client's session stamp (`after`) taken as the
 * put is added to the run.
 */
interface PutRun {
  ops: EntryOp[]
  ids: number[]
  ats: number[]
  reserves: number[]
  /** The newest fail-over epoch the run's puts carry. */
  epoch: number | undefined
}

type PutRequest = Extract<Request, { op: 'put' }>

export class ClientConnection implements Flushable {
  inFlight = 0
  /** The most reply bytes (see replyBytes) this connection has held. */
  peakReplyBytes = 0
  private authenticated: boolean
  private authTimer: NodeJS.Timeout | null = null
  private readonly outbox: ReplyOutbox
  /** Reply bytes reserved for requests still running (see replyReserve). */
  private reserved = 0
  private flushScheduled = false
  /** Requests read from the socket, waiting for in-flight room; dispatched from `backlogHead`. */
  private backlog: unknown[] = []
  /** When each backlogged request's frame was read (the server clock's now()). */
  private backlogAt: number[] = []
  private backlogHead = 0
  private paused = false
  /** now() of the keepalive check that last saw bytes go out (or of the last ping). */
  private lastSentAt: number
  /** The socket's byte counters at the last keepalive check. */
  private readAtCheck = 0
  private writtenAtCheck = 0
  private stopping = false
  private closed = false
  private readonly idleWaiters: (() => void)[] = []
  /** now() when the frame being dispatched was read: requests that came in it share it. */
  private readAt = 0
  /** Ops and read times of the replies in the outbox, timed when the outbox is flushed. */
  private timedOps: string[] = []
  private timedAt: number[] = []
  /** Messages read with a string that was not UTF-8, refused when their turn comes. */
  private readonly notUtf8 = new Set<unknown>()
  /** The plain puts of the current pass not yet submitted (see PutRun). */
  private putRun: PutRun | null = null

  constructor(
    private readonly ws: ClientSocket,
    /** The socket the WebSocket runs over (the one its upgrade came on). */
    private readonly socket: Socket,
    private readonly node: TandemNode,
    private readonly config: Config,
    private readonly logger: Logger,
    private readonly hooks: ConnectionHooks,
    preAuthenticated: boolean,
  ) {
    this.lastSentAt = node.clock.now()
    this.authenticated = config.authToken === undefined || preAuthenticated
    this.outbox = new ReplyOutbox(config.maxFrameBytes)
    if (!this.authenticated) {
      this.authTimer = setTimeout(() => this.guard(() => this.onAuthTimeout()), config.authTimeout)
      this.authTimer.unref()
    }
    ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary))
    ws.on('close', () => this.onClose())
    ws.on('error', (err) => this.logger.debug('client socket error', { err }))
    socket.on('drain', () => this.guard(() => this.onDrain()))
  }

  /**
   * Runs `step` where nothing above it would catch a throw: a socket event,
   * a timer, a tick, a promise's callback (a throw in one of those is an
   * uncaught exception or an unhandled rejection, and ends the process). A
   * throw closes this connection alone, logged and counted as the socket's
   * own handler does (ClientSocket.onHandlerThrew).
   */
  private guard(step: () => void): void {
    try {
      step()
    } catch (err) {
      this.ws.onHandlerThrew(err)
    }
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    // Once closing, the socket is read only for the peer's close frame.
    if (this.closed) return
    if (!isBinary) return this.close(CLOSE.UNSUPPORTED_DATA, 'tandem speaks msgpack in binary frames')
    // The common frames are read by hand; any other goes to msgpackr, which judges it.
    let messages = fastFrameMessages(data)
    if (messages === null) {
      let decoded: unknown
      try {
        decoded = decodeFrame(data)
      } catch (err) {
        this.hooks.onError('INVALID')
        return this.close(CLOSE.INVALID_PAYLOAD, err instanceof FrameDecodeError ? err.message : 'malformed frame')
      }
      messages = framedMessages(decoded)
      for (const message of messages) {
        // Rare: only a message holding U+FFFD can have had bytes that are not UTF-8.
        if (mayHoldInvalidUtf8(message)) {
          for (const i of messagesWithInvalidUtf8(data)) this.notUtf8.add(messages[i])
        }
      }
    }
    // One clock read per frame, not per request; a request that waits in
    // the backlog for in-flight room is timed from here too.
    const at = this.node.clock.now()
    for (const message of messages) {
      this.backlog.push(message)
      this.backlogAt.push(at)
    }
    this.pump()
  }

  private onDrain(): void {
    this.pump()
  }

  private onAuthTimeout(): void {
    this.authTimer = null
    if (this.authenticated || this.closed) return
    this.hooks.onError('UNAUTHORIZED')
    this.close(CLOSE.UNAUTHORIZED, `no auth within --auth-timeout (${this.config.authTimeout} ms)`)
  }

  /** Whether this connection has shown the token (always, on a node without one). */
  get isAuthenticated(): boolean {
    return this.authenticated
  }

  /** Dispatches backlogged requests while there is room, then pauses or resumes the socket to match. */
  private pump(): void {
    while (this.backlogHead < this.backlog.length && !this.closed && !this.overLimit()) {
      const message = this.backlog[this.backlogHead]
      const reserve = this.authenticated ? replyReserve(message, this.node, this.config) : 0
      const pending = this.replyBytes
      if (pending > 0 && pending + reserve > this.config.maxReplyBufferBytes) break
      this.readAt = this.backlogAt[this.backlogHead]
      this.backlog[this.backlogHead++] = undefined
      this.onRequest(message, reserve)
      this.notePeak()
    }
    this.endPutRun()
    if (this.backlogHead === this.backlog.length) {
      this.backlog = []
      this.backlogAt = []
      this.backlogHead = 0
    }
    this.updateFlow()
    this.notifyIfIdle()
  }

  /** Reply bytes this connection holds: unflushed in the socket, waiting for the flush, and reserved. */
  get replyBytes(): number {
    return this.ws.bufferedAmount + this.outbox.bytes + this.reserved
  }

  private notePeak(): void {
    const bytes = this.replyBytes
    if (bytes > this.peakReplyBytes) this.peakReplyBytes = bytes
  }

  /**
   * Whether this connection may take no more requests for now. Replies still
   * in the outbox count as in flight: they are not yet in bufferedAmount.
   */
  private overLimit(): boolean {
    return (
      this.inFlight + this.outbox.length >= this.config.maxInFlight || this.replyBytes > this.config.maxReplyBufferBytes
    )
  }

  private onRequest(message: unknown, reserve: number): void {
    const id = (message as { id?: unknown } | null)?.id
    if (typeof message !== 'object' || message === null || typeof id !== 'number' || !Number.isSafeInteger(id)) {
      this.hooks.onError('INVALID')
      return this.close(CLOSE.INVALID_PAYLOAD, 'every request must be a map with a numeric id')
    }
    const op = (message as { op?: unknown }).op
    this.hooks.onRequest(typeof op === 'string' && (OPS as readonly string[]).includes(op) ? op : 'unknown')
    if (!this.authenticated) {
      if (op === 'auth' && typeof (message as { token?: unknown }).token === 'string') {
        if (tokenMatches(this.config.authToken, (message as { token: string }).token)) {
          this.authenticated = true
          if (this.authTimer) clearTimeout(this.authTimer)
          this.authTimer = null
          return this.reply(id, true)
        }
      }
      this.fail(id, new TandemError('UNAUTHORIZED', 'this node requires an auth token; none or a wrong one was given'))
      this.flush()
      return this.close(CLOSE.UNAUTHORIZED, 'UNAUTHORIZED')
    }
    if (this.notUtf8.size > 0 && this.notUtf8.delete(message)) {
      return this.fail(
        id,
        new TandemError(
          'INVALID',
          'a string in the request is not valid UTF-8 (a lone UTF-16 surrogate?); nothing was done',
        ),
      )
    }
    // get, put and del are checked without zod; the schema judges (and words
    // the error for) every request the fast check does not take.
    let req = fastRequest(message)
    // A plain put: one the fast check took (no conditions, no TTL), with no write concern or context.
    const plainPut =
      req !== null &&
      req.op === 'put' &&
      req.w === undefined &&
      req.context === undefined &&
      (this.config.mode === 'multi' || req.after === undefined)
    if (req === null) {
      const parsed = requestSchema.safeParse(message)
      if (!parsed.success) return this.fail(id, invalid(message, parsed.error.issues))
      req = parsed.data
    }
    let result: unknown
    const at = this.readAt
    // Whatever is not a plain put goes after the run before it: writes are submitted in the order they came.
    if (!plainPut) this.endPutRun()
    try {
      checkLimits(req, this.config)
      if (plainPut) return this.addToPutRun(req as PutRequest, at, reserve)
      result = handle(this.node, req, this.config)
    } catch (err) {
      this.timed(req.op, at)
      return this.fail(id, err)
    }
    if (result instanceof Promise) {
      this.inFlight++
      this.reserved += reserve
      result.then(
        (value) => this.settle(id, req.op, at, reserve, value),
        (err) => this.settle(id, req.op, at, reserve, undefined, err),
      )
    } else {
      this.timed(req.op, at)
      this.reply(id, result)
    }
  }

  /** A plain put joins the run of puts, in flight until the run is answered. */
  private addToPutRun(req: PutRequest, at: number, reserve: number): void {
    // Multi-master: this node's next stamps come after the client's (throws CLOCKSKEW: this put alone fails).
    if (req.after !== undefined) this.node.orderAfter(req.after)
    this.inFlight++
    this.reserved += reserve
    if (this.putRun === null) this.putRun = { ops: [], ids: [], ats: [], reserves: [], epoch: undefined }
    const run = this.putRun
    run.ops.push([OP_PUT, req.key, req.value])
    run.ids.push(req.id)
    run.ats.push(at)
    run.reserves.push(reserve)
    if (req.epoch !== undefined && (run.epoch === undefined || req.epoch > run.epoch)) run.epoch = req.epoch
  }

  /** Submits the run that just ended (node.putEach, node.putEachMulti): one promise for all its puts. */
  private endPutRun(): void {
    const run = this.putRun
    if (run === null) return
    this.putRun = null
    if (this.config.mode === 'multi') {
      // Each put answered with its identity, or the error that refused it alone.
      this.node.putEachMulti(run.ops).then(
        (outcomes) =>
          this.settlePuts(run, (id, i) => {
            const outcome = outcomes[i]
            if (outcome instanceof Error) this.fail(id, outcome)
            else this.replyIdentity(id, outcome)
          }),
        (err) => this.settlePuts(run, (id) => this.fail(id, err)),
      )
      return
    }
    this.node.putEach(run.ops, run.epoch).then(
      (last) => {
        // The run's seqs are consecutive, ending at `last`.
        const first = last - run.ids.length + 1
        this.settlePuts(run, (id, i) => this.reply(id, { seq: first + i }))
      },
      (err) =>
        this.settlePuts(run, (id, i) => {
          // Some puts of the run refused (RunRefused): each answered for what happened to it.
          const outcome = err instanceof RunRefused ? err.outcomes[i] : undefined
          if (outcome === undefined) this.fail(id, err)
          else if (outcome.ok) this.reply(id, { seq: outcome.seq })
          else this.fail(id, outcome.error)
        }),
    )
  }

  /**
   * A run of puts settled: each is answered as its own put, by `answer`
   * (the put's id, its place in the run). Runs from the promise's
   * callback: a throw is the guard's (see guard).
   */
  private settlePuts(run: PutRun, answer: (id: number, i: number) => void): void {
    try {
      for (let i = 0; i < run.ids.length; i++) {
        this.inFlight--
        this.reserved -= run.reserves[i]
        this.timed('put', run.ats[i])
        answer(run.ids[i], i)
      }
      this.pump()
    } catch (thrown) {
      this.ws.onHandlerThrew(thrown)
    }
  }

  /** A request's promise settled. Runs from the promise's callback: a throw is the guard's (see guard), inline as this runs per request. */
  private settle(id: number, op: string, at: number, reserve: number, result: unknown, err?: unknown): void {
    try {
      this.inFlight--
      this.reserved -= reserve
      this.timed(op, at)
      if (err === undefined) this.reply(id, result)
      else this.fail(id, err)
      this.pump()
    } catch (thrown) {
      this.ws.onHandlerThrew(thrown)
    }
  }

  /** Notes a reply about to be queued, to be timed when the outbox is flushed. */
  private timed(op: string, at: number): void {
    if (this.hooks.latency === undefined || this.closed) return
    this.timedOps.push(op)
    this.timedAt.push(at)
  }

  /** Sends a result; one whose reply would not fit in a frame gets TOOLARGE instead. */
  private reply(id: number, result: unknown): void {
    if (this.closed) return
    this.queueReply(id, encodeReply(id, result))
  }

  /** reply() of a multi-master write's result: its identity, written by encodeIdentityReply when it carries one whole. */
  private replyIdentity(id: number, result: WriteResult): void {
    if (this.closed) return
    const { origin, originSeq, hlc } = result
    if (origin === undefined || originSeq === undefined || hlc === undefined) return this.reply(id, result)
    this.queueReply(id, encodeIdentityReply(id, result.seq, origin, originSeq, hlc))
  }

  /** Queues a reply's bytes; one that would not fit in a frame gets TOOLARGE instead. */
  private queueReply(id: number, encoded: Buffer): void {
    if (this.outbox.fits(encoded.length)) return this.queue(encoded)
    this.fail(
      id,
      new TandemError(
        'TOOLARGE',
        `the reply is ${encoded.length} bytes, larger than a frame (--max-frame-bytes ${this.config.maxFrameBytes})`,
      ),
    )
  }

  private notifyIfIdle(): void {
    if (this.inFlight === 0 && this.backlogHead === this.backlog.length) {
      for (const w of this.idleWaiters.splice(0)) w()
    }
  }

  private fail(id: number, err: unknown): void {
    let wire: WireError
    if (err instanceof TandemError) {
      wire = err.toWire()
    } else {
      this.logger.error('request failed', { err })
      wire = { code: 'INTERNAL', message: `internal error: ${(err as Error)?.message ?? String(err)}` }
    }
    this.hooks.onError(wire.code)
    if (!this.closed) this.queue(encodeFrame({ id, error: wire }))
  }

  private queue(encoded: Buffer): void {
    this.outbox.push(encoded)
    this.notePeak()
    if (!this.flushScheduled) {
      this.flushScheduled = true
      // Replies resolved together (one group commit's writers) leave in one
      // frame: at the end of the loop's turn (see turn-flush.ts), or after
      // the current callback's promise jobs.
      if (this.hooks.turnFlush !== undefined) this.hooks.turnFlush.add(this)
      else process.nextTick(() => this.flushNow())
    }
  }

  private flush(): void {
    this.flushScheduled = false
    if (this.outbox.length === 0 || this.closed) return
    this.outbox.sendTo(this.ws)
    this.notePeak()
    if (this.timedOps.length > 0) this.observeLatency()
  }

  /** One clock read for every reply of the flush. */
  private observeLatency(): void {
    const latency = this.hooks.latency as LatencyHistogram
    const now = this.node.clock.now()
    for (let i = 0; i < this.timedOps.length; i++) latency.observe(this.timedOps[i], (now - this.timedAt[i]) / 1000)
    this.timedOps = []
    this.timedAt = []
  }

  /**
   * Pings the client if this connection owes replies, holds its socket
   * paused or is receiving, and has sent nothing for the tunable
   * clientKeepaliveMs: clients take a node that answers nothing for a while
   * as gone (the SDK's livenessTimeoutMs), and a client's own ping cannot
   * get through a socket this node has paused for backpressure, nor
   * overtake a large frame it is still uploading.
   */
  keepalive(now: number): void {
    const read = this.socket.bytesRead
    const receiving = read !== this.readAtCheck
    this.readAtCheck = read
    // Bytes written since the last check (replies, pushes) are not quiet.
    const written = this.socket.bytesWritten
    if (written !== this.writtenAtCheck) {
      this.writtenAtCheck = written
      this.lastSentAt = now
    }
    if (
      this.closed ||
      (this.inFlight === 0 && !this.paused && !receiving) ||
      now - this.lastSentAt < this.config.tune.clientKeepaliveMs
    )
      return
    this.lastSentAt = now
    this.ws.ping()
  }

  /** Runs from the turn's flush or process.nextTick: a throw is the guard's (see guard), inline as this runs per flush. */
  flushNow(): void {
    try {
      this.flush()
      // The outbox counted against the in-flight cap: backlogged requests, or
      // the paused socket, may have been waiting on it.
      this.pump()
    } catch (thrown) {
      this.ws.onHandlerThrew(thrown)
    }
  }

  /** Pushes a message the client did not ask for (topology changes); a throw closes this connection, not the caller's loop. */
  push(message: unknown): void {
    if (this.closed) return
    try {
      this.queue(encodeFrame(message))
    } catch (thrown) {
      this.ws.onHandlerThrew(thrown)
    }
  }

  private updateFlow(): void {
    if (this.closed) return
    const over = this.stopping || this.backlogHead < this.backlog.length || this.overLimit()
    if (over && !this.paused) {
      this.paused = true
      this.ws.pause()
    } else if (!over && this.paused) {
      this.paused = false
      this.ws.resume()
    }
  }

  /** Resolves once every request read so far (backlog included) has been answered. */
  drained(): Promise<void> {
    if (this.closed || (this.inFlight === 0 && this.backlogHead === this.backlog.length)) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  /** Stops reading new requests (shutdown); requests already read are still answered. */
  stopReading(): void {
    this.stopping = true
    this.paused = true
    this.ws.pause()
  }

  close(code: number, reason: string): void {
    if (this.closed) return
    this.flush()
    this.closed = true
    this.ws.close(code, reason.slice(0, 120))
    // The close handshake ends when the peer's close frame is read, so a
    // socket paused for backpressure or shutdown is read again. A peer that
    // does not answer is dropped after clientCloseGraceMs (the socket's
    // close timer), and holds up the server's exit no longer.
    this.ws.resume()
  }

  private onClose(): void {
    this.closed = true
    this.timedOps = []
    this.timedAt = []
    if (this.authTimer) clearTimeout(this.authTimer)
    this.outbox.clear()
    this.backlog = []
    this.backlogAt = []
    this.backlogHead = 0
    for (const w of this.idleWaiters.splice(0)) w()
  }
}

function invalid(message: unknown, issues: { path: PropertyKey[]; message: string }[]): TandemError {
  const op = (message as { op?: unknown }).op
  if (typeof op !== 'string' || !(OPS as readonly string[]).includes(op)) {
    return new TandemError('INVALID', `unknown op ${quote(op)}; expected one of ${OPS.join(', ')}`)
  }
  // Issues can quote the request (an unrecognized field's name): cut short.
  const issue = issues[0]
  const where = issue.path.length > 0 ? truncate(issue.path.map(String).join('.'), 128) : 'request'
  return new TandemError('INVALID', `${op}: ${where}: ${truncate(issue.message)}`)
}
