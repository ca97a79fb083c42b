import { encodeFrame } from '@tandem/protocol'
import type { WebSocket } from 'ws'
import { type Clock, systemClock } from '../util/clock.js'

/**
 * Send side of a replication socket with explicit flow control: counts the
 * bytes handed to the socket that have not yet been flushed to the kernel
 * (ws calls back per send once written), so a producer can stop before a
 * slow peer makes the buffer grow, and resume when it drains.
 */
export class FlowSocket {
  unflushed = 0
  /** Monotonic time since when the unflushed bytes have stayed above the high-water mark (0 = not above). */
  overSince = 0
  private drainWaiters: (() => void)[] = []

  constructor(
    readonly ws: WebSocket,
    readonly highWater: number,
    private readonly clock: Clock = systemClock,
  ) {}

  get open(): boolean {
    return this.ws.readyState === this.ws.OPEN
  }

  get writable(): boolean {
    return this.open && this.unflushed < this.highWater
  }

  send(message: unknown): void {
    if (this.open) this.sendFrame(encodeFrame(message))
  }

  /**
   * Sends an already encoded frame (one that several sockets share).
   * Returns whether it was handed to the socket; if so, `written` is called
   * once the socket is done with its bytes (written to the kernel, or the
   * socket failed), and not before.
   */
  sendFrame(frame: Buffer, written?: () => void): boolean {
    if (!this.open) return false
    this.unflushed += frame.length
    if (this.unflushed >= this.highWater && this.overSince === 0) this.overSince = this.clock.now()
    this.ws.send(frame, () => {
      this.unflushed -= frame.length
      if (this.unflushed < this.highWater) {
        this.overSince = 0
        for (const w of this.drainWaiters.splice(0)) w()
      }
      written?.()
    })
    return true
  }

  /** Resolves when the unflushed bytes are under the high-water mark, or the socket closes. */
  drained(): Promise<void> {
    if (this.writable || !this.open) return Promise.resolve()
    return new Promise((resolve) => this.drainWaiters.push(resolve))
  }

  /** Wakes drain waiters (call on close). */
  release(): void {
    for (const w of this.drainWaiters.splice(0)) w()
  }
}

/**
 * Runs async handlers for incoming messages strictly one after another, and
 * pauses the socket while too many are waiting, so a fast sender is slowed
 * by TCP rather than queued here without bound. A handler that hands its
 * work on (a frame to the store's committer) and returns at once says so
 * (handedOff), and the socket is also paused while too much of that work
 * is in flight: the two reasons to pause are kept apart, so a handler
 * returning does not undo a pause for work still in the committer.
 */
export class SerialInbox {
  private chain: Promise<void> = Promise.resolve()
  private depth = 0
  private overDepth = false
  private inFlight = 0
  private held = false
  /** When the current hold (handedOff) began (clock.now()). */
  private heldAt = 0
  private socketPaused = false

  constructor(
    private readonly ws: WebSocket,
    private readonly onError: (err: unknown) => void,
    /** Tasks waiting before the socket is paused (linkInboxDepth); it resumes at a quarter of this. */
    private readonly maxDepth: number,
    /** Told, as each hold for work in flight ends (handedOff), how long it lasted, in ms. */
    private readonly onHeld?: (ms: number) => void,
    private readonly clock: Clock = systemClock,
  ) {}

  push(task: () => Promise<void> | void): void {
    this.depth++
    if (this.depth >= this.maxDepth) this.overDepth = true
    this.update()
    this.chain = this.chain
      .then(task)
      .catch(this.onError)
      .finally(() => {
        this.depth--
        if (this.overDepth && this.depth <= this.maxDepth / 4) this.overDepth = false
        this.update()
      })
  }

  /**
   * A message joined a task queued and not started yet (its handler takes
   * them together): it counts towards the depth as a task of its own would,
   * until that task says it took it (left).
   */
  joined(): void {
    this.depth++
    if (this.depth >= this.maxDepth) this.overDepth = true
    this.update()
  }

  /** A task took `count` messages that had joined it (see joined). */
  left(count: number): void {
    if (count <= 0) return
    this.depth -= count
    if (this.overDepth && this.depth <= this.maxDepth / 4) this.overDepth = false
    this.update()
  }

  /** Resolves once every task pushed so far has run (failed ones included). */
  idle(): Promise<void> {
    return this.chain
  }

  /**
   * Counts work a handler handed on (`work` settles when it is done: a
   * frame in the store's committer) and pauses reading while more than
   * `max` are in flight, until no more than half of that are.
   */
  handedOff(work: Promise<unknown>, max: number): void {
    this.inFlight++
    if (this.inFlight > max && !this.held) {
      this.held = true
      this.heldAt = this.clock.now()
      this.update()
    }
    const settled = () => {
      this.inFlight--
      if (this.held && this.inFlight <= max / 2) {
        this.held = false
        this.onHeld?.(this.clock.now() - this.heldAt)
        this.update()
      }
    }
    work.then(settled, settled)
  }

  /** Whether the socket is paused now (for tests and status). */
  get paused(): boolean {
    return this.socketPaused
  }

  private update(): void {
    const pause = this.overDepth || this.held
    if (pause === this.socketPaused) return
    this.socketPaused = pause
    if (pause) this.ws.pause()
    else this.ws.resume()
  }
}

/**
 * Gives up a link whose other end has sent nothing for `timeoutMs`
 * (--repl-timeout): a stopped process or a stalled path keeps the socket
 * open. Checked a few times per timeout on the monotonic clock. A check
 * that comes late (this process was stopped or starved) skips its turn, so
 * a pause here is not blamed on the other end; neither is time the inbox
 * held the socket paused (backpressure from this node's own store).
 * Returns the timer; the caller clears it with the link.
 */
export function watchSilence(o: {
  timeoutMs: number
  clock: Clock
  inbox: SerialInbox
  /** False once the link has moved on to another socket. */
  current: () => boolean
  /** When the other end was last heard (the clock's now()). */
  lastHeardAt: () => number
  onSilent: (silentMs: number) => void
}): NodeJS.Timeout {
  const everyMs = Math.max(50, Math.min(1000, Math.floor(o.timeoutMs / 4)))
  let lastCheckAt = o.clock.now()
  let heldAt = lastCheckAt
  return setInterval(() => {
    const now = o.clock.now()
    const late = now - lastCheckAt - everyMs > o.timeoutMs / 2
    lastCheckAt = now
    if (o.inbox.paused) heldAt = now
    if (late || !o.current()) return
    const silentMs = now - Math.max(o.lastHeardAt(), heldAt)
    if (silentMs > o.timeoutMs) o.onSilent(Math.round(silentMs))
  }, everyMs)
}
