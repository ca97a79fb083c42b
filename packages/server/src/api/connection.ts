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

export interface ConnectionHooks {
  onRequest(op: string): void
  onError(code: string): void
}

/**
 * One client socket. Requests may be pipelined; each reply carries the
 * request's id. Replies produced in the same turn go out in one frame.
 *
 * Backpressure: when `maxInFlight` requests are unanswered, or replies
 * waiting in the socket exceed `maxReplyBufferBytes`, the socket is paused
 * (TCP then pushes back on the client) and resumed when both are back under.
 */
export class ClientConnection {
  inFlight = 0
  private authenticated: boolean
  private outbox: unknown[] = []
  private flushScheduled = false
  private paused = false
  private closed = false
  private readonly idleWaiters: (() => void)[] = []

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
    const socket = (ws as unknown as { _socket?: NodeJS.EventEmitter })._socket
    socket?.on('drain', () => this.updateFlow())
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (!isBinary) return this.close(CLOSE.UNSUPPORTED_DATA, 'tandem speaks msgpack in binary frames')
    let decoded: unknown
    try {
      decoded = decodeFrame(data)
    } catch (err) {
      this.hooks.onError('INVALID')
      return this.close(CLOSE.INVALID_PAYLOAD, err instanceof FrameDecodeError ? err.message : 'malformed frame')
    }
    for (const message of framedMessages(decoded)) {
      if (this.closed) return
      this.onRequest(message)
    }
    this.updateFlow()
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
    try {
      checkLimits(req, this.config)
      result = handle(this.node, req)
    } catch (err) {
      return this.fail(id, err)
    }
    if (result instanceof Promise) {
      this.inFlight++
      result.then(
        (value) => this.settle(id, value),
        (err) => this.settle(id, undefined, err),
      )
    } else {
      this.send({ id, result })
    }
  }

  private settle(id: number, result: unknown, err?: unknown): void {
    this.inFlight--
    if (err === undefined) this.send({ id, result })
    else this.fail(id, err)
    if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w()
    this.updateFlow()
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
      process.nextTick(() => this.flush())
    }
  }

  private flush(): void {
    this.flushScheduled = false
    if (this.outbox.length === 0 || this.closed) return
    const batch = this.outbox
    this.outbox = []
    this.ws.send(encodeFrame(batch.length === 1 ? batch[0] : batch))
  }

  /** Pushes a message the client did not ask for (topology changes). */
  push(message: unknown): void {
    this.send(message)
  }

  private updateFlow(): void {
    if (this.closed) return
    const over = this.inFlight >= this.config.maxInFlight || this.ws.bufferedAmount > this.config.maxReplyBufferBytes
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

  /** Resolves once every request taken so far has been answered. */
  drained(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  /** Stops reading new requests (shutdown). */
  stopReading(): void {
    this.paused = true
    this.ws.pause()
  }

  close(code: number, reason: string): void {
    if (this.closed) return
    this.flush()
    this.closed = true
    this.ws.close(code, reason.slice(0, 120))
  }

  private onClose(): void {
    this.closed = true
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
