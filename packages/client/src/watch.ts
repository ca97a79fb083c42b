import { performance } from 'node:perf_hooks'
import {
  decodeFrame,
  encodeFrame,
  TandemError,
  type Value,
  WATCH_DEL,
  type WatchMessage,
  type WireWatchEvent,
} from '@tandem/protocol'
import type WebSocket from 'ws'

export interface WatchOptions {
  /** Only this key. */
  key?: string
  /** Only keys that start with this. */
  prefix?: string
  /**
   * First seq to deliver. Default: changes after what the node holds when
   * the watch starts. A seq the node's log no longer holds fails with TRIMMED.
   */
  fromSeq?: number
  /**
   * Events received but not yet taken from the iterator before the client
   * stops reading the socket (default 10,000); the node then stops reading
   * its log for this watch until the iterator catches up.
   */
  maxBuffered?: number
}

/** One change, in log order. The ops of one batch share its seq. */
export interface WatchEvent {
  seq: number
  type: 'put' | 'del'
  key: string
  /** The value put (same type as stored); absent for a delete. */
  value?: Value
}

/** A position in the log: every event up to `seq` has been received. */
export interface WatchPosition {
  seq: number
  epoch: number
}

/** What a Watch needs of its client. */
export interface WatchHost {
  /** The node to watch now (the master unless the client reads from replicas or is direct). */
  target(): Promise<string>
  /** Whether the watch must be served by the master. */
  readonly wantsMaster: boolean
  dial(address: string): WebSocket
  /** A node refused the watch as not the master, or was lost: forget it as master. */
  lost(address: string, err: TandemError): void
  /** The watch has ended (closed or failed). */
  ended(watch: Watch): void
  /** Wake-ups of calls waiting out a backoff (a pushed master change runs them at once). */
  readonly waiting: Set<() => void>
  readonly livenessTimeoutMs: number
  /** How long the watch may stay unconnected before it fails with UNAVAILABLE. */
  readonly reconnectTimeoutMs: number
}

type WatchState = 'connecting' | 'open' | 'closed'

/** Errors after which the watch goes on elsewhere: the node was not (or no longer) the one to watch. */
const REROUTE = new Set(['READONLY', 'NOMASTER', 'FENCED', 'UNAVAILABLE', 'CLOSED', 'BUSY'])
const MIN_BACKOFF_MS = 25
const MAX_BACKOFF_MS = 500

/**
 * A watch as an async iterator. It keeps its position in the log (the last
 * seq every event up to which it has received, and that seq's epoch), and
 * when its node is lost or stops being the master it finds the node to
 * watch again and resumes from that position, so events arrive in log
 * order with no gap and no duplicate. The node checks that its log holds
 * the same entry at the position (ROLLEDBACK otherwise) and still reaches
 * back to it (TRIMMED otherwise); either error ends the iteration once the
 * events received before it have been taken.
 *
 * Backpressure: events wait in a buffer of at most `maxBuffered` (plus one
 * frame); past it the socket is paused, so TCP pushes back on the node.
 */
export class Watch implements AsyncIterableIterator<WatchEvent> {
  state: WatchState = 'connecting'
  private position: WatchPosition | null = null
  /** Events received of the entry after `position` (a frame ended inside it), so a resume skips them. */
  private partialSeq = 0
  private partialCount = 0
  /** On a resumed socket: events of `partialSeq` still to skip. */
  private skip = 0
  private readonly buffer: WatchEvent[] = []
  private head = 0
  private failure: TandemError | null = null
  private reader: { resolve: (r: IteratorResult<WatchEvent>) => void; reject: (err: unknown) => void } | null = null
  private ws: WebSocket | null = null
  private address = ''
  private paused = false
  private lastHeardAt = 0
  private disconnectedSince = performance.now()
  private backoff = MIN_BACKOFF_MS
  private retryTimer: NodeJS.Timeout | null = null
  private readonly livenessTimer: NodeJS.Timeout | null = null
  private readonly maxBuffered: number

  constructor(
    private readonly host: WatchHost,
    private readonly options: WatchOptions,
  ) {
    this.maxBuffered = options.maxBuffered ?? 10_000
    if (host.livenessTimeoutMs > 0) {
      this.livenessTimer = setInterval(() => this.checkLiveness(), host.livenessTimeoutMs / 4)
      this.livenessTimer.unref()
    }
    void this.connect()
  }

  /** Where the watch is: every event up to this seq has been received (null before the node first said). */
  get seq(): number | null {
    return this.position?.seq ?? null
  }

  [Symbol.asyncIterator](): this {
    return this
  }

  next(): Promise<IteratorResult<WatchEvent>> {
    if (this.head < this.buffer.length) {
      const event = this.buffer[this.head]
      this.buffer[this.head++] = undefined as unknown as WatchEvent
      if (this.head === this.buffer.length) {
        this.buffer.length = 0
        this.head = 0
      }
      this.resumeIfDrained()
      return Promise.resolve({ value: event, done: false })
    }
    if (this.failure) {
      const err = this.failure
      this.failure = null
      this.close()
      return Promise.reject(err)
    }
    if (this.state === 'closed') return Promise.resolve({ value: undefined, done: true })
    return new Promise((resolve, reject) => {
      this.reader = { resolve, reject }
    })
  }

  return(): Promise<IteratorResult<WatchEvent>> {
    this.close()
    return Promise.resolve({ value: undefined, done: true })
  }

  /** Ends the watch; the iterator then ends too. Safe to call twice. */
  close(): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    if (this.retryTimer) clearTimeout(this.retryTimer)
    if (this.livenessTimer) clearInterval(this.livenessTimer)
    this.ws?.close(1000)
    this.ws = null
    this.host.ended(this)
    this.settleReader()
  }

  // ---- connecting --------------------------------------------------------

  private get finished(): boolean {
    return this.state === 'closed'
  }

  private async connect(): Promise<void> {
    if (this.state === 'closed') return
    let address: string
    try {
      address = await this.host.target()
    } catch (err) {
      return this.retry(err as TandemError)
    }
    if (this.finished) return
    this.address = address
    let ws: WebSocket
    try {
      ws = this.host.dial(address)
    } catch (err) {
      return this.retry(new TandemError('UNAVAILABLE', `cannot reach ${address}: ${(err as Error).message}`))
    }
    this.ws = ws
    let refusal: TandemError | null = null
    ws.on('open', () => {
      if (this.ws !== ws) return
      this.lastHeardAt = performance.now()
      const request: Record<string, unknown> = { type: 'watch' }
      if (this.options.key !== undefined) request.key = this.options.key
      if (this.options.prefix !== undefined) request.prefix = this.options.prefix
      if (this.position) {
        request.fromSeq = this.position.seq + 1
        request.after = { seq: this.position.seq, epoch: this.position.epoch }
      } else if (this.options.fromSeq !== undefined) {
        request.fromSeq = this.options.fromSeq
      }
      if (this.host.wantsMaster) request.master = true
      this.skip = this.partialSeq > 0 ? this.partialCount : 0
      ws.send(encodeFrame(request))
    })
    ws.on('unexpected-response', (_req, res) => {
      const code = res.statusCode === 401 ? 'UNAUTHORIZED' : res.statusCode === 503 ? 'BUSY' : 'UNAVAILABLE'
      refusal = new TandemError(code, `${address} refused the watch: HTTP ${res.statusCode}`)
      res.resume()
      ws.terminate()
    })
    ws.on('message', (data) => {
      if (this.ws !== ws) return
      this.lastHeardAt = performance.now()
      let message: WatchMessage
      try {
        message = decodeFrame(data as Buffer) as WatchMessage
      } catch {
        ws.terminate()
        return
      }
      if (message.type === 'error') refusal = TandemError.fromWire(message.error as never)
      else this.onMessage(message)
    })
    ws.on('ping', () => {
      this.lastHeardAt = performance.now()
    })
    ws.on('error', () => {})
    ws.on('close', () => {
      if (this.ws !== ws) return
      this.ws = null
      this.onSocketClosed(refusal ?? new TandemError('UNAVAILABLE', `the watch's connection to ${address} closed`))
    })
  }

  private onMessage(message: Exclude<WatchMessage, { type: 'error' }>): void {
    if (this.state === 'connecting') {
      this.state = 'open'
      this.backoff = MIN_BACKOFF_MS
    }
    if (message.type === 'events') {
      for (const wire of message.events) this.onEvent(wire)
      this.wakeReader()
      if (!this.paused && this.buffer.length - this.head >= this.maxBuffered) {
        this.paused = true
        this.ws?.pause()
      }
    }
    if (this.position === null || message.to >= this.position.seq) {
      this.position = { seq: message.to, epoch: message.epoch }
    }
    if (this.partialSeq <= message.to) {
      this.partialSeq = 0
      this.partialCount = 0
    }
  }

  private onEvent(wire: WireWatchEvent): void {
    const seq = wire[0]
    if (this.skip > 0 && seq === this.partialSeq) {
      this.skip--
      return
    }
    this.skip = 0
    if (seq === this.partialSeq) this.partialCount++
    else {
      this.partialSeq = seq
      this.partialCount = 1
    }
    const event: WatchEvent =
      wire[1] === WATCH_DEL ? { seq, type: 'del', key: wire[2] } : { seq, type: 'put', key: wire[2], value: wire[3] }
    this.buffer.push(event)
  }

  /**
   * The socket closed. A node that was lost, or is not (or no longer) the
   * master, is left for another: the watch resumes from its position.
   * Anything else ends the watch, after the events already received.
   */
  private onSocketClosed(err: TandemError): void {
    if (this.state === 'closed') return
    if (this.state === 'open') this.disconnectedSince = performance.now()
    this.state = 'connecting'
    this.paused = false
    if (REROUTE.has(err.code)) {
      this.host.lost(this.address, err)
      return this.retry(err)
    }
    this.fail(err)
  }

  private retry(err: TandemError): void {
    if (this.state === 'closed') return
    if (err.code === 'UNAUTHORIZED' || err.code === 'CLOSED' || err.code === 'INVALID') return this.fail(err)
    if (performance.now() - this.disconnectedSince > this.host.reconnectTimeoutMs) {
      return this.fail(
        new TandemError(
          'UNAVAILABLE',
          `the watch found no node to resume on for ${this.host.reconnectTimeoutMs} ms (last: ${err.message})`,
        ),
      )
    }
    const wake = () => {
      if (this.retryTimer) clearTimeout(this.retryTimer)
      this.retryTimer = null
      this.host.waiting.delete(wake)
      void this.connect()
    }
    this.retryTimer = setTimeout(wake, this.backoff)
    this.host.waiting.add(wake)
    this.backoff = Math.min(MAX_BACKOFF_MS, this.backoff * 2) * (0.75 + Math.random() * 0.5)
  }

  private fail(err: TandemError): void {
    if (this.state === 'closed') return
    this.failure = err
    if (this.retryTimer) clearTimeout(this.retryTimer)
    if (this.livenessTimer) clearInterval(this.livenessTimer)
    this.ws?.terminate()
    this.ws = null
    this.state = 'closed'
    this.host.ended(this)
    this.settleReader()
  }

  // ---- liveness and backpressure ------------------------------------------

  /**
   * A node says where the watch is every 500 ms; one that sends nothing for
   * livenessTimeoutMs (paused, cut off) is left, and the watch resumes
   * elsewhere. Not judged while this side holds the socket paused.
   */
  private checkLiveness(): void {
    if (this.ws === null || this.paused || this.lastHeardAt === 0) return
    if (performance.now() - this.lastHeardAt < this.host.livenessTimeoutMs) return
    this.ws.terminate()
  }

  private resumeIfDrained(): void {
    if (this.paused && this.buffer.length - this.head <= this.maxBuffered / 2) {
      this.paused = false
      this.lastHeardAt = performance.now()
      this.ws?.resume()
    }
  }

  private wakeReader(): void {
    const reader = this.reader
    if (reader === null || this.head >= this.buffer.length) return
    this.reader = null
    this.next().then(reader.resolve, reader.reject)
  }

  /** A reader waiting while the watch closed or failed gets the end, or the error. */
  private settleReader(): void {
    const reader = this.reader
    if (reader === null) return
    this.reader = null
    this.next().then(reader.resolve, reader.reject)
  }
}
