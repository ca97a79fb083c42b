import type { RawData, WebSocket } from 'ws'
import type { LogPin } from '../storage/log.js'
import type { DataSnapshot, Store } from '../storage/store.js'
import type { Clock } from '../util/clock.js'
import { guarded } from '../util/handler-guard.js'
import { keyTrace, keyTraceOn, traceNow } from '../util/key-trace.js'
import type { Logger } from '../util/logger.js'
import { isTooLarge, SNAPSHOT_FRAME_BYTES } from './frame-limit.js'
import { FlowSocket, SerialInbox } from './link.js'
import { newNonce } from './peer-auth.js'

/**
 * The serving end of a link that another node dialled to pull this node's
 * log: a replica feed (upstream.ts) or a multi-master peer feed
 * (multimaster/peer-feed.ts). Both own one accepted socket, a challenge
 * nonce, a cursor into the log and, while they read it, a pin that keeps
 * the log from being trimmed under them. This class holds what they share:
 * the socket's lifecycle (one `close()` that can be called twice), the
 * liveness timer that drops a dialler too slow or silent for
 * replTimeoutMs, and the read of a batch from the log on disk.
 *
 *   handshake -> fullsync -> streaming -> closed   (or handshake -> streaming)
 */

type FeedState = 'handshake' | 'fullsync' | 'streaming' | 'closed'

export interface FeedTiming {
  /** Unflushed bytes before the feed stops reading the log. */
  highWaterBytes: number
  /** A dialler stuck over the high-water mark, or silent, this long is dropped. */
  replTimeoutMs: number
  heartbeatMs: number
  /** Most entries, and bytes, in one entries frame. */
  batchEntries: number
  batchBytes: number
  /** How long a dialler has to answer the close frame before its socket is dropped. */
  closeGraceMs: number
  /** Messages waiting for their handler before the socket is paused (SerialInbox). */
  inboxDepth: number
}

export abstract class Feed {
  state: FeedState = 'handshake'
  /** The dialler's node id and address, once its hello came. */
  nodeId = ''
  addr = ''
  /** The next seq to send. */
  protected cursor = 0
  /** The most bytes the dialler reads in one frame, as its hello said (see frame-limit.ts). */
  protected frameLimit = Number.POSITIVE_INFINITY
  /** When the dialler was last heard (monotonic ms: a stepped wall clock must not trip --repl-timeout). */
  protected lastHeardAt: number
  private pumping = false
  /** Bytes an entry of the last batch read from disk took on average (0: none read yet). */
  private entryBytes = 0
  protected pin: LogPin | null = null
  protected readonly flow: FlowSocket
  protected readonly inbox: SerialInbox
  protected log: Logger
  protected readonly nonce = newNonce()
  private readonly timer: NodeJS.Timeout
  private cleaned = false

  constructor(
    protected readonly ws: WebSocket,
    protected readonly store: Store,
    logger: Logger,
    protected readonly clock: Clock,
    protected readonly timing: FeedTiming,
    /** Who dialled, in log lines: 'replica' or 'peer'. */
    private readonly kind: 'replica' | 'peer',
  ) {
    this.log = logger
    this.lastHeardAt = clock.now()
    this.flow = new FlowSocket(ws, timing.highWaterBytes, clock)
    this.inbox = new SerialInbox(
      ws,
      (err) => this.fail(`${this.linkName} error: ${(err as Error).message}`),
      timing.inboxDepth,
    )
    ws.on(
      'message',
      guarded(
        kind === 'replica' ? 'replication' : 'peer',
        this.log,
        () => this.close(1011, 'internal error'),
        (data: RawData, isBinary: boolean) => this.onMessage(data as Buffer, isBinary),
      ),
    )
    ws.on('close', () => this.onSocketClosed())
    ws.on('error', () => {})
    this.timer = setInterval(() => this.onHeartbeatTimer(), timing.heartbeatMs)
    this.flow.send({ type: 'challenge', nonce: this.nonce })
  }

  /** How the link is named in the error that ends it. */
  protected abstract readonly linkName: string
  protected abstract onMessage(data: Buffer, isBinary: boolean): void
  /** Sends a heartbeat to a streaming dialler whose socket takes it. */
  protected abstract sendHeartbeat(wallMs: number): void
  /** The feed has closed: its owner forgets it. */
  protected abstract onClosed(): void
  /** Sends a batch of entries read from the cursor on (the cursor moves past it after). */
  protected abstract sendBatch(batch: Buffer[]): void
  /**
   * Sends a batch from the cursor on out of the in-memory tail, without an
   * await; returns how many entries it sent (0: none is newer), or null
   * when the tail no longer holds the cursor. A feed that sends every entry
   * as it is can send the tail's bytes as they lie (see ReplicaFeed).
   */
  protected sendFromTail(): number | null {
    const batch = this.store.log.tail.from(this.cursor, this.timing.batchEntries, this.timing.batchBytes)
    if (batch === null) return null
    if (batch.length > 0) this.sendBatch(batch)
    return batch.length
  }

  /**
   * Moves the cursor past entries the dialler is known to hold without
   * reading them (a peer feed: see PeerFeed); a replica is sent every entry.
   */
  protected skipHeld(): void {}

  /**
   * Whether to send nothing more for now though entries wait: the next
   * frame gathers them (a peer feed with a frame unacknowledged: see
   * PeerFeed). The owner wakes the feed when that changes.
   */
  protected holdBack(): boolean {
    return false
  }

  /** What the dialler must do when the cursor's seq is no longer in the log. */
  protected abstract readonly onGap: string

  /** New entries were committed: send them if streaming and not sending already. */
  wake(): void {
    if (this.state === 'streaming' && !this.pumping) this.pumpSafely()
  }

  /** Runs pump(); a failure to read the log (a damaged record) ends this link, not the node. */
  protected pumpSafely(): void {
    this.pump().catch((err) => {
      if (isTooLarge(err)) return this.refuseTooLarge(err)
      this.fail(`could not feed the ${this.kind} from seq ${this.cursor}: ${(err as Error).message}`)
    })
  }

  /**
   * Something to send cannot fit the dialler's frames (frame-limit.ts): it
   * is refused with TOOLARGE, shown in its status, rather than sent a frame
   * that closes its socket at every try.
   */
  protected refuseTooLarge(err: Error): void {
    this.log.warn(`refusing a ${this.kind}: ${err.message}`, { reason: 'TOOLARGE' })
    this.flow.send({ type: 'refuse', reason: 'TOOLARGE', message: err.message })
    this.close(1008, 'refused: TOOLARGE')
  }

  /**
   * Streams a snapshot's chunks, one frame in flight, each cut under the
   * dialler's frame limit. Returns the keys sent, or null when it stopped:
   * the feed left 'fullsync', its socket closed, or a record was too large
   * for the dialler's frames (refused with TOOLARGE).
   */
  protected async sendSnapshot(snapshot: DataSnapshot, chunkBytes: number): Promise<number | null> {
    let total = 0
    try {
      for await (const { chunk, count } of snapshot.chunks(chunkBytes, this.frameLimit - SNAPSHOT_FRAME_BYTES)) {
        if (this.state !== 'fullsync' || !this.flow.open) return null
        this.flow.send({ type: 'snapshot', chunk, count })
        total += count
        await this.flow.drained()
      }
    } catch (err) {
      if (!isTooLarge(err)) throw err
      this.refuseTooLarge(err)
      return null
    }
    return total
  }

  /**
   * Sends committed entries from the cursor on, while the socket takes
   * them: from the in-memory tail when it still holds the cursor (without
   * an await, so feeds woken by one commit can share a frame), else from
   * the log on disk.
   */
  private async pump(): Promise<void> {
    if (this.pumping) return
    this.pumping = true
    try {
      while (this.state === 'streaming' && this.cursor <= this.store.lastSeq) {
        // A socket that is closing is not writable and drained() resolves at
        // once for it: stop here, or this loop would spin on microtasks and
        // starve the event loop before the 'close' event can ever run.
        if (!this.flow.open) break
        if (!this.flow.writable) {
          await this.flow.drained()
          continue
        }
        this.skipHeld()
        if (this.cursor > this.store.lastSeq || this.holdBack()) break
        let sent = this.sendFromTail()
        if (sent === null) {
          const batch = await this.readFromDisk()
          if (batch.length === 0) return this.fail(`seq ${this.cursor} is no longer in the log; ${this.onGap}`)
          this.sendBatch(batch)
          sent = batch.length
        }
        if (sent === 0) break
        if (keyTraceOn) keyTrace(`F ${traceNow()} ${this.cursor} ${this.cursor + sent - 1}`)
        this.cursor += sent
        this.pin?.move(this.cursor)
      }
    } finally {
      this.pumping = false
    }
  }

  private onHeartbeatTimer(): void {
    if (this.state === 'closed') return
    const now = this.clock.now()
    const who = `${this.kind} ${this.nodeId || '(unidentified)'} at ${this.addr || '?'}`
    const { replTimeoutMs, highWaterBytes } = this.timing
    if (this.flow.overSince > 0 && now - this.flow.overSince > replTimeoutMs) {
      return this.fail(
        `${who} is too slow: ${this.flow.unflushed} bytes unsent for ${Math.round(now - this.flow.overSince)} ms (limit ${highWaterBytes} bytes); disconnecting`,
      )
    }
    if (now - this.lastHeardAt > replTimeoutMs) {
      return this.fail(`${who} sent nothing for ${Math.round(now - this.lastHeardAt)} ms; disconnecting`)
    }
    // The heartbeat's time is read by other nodes: wall-clock ms.
    if (this.state === 'streaming' && this.flow.writable) this.sendHeartbeat(this.clock.wall())
  }

  /**
   * Reads the entries from the cursor on from the log on disk (the feed is
   * behind the in-memory tail): consecutive seqs only, up to a batch. Empty
   * when the cursor's seq is no longer in the log.
   */
  private async readFromDisk(): Promise<Buffer[]> {
    const { batchEntries, batchBytes } = this.timing
    // What this batch will take, judged by the last one: the log fetches
    // that much a trip, with no more copied than is sent (see WriteLog.read).
    const ahead = this.entryBytes === 0 ? undefined : Math.min(batchBytes, this.entryBytes * batchEntries)
    const batch = await this.store.log.readBatch(this.cursor, batchEntries, batchBytes, ahead)
    if (batch.length > 0) {
      let bytes = 0
      for (let i = 0; i < batch.length; i++) bytes += batch[i].length
      this.entryBytes = Math.ceil(bytes / batch.length)
    }
    return batch
  }

  protected fail(message: string): void {
    this.log.warn(message, { [this.kind]: this.nodeId, [`${this.kind}Addr`]: this.addr })
    this.close(1011, message)
  }

  close(code: number, reason: string): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    this.ws.close(code, reason.slice(0, 120))
    // A dialler that does not answer the close handshake is cut off.
    setTimeout(() => this.ws.terminate(), this.timing.closeGraceMs).unref()
    this.cleanup()
  }

  private onSocketClosed(): void {
    this.state = 'closed'
    this.cleanup()
  }

  private cleanup(): void {
    if (this.cleaned) return
    this.cleaned = true
    clearInterval(this.timer)
    this.flow.release()
    this.pin?.release()
    this.pin = null
    this.onClosed()
  }
}
