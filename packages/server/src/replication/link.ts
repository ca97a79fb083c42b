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

  /** Sends an already encoded frame (one that several sockets share). */
  sendFrame(frame: Buffer): void {
    if (!this.open) return
    this.unflushed += frame.length
    if (this.unflushed >= this.highWater && this.overSince === 0) this.overSince = this.clock.now()
    this.ws.send(frame, () => {
      this.unflushed -= frame.length
      if (this.unflushed < this.highWater) {
        this.overSince = 0
        for (const w of this.drainWaiters.splice(0)) w()
      }
    })
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
 * by TCP rather than queued here without bound.
 */
export class SerialInbox {
  private chain: Promise<void> = Promise.resolve()
  private depth = 0
  private paused = false

  constructor(
    private readonly ws: WebSocket,
    private readonly onError: (err: unknown) => void,
    /** Tasks waiting before the socket is paused (linkInboxDepth); it resumes at a quarter of this. */
    private readonly maxDepth: number,
  ) {}

  push(task: () => Promise<void> | void): void {
    this.depth++
    if (this.depth >= this.maxDepth && !this.paused) {
      this.paused = true
      this.ws.pause()
    }
    this.chain = this.chain
      .then(task)
      .catch(this.onError)
      .finally(() => {
        this.depth--
        if (this.paused && this.depth <= this.maxDepth / 4) {
          this.paused = false
          this.ws.resume()
        }
      })
  }

  /** Resolves once every task pushed so far has run (failed ones included). */
  idle(): Promise<void> {
    return this.chain
  }

  /** Pauses reading until resume() (downstream backpressure from the store). */
  hold(on: boolean): void {
    if (on && !this.paused) {
      this.paused = true
      this.ws.pause()
    } else if (!on && this.paused && this.depth <= this.maxDepth / 4) {
      this.paused = false
      this.ws.resume()
    }
  }
}
