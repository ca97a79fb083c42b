import type { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import {
  bearerHeaders,
  decodeFrame,
  encodeFrame,
  fastReplyMessages,
  framedMessages,
  MAX_FRAME_BYTES_CEILING,
  packFrames,
  TandemError,
  type WireError,
} from '@tandem/protocol'
import WebSocket from 'ws'
import { encodeRequestFrame } from './request-writer.js'

/**
 * One WebSocket to one tandem node. Requests are numbered; the replies are
 * matched by id. Requests made in the same turn are sent as one frame (auto
 * pipelining), so a burst of concurrent calls costs one write, not many.
 *
 * The connection does not reconnect by itself; when one drops, TandemClient
 * opens another and each request decides what to do (a Call retries a
 * read, reports a sent write as UNCERTAIN).
 *
 * Liveness: a node that is stopped (SIGSTOP, a frozen VM) or cut off
 * without a reset keeps its TCP connection open and answers nothing.
 * While requests wait for replies, anything that arrives counts as a sign
 * of life: a frame, a pong, a ping (a node pings a client it owes replies
 * to every half second of quiet, even one whose socket it has paused for
 * backpressure), or bytes of a frame still being received. After half of
 * livenessTimeoutMs without one, the connection sends a ping; if that
 * ping goes unanswered for another half, and nothing came for the whole
 * timeout, the connection is closed as lost. Time is monotonic, and the
 * verdict waits until the socket's pending reads have landed (after a
 * stall of this process, replies may be sitting unread). Without
 * this, writes sent to a paused master would wait out their whole
 * timeout after the group had elected a new master.
 */
export interface PendingRequest {
  id: number
  message: Record<string, unknown>
  /** Whether the request may have taken effect if its reply is lost. */
  mutates: boolean
  resolve(result: unknown): void
  reject(err: TandemError): void
  /** Its connection is gone; `sent` says whether the node may have received it. */
  connectionLost(address: string, cause: TandemError, sent: boolean): void
}

/**
 * TLS to the nodes (they run with --tls-cert/--tls-key): `true` checks their
 * certificates against the system's CAs; an object can name the CA(s) to
 * trust instead (PEM), and a client certificate.
 */
export type ClientTls =
  | boolean
  | {
      ca?: string | Buffer | (string | Buffer)[]
      cert?: string | Buffer
      key?: string | Buffer
    }

interface NodeConnectionOptions {
  authToken?: string
  tls?: ClientTls
  connectTimeoutMs: number
  /** Largest frame to send: the node's --max-frame-bytes. */
  maxFrameBytes: number
  /** Silence, with requests waiting for replies, after which the node is taken as gone (0: never). */
  livenessTimeoutMs: number
  onPush?: (message: Record<string, unknown>) => void
}

type ConnectionState = 'connecting' | 'open' | 'closed'

export interface DialOptions {
  authToken?: string
  tls?: ClientTls
  /** Largest frame the socket takes. */
  maxFrameBytes: number
  connectTimeoutMs: number
}

/**
 * A WebSocket to `path` on a node, with the token (as a Bearer header) and
 * TLS options every socket of the SDK uses: the requests' connection at /,
 * watches at /watch, snapshots at /snapshot.
 */
export function dial(address: string, path: string, options: DialOptions): WebSocket {
  const tls = options.tls === true ? {} : options.tls || undefined
  const ws = new WebSocket(`${tls ? 'wss' : 'ws'}://${address}${path}`, {
    ...(tls ? { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: true } : {}),
    headers: bearerHeaders(options.authToken),
    maxPayload: options.maxFrameBytes,
    perMessageDeflate: false,
    handshakeTimeout: options.connectTimeoutMs,
  })
  ws.binaryType = 'nodebuffer'
  return ws
}

export class NodeConnection {
  state: ConnectionState = 'connecting'
  readonly ready: Promise<void>
  private readonly ws: WebSocket
  private readonly pending = new Map<number, PendingRequest>()
  private flushScheduled = false
  private closeListeners: ((err: TandemError, unsent: PendingRequest[], sent: PendingRequest[]) => void)[] = []
  private unsent: PendingRequest[] = []
  /** performance.now() when this connection last received anything, or began to wait for a reply. */
  private lastHeardAt = 0
  /** performance.now() of the ping not yet followed by anything received; 0 when none. */
  private pingedAt = 0
  /** The socket ws runs over, from its upgrade response; its byte count shows a large frame arriving. */
  private socket: Socket | null = null
  private bytesReadAtCheck = 0
  private livenessTimer: NodeJS.Timeout | null = null
  private readonly maxFrameBytes: number

  constructor(
    readonly address: string,
    options: NodeConnectionOptions,
  ) {
    this.maxFrameBytes = options.maxFrameBytes
    // It reads whatever a node may send: no node frames more than the ceiling.
    this.ws = dial(address, '/', { ...options, maxFrameBytes: MAX_FRAME_BYTES_CEILING })
    this.ws.once('upgrade', (res) => {
      this.socket = res.socket
    })
    this.ready = new Promise<void>((resolve, reject) => {
      this.ws.once('open', () => {
        this.state = 'open'
        if (options.livenessTimeoutMs > 0) {
          this.livenessTimer = setInterval(
            () => this.checkLiveness(options.livenessTimeoutMs),
            options.livenessTimeoutMs / 4,
          )
          this.livenessTimer.unref()
        }
        this.flush()
        resolve()
      })
      this.ws.once('unexpected-response', (_req, res) => {
        const code = res.statusCode === 401 ? 'UNAUTHORIZED' : res.statusCode === 503 ? 'BUSY' : 'UNAVAILABLE'
        const err = new TandemError(code, `${address} refused the connection: HTTP ${res.statusCode}`)
        res.resume()
        this.ws.terminate()
        this.shutdown(err)
        reject(err)
      })
      this.ws.once('close', (code, reason) => {
        const text = reason.toString()
        const err =
          code === 4401
            ? new TandemError('UNAUTHORIZED', `${address} requires a valid auth token`)
            : new TandemError('UNAVAILABLE', `connection to ${address} closed (${code}${text ? ` ${text}` : ''})`)
        this.shutdown(err)
        reject(err)
      })
      this.ws.on('error', (err) => {
        const e = new TandemError('UNAVAILABLE', `cannot reach ${address}: ${err.message}`, { cause: err })
        this.shutdown(e)
        reject(e)
      })
    })
    this.ready.catch(() => {})
    this.ws.on('message', (data) => this.onMessage(data as Buffer, options.onPush))
    const heard = () => {
      this.lastHeardAt = performance.now()
    }
    this.ws.on('pong', heard)
    this.ws.on('ping', heard)
  }

  get inFlight(): number {
    return this.pending.size + this.unsent.length
  }

  /** Calls back once when the connection is gone, with what was never sent and what was sent but unanswered. */
  onClose(listener: (err: TandemError, unsent: PendingRequest[], sent: PendingRequest[]) => void): void {
    this.closeListeners.push(listener)
  }

  send(request: PendingRequest): void {
    if (this.state === 'closed') throw new TandemError('UNAVAILABLE', `connection to ${this.address} is closed`)
    this.unsent.push(request)
    if (!this.flushScheduled) {
      this.flushScheduled = true
      process.nextTick(() => this.flush())
    }
  }

  /** Forgets a request (timed out): a late reply is then ignored. */
  forget(id: number): void {
    this.pending.delete(id)
    const i = this.unsent.findIndex((r) => r.id === id)
    if (i >= 0) this.unsent.splice(i, 1)
  }

  private flush(): void {
    this.flushScheduled = false
    if (this.state !== 'open' || this.unsent.length === 0) return
    const batch = this.unsent
    this.unsent = []
    if (this.pending.size === 0) this.lastHeardAt = performance.now()
    for (const r of batch) this.pending.set(r.id, r)
    const frame = encodeRequestFrame(batch)
    if (frame.length <= this.maxFrameBytes) return this.ws.send(frame)
    // Over the node's frame limit the node would close the connection
    // (1009), failing every call on it: split, and refuse what alone is too big.
    const encoded: Buffer[] = []
    for (const r of batch) {
      const one = encodeFrame(r.message)
      if (one.length <= this.maxFrameBytes) {
        encoded.push(one)
        continue
      }
      this.pending.delete(r.id)
      r.reject(
        new TandemError(
          'TOOLARGE',
          `the ${String(r.message.op)} request is ${one.length} bytes, larger than a frame (maxFrameBytes ${this.maxFrameBytes})`,
        ),
      )
    }
    for (const f of packFrames(encoded, this.maxFrameBytes)) this.ws.send(f)
  }

  private onMessage(data: Buffer, onPush?: (message: Record<string, unknown>) => void): void {
    this.lastHeardAt = performance.now()
    let messages: unknown[]
    try {
      // The common replies are read by hand (fast-reply.ts); the rest, and every malformed frame, by msgpackr.
      messages = fastReplyMessages(data) ?? framedMessages(decodeFrame(data))
    } catch {
      this.ws.close(1007, 'malformed reply')
      return
    }
    for (const m of messages) {
      const reply = m as { id?: number; result?: unknown; error?: WireError }
      if (typeof reply?.id !== 'number') {
        if (reply && typeof reply === 'object') onPush?.(reply as Record<string, unknown>)
        continue
      }
      const request = this.pending.get(reply.id)
      if (!request) continue
      this.pending.delete(reply.id)
      if (reply.error) request.reject(TandemError.fromWire(reply.error))
      else request.resolve(reply.result)
    }
  }

  private checkLiveness(timeoutMs: number): void {
    const now = performance.now()
    this.noteBytesRead(now)
    if (this.state !== 'open' || this.pending.size === 0) {
      this.pingedAt = 0
      return
    }
    if (this.pingedAt !== 0 && this.lastHeardAt >= this.pingedAt) this.pingedAt = 0
    if (this.pingedAt === 0) {
      if (now - this.lastHeardAt >= timeoutMs / 2) {
        this.pingedAt = now
        this.ws.ping()
      }
      return
    }
    if (now - this.pingedAt < timeoutMs / 2 || now - this.lastHeardAt < timeoutMs) return
    // Timers run before the socket is read: after a stall of this process,
    // the node's replies may be waiting unread. Judge after they land.
    const pingedAt = this.pingedAt
    setImmediate(() => {
      const at = performance.now()
      this.noteBytesRead(at)
      if (this.state !== 'open' || this.pending.size === 0 || this.lastHeardAt >= pingedAt) return
      this.shutdown(
        new TandemError(
          'UNAVAILABLE',
          `${this.address} answered nothing, not even a ping sent ${Math.round(at - pingedAt)} ms ago, for ${Math.round(at - this.lastHeardAt)} ms`,
        ),
      )
      this.ws.terminate()
    })
  }

  /** Bytes of a large frame still arriving are a sign of life too. */
  private noteBytesRead(now: number): void {
    const bytesRead = this.socket?.bytesRead ?? 0
    if (bytesRead !== this.bytesReadAtCheck) {
      this.bytesReadAtCheck = bytesRead
      this.lastHeardAt = now
    }
  }

  private shutdown(err: TandemError): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    if (this.livenessTimer) clearInterval(this.livenessTimer)
    const unsent = this.unsent
    const sent = [...this.pending.values()]
    this.unsent = []
    this.pending.clear()
    for (const l of this.closeListeners) l(err, unsent, sent)
  }

  close(): void {
    if (this.state === 'closed') return
    this.shutdown(new TandemError('CLOSED', 'client closed'))
    this.ws.close(1000)
  }
}
