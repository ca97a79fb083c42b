import { performance } from 'node:perf_hooks'
import {
  decodeFrame,
  encodeFrame,
  FrameDecodeError,
  framedMessages,
  OPS,
  requestSchema,
  TandemError,
  type WireError,
} from '@tandem/protocol'
import type { WebSocket } from 'ws'
import type { Config } from '../config.js'
import type { TandemNode } from '../node.js'
import type { Logger } from '../util/logger.js'
import type { LatencyHistogram } from '../util/metrics.js'
import { tokenMatches } from './auth.js'
import { checkLimits, handle } from './handlers.js'

/** WebSocket close codes tandem uses. */
export const CLOSE = {
  GOING_AWAY: 1001,
  UNSUPPORTED_DATA: 1003,
  INVALID_PAYLOAD: 1007,
  POLICY: 1008,
  UNAUTHORIZED: 4401,
} as const

/** How long a closing socket may take to finish the close handshake before it is dropped. */
const CLOSE_GRACE_MS = 2000

/**
 * A connection that owes replies, or is receiving a frame, and has sent
 * nothing for this long gets a WebSocket ping: clients take a node that
 * answers nothing for a while as gone (the SDK's livenessTimeoutMs), and a
 * client's own ping cannot get through a socket this node has paused for
 * backpressure, nor overtake a large frame it is still uploading.
 */
export const KEEPALIVE_MS = 500

export interface ConnectionHooks {
  onRequest(op: string): void
  onError(code: string): void
  /** Seconds from reading a request to sending its reply, by op. */
  latency?: LatencyHistogram
}

/**
 * One client socket. Requests may be pipelined; each reply carries the
 * request's id. Replies produced in the same turn go out in one frame.
 *
 * Backpressure: a request is dispatched only while fewer than
 * `maxInFlight` are unanswered and the replies waiting in the socket are
 * under `maxReplyBufferBytes`. Requests read but not yet dispatched (the
 * rest of a pipelined frame, or of one socket read) wait in `backlog`, and
 * while it is not empty the socket is paused, so TCP pushes back on the
 * client. The backlog is thus bounded by one frame plus one socket read,
 * and the in-flight cap holds however the client frames its requests.
 */
export class ClientConnection {
  inFlight = 0
  private authenticated: boolean
  private outbox: unknown[] = []
  private flushScheduled = false
  /** Requests read from the socket, waiting for in-flight room; dispatched from `backlogHead`. */
  private backlog: unknown[] = []
  /** When each backlogged request's frame was read (performance.now()). */
  private backlogAt: number[] = []
  private backlogHead = 0
  private paused = false
  /** performance.now() of the keepalive check that last saw bytes go out (or of the last ping). */
  private lastSentAt = performance.now()
  private readonly socket: { bytesRead?: number; bytesWritten?: number } | undefined
  /** The socket's byte counters at the last keepalive check. */
  private readAtCheck = 0
  private writtenAtCheck = 0
  private stopping = false
  private closed = false
  private readonly idleWaiters: (() => void)[] = []
  /** performance.now() when the frame being dispatched was read: requests that came in it share it. */
  private readAt = 0
  /** Ops and read times of the replies in the outbox, timed when the outbox is flushed. */
  private timedOps: string[] = []
  private timedAt: number[] = []

  constructor(
    private readonly ws: WebSocket,
    private readonly node: TandemNode,
    private readonly config: Config,
    private readonly logger: Logger,
    private readonly hooks: ConnectionHooks,
    preAuthenticated: boolean,
  ) {
    this.authenticated = config.authToken === undefined || preAuthenticated
    ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary))
    ws.on('close', () => this.onClose())
    ws.on('error', (err) => this.logger.debug('client socket error', { err }))
    const socket = (ws as unknown as { _socket?: NodeJS.EventEmitter & { bytesRead?: number; bytesWritten?: number } })
      ._socket
    socket?.on('drain', () => this.onDrain())
    this.socket = socket
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    // Once closing, the socket is read only for the peer's close frame.
    if (this.closed) return
    if (!isBinary) return this.close(CLOSE.UNSUPPORTED_DATA, 'tandem speaks msgpack in binary frames')
    let decoded: unknown
    try {
      decoded = decodeFrame(data)
    } catch (err) {
      this.hooks.onError('INVALID')
      return this.close(CLOSE.INVALID_PAYLOAD, err instanceof FrameDecodeError ? err.message : 'malformed frame')
    }
    // One clock read per frame, not per request; a request that waits in
    // the backlog for in-flight room is timed from here too.
    const at = performance.now()
    for (const message of framedMessages(decoded)) {
      this.backlog.push(message)
      this.backlogAt.push(at)
    }
    this.pump()
  }

  private onDrain(): void {
    this.pump()
  }

  /** Dispatches backlogged requests while there is room, then pauses or resumes the socket to match. */
  private pump(): void {
    while (this.backlogHead < this.backlog.length && !this.closed && !this.overLimit()) {
      const message = this.backlog[this.backlogHead]
      this.readAt = this.backlogAt[this.backlogHead]
      this.backlog[this.backlogHead++] = undefined
      this.onRequest(message)
    }
    if (this.backlogHead === this.backlog.length) {
      this.backlog = []
      this.backlogAt = []
      this.backlogHead = 0
    }
    this.updateFlow()
    this.notifyIfIdle()
  }

  /**
   * Whether this connection may take no more requests for now. Replies still
   * in the outbox count as in flight: they are not yet in bufferedAmount.
   */
  private overLimit(): boolean {
    return (
      this.inFlight + this.outbox.length >= this.config.maxInFlight ||
      this.ws.bufferedAmount > this.config.maxReplyBufferBytes
    )
  }

  private onRequest(message: unknown): void {
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
          return this.send({ id, result: true })
        }
      }
      this.fail(id, new TandemError('UNAUTHORIZED', 'this node requires an auth token; none or a wrong one was given'))
      this.flush()
      return this.close(CLOSE.UNAUTHORIZED, 'UNAUTHORIZED')
    }
    const parsed = requestSchema.safeParse(message)
    if (!parsed.success) return this.fail(id, invalid(message, parsed.error.issues))
    const req = parsed.data
    let result: unknown
    const at = this.readAt
    try {
      checkLimits(req, this.config)
      result = handle(this.node, req)
    } catch (err) {
      this.timed(req.op, at)
      return this.fail(id, err)
    }
    if (result instanceof Promise) {
      this.inFlight++
      result.then(
        (value) => this.settle(id, req.op, at, value),
        (err) => this.settle(id, req.op, at, undefined, err),
      )
    } else {
      this.timed(req.op, at)
      this.send({ id, result })
    }
  }

  private settle(id: number, op: string, at: number, result: unknown, err?: unknown): void {
    this.inFlight--
    this.timed(op, at)
    if (err === undefined) this.send({ id, result })
    else this.fail(id, err)
    this.pump()
  }

  /** Notes a reply about to be queued, to be timed when the outbox is flushed. */
  private timed(op: string, at: number): void {
    if (this.hooks.latency === undefined || this.closed) return
    this.timedOps.push(op)
    this.timedAt.push(at)
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
    this.send({ id, error: wire })
  }

  private send(reply: unknown): void {
    if (this.closed) return
    this.outbox.push(reply)
    if (!this.flushScheduled) {
      this.flushScheduled = true
      // After the current turn's promise jobs: replies resolved together
      // (one group commit's writers) leave in one frame.
      process.nextTick(() => this.onFlushTick())
    }
  }

  private flush(): void {
    this.flushScheduled = false
    if (this.outbox.length === 0 || this.closed) return
    const batch = this.outbox
    this.outbox = []
    this.ws.send(encodeFrame(batch.length === 1 ? batch[0] : batch))
    if (this.timedOps.length > 0) this.observeLatency()
  }

  /** One clock read for every reply of the flush. */
  private observeLatency(): void {
    const latency = this.hooks.latency as LatencyHistogram
    const now = performance.now()
    for (let i = 0; i < this.timedOps.length; i++) latency.observe(this.timedOps[i], (now - this.timedAt[i]) / 1000)
    this.timedOps = []
    this.timedAt = []
  }

  /** Pings the client if this connection owes replies, holds its socket paused or is receiving, and has been quiet (see KEEPALIVE_MS). */
  keepalive(now: number): void {
    const read = this.socket?.bytesRead ?? 0
    const receiving = read !== this.readAtCheck
    this.readAtCheck = read
    // Bytes written since the last check (replies, pushes) are not quiet.
    const written = this.socket?.bytesWritten ?? 0
    if (written !== this.writtenAtCheck) {
      this.writtenAtCheck = written
      this.lastSentAt = now
    }
    if (this.closed || (this.inFlight === 0 && !this.paused && !receiving) || now - this.lastSentAt < KEEPALIVE_MS)
      return
    this.lastSentAt = now
    this.ws.ping()
  }

  private onFlushTick(): void {
    this.flush()
    // The outbox counted against the in-flight cap: backlogged requests, or
    // the paused socket, may have been waiting on it.
    this.pump()
  }

  /** Pushes a message the client did not ask for (topology changes). */
  push(message: unknown): void {
    this.send(message)
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

  get isPaused(): boolean {
    return this.paused
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
    // The close handshake ends when the peer's close frame is read; a socket
    // paused for backpressure or shutdown would otherwise sit until ws's
    // 30 s close timeout, and hold up the server's exit that long. A peer
    // that does not read at all gets CLOSE_GRACE_MS, then is dropped.
    this.ws.resume()
    setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS).unref()
  }

  private onClose(): void {
    this.closed = true
    this.timedOps = []
    this.timedAt = []
    this.backlog = []
    this.backlogAt = []
    this.backlogHead = 0
    for (const w of this.idleWaiters.splice(0)) w()
  }
}

function invalid(message: unknown, issues: { path: PropertyKey[]; message: string }[]): TandemError {
  const op = (message as { op?: unknown }).op
  if (typeof op !== 'string' || !(OPS as readonly string[]).includes(op)) {
    return new TandemError('INVALID', `unknown op ${JSON.stringify(op)}; expected one of ${OPS.join(', ')}`)
  }
  const issue = issues[0]
  const where = issue.path.length > 0 ? issue.path.map(String).join('.') : 'request'
  return new TandemError('INVALID', `${op}: ${where}: ${issue.message}`)
}
