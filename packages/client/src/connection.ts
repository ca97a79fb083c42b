import { decodeFrame, encodeFrame, framedMessages, TandemError, type WireError } from '@tandem/protocol'
import WebSocket from 'ws'

/**
 * One WebSocket to one tandem node. Requests are numbered; the replies are
 * matched by id. Requests made in the same turn are sent as one frame (auto
 * pipelining), so a burst of concurrent calls costs one write, not many.
 *
 * The connection does not reconnect by itself; TandemClient decides what to
 * do when one drops (retry reads, report writes as UNCERTAIN).
 */
export interface PendingRequest {
  id: number
  message: Record<string, unknown>
  /** Whether the request may have taken effect if its reply is lost. */
  mutates: boolean
  resolve(result: unknown): void
  reject(err: TandemError): void
  /** Sends the request again on whatever connection the client has next. */
  retry?: () => void
}

export interface NodeConnectionOptions {
  authToken?: string
  connectTimeoutMs: number
  maxFrameBytes: number
  onPush?: (message: Record<string, unknown>) => void
}

export type ConnectionState = 'connecting' | 'open' | 'closed'

export class NodeConnection {
  state: ConnectionState = 'connecting'
  readonly ready: Promise<void>
  private readonly ws: WebSocket
  private readonly pending = new Map<number, PendingRequest>()
  private outbox: Record<string, unknown>[] = []
  private flushScheduled = false
  private closeListeners: ((err: TandemError, unsent: PendingRequest[], sent: PendingRequest[]) => void)[] = []
  private unsent: PendingRequest[] = []

  constructor(
    readonly address: string,
    options: NodeConnectionOptions,
  ) {
    const headers: Record<string, string> = {}
    if (options.authToken) headers.authorization = `Bearer ${options.authToken}`
    this.ws = new WebSocket(`ws://${address}/`, {
      headers,
      maxPayload: options.maxFrameBytes,
      perMessageDeflate: false,
      handshakeTimeout: options.connectTimeoutMs,
    })
    this.ws.binaryType = 'nodebuffer'
    this.ready = new Promise<void>((resolve, reject) => {
      this.ws.once('open', () => {
        this.state = 'open'
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
    for (const r of batch) this.pending.set(r.id, r)
    this.outbox = batch.map((r) => r.message)
    const frame = encodeFrame(this.outbox.length === 1 ? this.outbox[0] : this.outbox)
    this.outbox = []
    this.ws.send(frame)
  }

  private onMessage(data: Buffer, onPush?: (message: Record<string, unknown>) => void): void {
    let messages: unknown[]
    try {
      messages = framedMessages(decodeFrame(data))
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

  private shutdown(err: TandemError): void {
    if (this.state === 'closed') return
    this.state = 'closed'
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
