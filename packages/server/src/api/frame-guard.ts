import type { Socket } from 'node:net'

/** What the guard needs of a WebSocket: ws's, or the client API's own (client-socket.ts). */
interface GuardedSocket {
  on(event: 'message' | 'ping' | 'pong' | 'close', listener: () => void): unknown
  readonly isPaused: boolean
  /**
   * Whether a fragmented message is part read (the client API's own socket
   * knows; ws's does not say). A ping or pong between its fragments does
   * not end what is arriving: counted as whole, it let a client hold a
   * message of up to --max-frame-bytes outside the budget and the deadline
   * for as long as it sent a pong now and then.
   */
  readonly assembling?: boolean
  /**
   * The client API's own socket takes the guard's hooks and calls them
   * itself (after each read, after each whole message), rather than the
   * guard listening for its 'message' and its socket's 'data': a listener
   * more on each costs every request an event of two listeners.
   */
  watchFrames?(watch: FrameWatch): void
  close(code: number, reason: string): void
  terminate(): void
}

/** What a socket that reports to the guard itself calls (see GuardedSocket.watchFrames). */
export interface FrameWatch {
  /** After each read from the socket, once what it completed has been handed on. */
  data(): void
  /** After each whole message. */
  whole(): void
}

/**
 * Bounds what peers can make this node hold of frames still arriving.
 * ws's maxPayload caps one frame, but a peer that sends most of a frame
 * and then stalls holds that much memory for as long as it keeps the
 * socket open, and many such peers add up. So, for every WebSocket on the
 * node's port (clients, replicas, fail-over members):
 *
 * - a frame must arrive whole within `frameTimeoutMs` of the first of its
 *   bytes (time the node spends not reading the socket, for its own
 *   backpressure, does not count);
 * - all frames still arriving, together, may hold at most
 *   `maxPartialBytes`: a socket whose partial frame takes the node past it
 *   is closed (1013, try again later).
 *
 * Partial bytes are counted from the socket's bytesRead against the
 * bytes read when the last whole message (or ping, pong outside a
 * fragmented message) arrived; as ws
 * parses a read before this sees it, the count can miss up to one read
 * (64 KiB) per socket.
 */
interface FrameGuardOptions {
  frameTimeoutMs: number
  maxPartialBytes: number
  /** Monotonic ms. */
  now: () => number
  /** How long a socket the guard closes may take to send its close frame before it is dropped. */
  closeGraceMs: number
}

/** WebSocket close codes the guard uses. */
const CLOSE_POLICY = 1008
const CLOSE_TRY_AGAIN_LATER = 1013

interface Watched {
  ws: GuardedSocket
  socket: { bytesRead: number }
  /** bytesRead when the last whole message arrived. */
  mark: number
  /** Bytes of the frame arriving now (as last counted). */
  partial: number
  /** now() when the frame arriving now began, or the socket was last resumed; 0 when none is. */
  since: number
  closed: boolean
}

export class FrameGuard {
  /** Bytes of frames still arriving, across the watched sockets. */
  partialBytes = 0
  /** The most partialBytes has been. */
  peakPartialBytes = 0
  /** Sockets closed for a frame too slow, and for the budget. */
  readonly closed = { slow: 0, budget: 0 }
  private readonly watched = new Set<Watched>()
  private readonly timer: NodeJS.Timeout

  constructor(private readonly options: FrameGuardOptions) {
    this.timer = setInterval(() => this.onDeadlineTimer(), Math.max(50, Math.min(1000, options.frameTimeoutMs / 4)))
    this.timer.unref()
  }

  /** Watches ws, which runs over socket (the socket its upgrade came on). */
  watch(ws: GuardedSocket, socket: Socket): void {
    const w: Watched = { ws, socket, mark: socket.bytesRead, partial: 0, since: 0, closed: false }
    this.watched.add(w)
    const whole = () => this.onWhole(w)
    const control = () => {
      if (ws.assembling !== true) this.onWhole(w)
    }
    ws.on('ping', control)
    ws.on('pong', control)
    if (ws.watchFrames !== undefined) {
      ws.watchFrames({ data: () => this.onData(w), whole })
    } else {
      ws.on('message', whole)
      socket.on('data', () => this.onData(w))
    }
    ws.on('close', () => this.forget(w))
  }

  close(): void {
    clearInterval(this.timer)
  }

  private onWhole(w: Watched): void {
    if (w.closed) return
    this.partialBytes -= w.partial
    w.partial = 0
    w.since = 0
    w.mark = w.socket.bytesRead
  }

  private onData(w: Watched): void {
    if (w.closed) return
    const partial = w.socket.bytesRead - w.mark
    this.partialBytes += partial - w.partial
    w.partial = partial
    if (this.partialBytes > this.peakPartialBytes) this.peakPartialBytes = this.partialBytes
    if (partial > 0 && w.since === 0) w.since = this.options.now()
    if (this.partialBytes > this.options.maxPartialBytes) {
      this.closed.budget++
      this.shut(
        w,
        CLOSE_TRY_AGAIN_LATER,
        `frames still arriving hold more than --max-partial-frame-bytes (${this.options.maxPartialBytes}); try again later`,
      )
    }
  }

  private onDeadlineTimer(): void {
    const now = this.options.now()
    for (const w of this.watched) {
      if (w.since === 0 || w.closed) continue
      // Not reading is this node's doing (backpressure): the clock restarts.
      if (w.ws.isPaused) w.since = now
      else if (now - w.since > this.options.frameTimeoutMs) {
        this.closed.slow++
        this.shut(
          w,
          CLOSE_POLICY,
          `a frame did not arrive whole within --frame-timeout (${this.options.frameTimeoutMs} ms)`,
        )
      }
    }
  }

  /** Closes a socket and stops counting what it holds: it is dropped in closeGraceMs whatever it sends. */
  private shut(w: Watched, code: number, reason: string): void {
    this.forget(w)
    w.ws.close(code, reason.slice(0, 120))
    setTimeout(() => w.ws.terminate(), this.options.closeGraceMs).unref()
  }

  private forget(w: Watched): void {
    if (w.closed) return
    w.closed = true
    this.partialBytes -= w.partial
    w.partial = 0
    this.watched.delete(w)
  }
}
