import {
  decodeFrame,
  TandemError,
  WATCH_DEL,
  WATCH_PUT,
  type WatchMessage,
  type WatchRequest,
  type WireWatchEvent,
  watchRequestSchema,
} from '@tandem/protocol'
import type { RawData, WebSocket } from 'ws'
import { epochAt } from '../replication/history.js'
import { FlowSocket } from '../replication/link.js'
import { readForApply } from '../storage/entry-scan.js'
import type { Store } from '../storage/store.js'
import type { Tuning } from '../tuning.js'
import { guarded } from '../util/handler-guard.js'
import { keyTrace, keyTraceOn, tracedKey, traceNow } from '../util/key-trace.js'
import type { Logger } from '../util/logger.js'

/**
 * Watches: change feeds served from the log (protocol in
 * @tandem/protocol's watch.ts). A WatchHub owns one WatchFeed per watch
 * socket; a feed owns its socket, its filter and its cursor (the next seq
 * to scan), and reads the log like a replica feed does: from the in-memory
 * tail while it keeps up, from disk when it is further behind.
 *
 * Which entries a feed may deliver: up to the node's watch head (see
 * TandemNode.watchHead). On the master of a fail-over group that is the
 * last seq a majority of the group holds, so a watcher is never shown a
 * write that an election can roll back; elsewhere it is the last committed
 * seq.
 *
 * Backpressure: a feed stops reading the log while its socket holds more
 * than watchHighWaterBytes (a tunable), and goes on when they drain. A watcher that reads
 * slowly therefore costs one socket's buffer, whatever the write rate, and
 * falls behind in the log rather than in memory. If the log is trimmed
 * past its cursor meanwhile, the feed says so (TRIMMED, naming the oldest
 * seq the log holds) and closes: an event is never skipped silently.
 */

interface WatchHost {
  readonly store: Store
  readonly logger: Logger
  readonly maxKeyBytes: number
  /** The last seq a watch may deliver now. */
  head(): number
  isMaster(): boolean
  masterAddress(): string | null
  /** Why this node cannot serve watches now (a witness, a full sync under way), or null. */
  unavailable(): string | null
  /** The watch tunables (see tuning.ts). */
  readonly tuning: Pick<
    Tuning,
    | 'watchHighWaterBytes'
    | 'watchBatchEntries'
    | 'watchBatchBytes'
    | 'watchProgressMs'
    | 'watchCatchUpProgressMs'
    | 'clientCloseGraceMs'
  >
}

export class WatchHub {
  private readonly feeds = new Set<WatchFeed>()
  private readonly unsubscribe: () => void
  private closed = false

  constructor(private readonly host: WatchHost) {
    this.unsubscribe = host.store.onCommit(() => this.wake())
  }

  get count(): number {
    return this.feeds.size
  }

  /** Takes a new watch socket (already authenticated). */
  accept(ws: WebSocket): void {
    if (this.closed) {
      ws.close(1001, 'node shutting down')
      return
    }
    this.host.store.log.keepTail(true)
    const feed = new WatchFeed(ws, this.host, () => {
      this.feeds.delete(feed)
      this.host.store.log.keepTail(false)
    })
    this.feeds.add(feed)
  }

  /** New entries may be deliverable (a commit, or an ack that moved the watch head). */
  wake(): void {
    for (const feed of this.feeds) feed.wake()
  }

  /**
   * The node's role changed: feeds that asked for the master are told when
   * this node no longer is it; feeds waiting to check a position decide
   * again (a master decides at once).
   */
  roleChanged(): void {
    for (const feed of this.feeds) {
      feed.checkRole()
      feed.wake()
    }
  }

  /**
   * This node's log is about to be replaced (a full sync): every feed ends.
   * Watchers resume with their position, and are then told whether their
   * events still stand (see the protocol).
   */
  closeAll(reason: string): void {
    for (const feed of this.feeds) feed.end(1012, reason)
  }

  close(): void {
    this.closed = true
    this.unsubscribe()
    for (const feed of this.feeds) feed.end(1001, 'node shutting down')
  }
}

type FeedState = 'handshake' | 'waiting' | 'streaming' | 'closed'

class WatchFeed {
  private state: FeedState = 'handshake'
  private request: WatchRequest | null = null
  private keyBytes: Buffer | null = null
  private prefixBytes: Buffer | null = null
  /** Next seq to scan. */
  private cursor = 0
  /** The `to` last sent, and when anything was last sent. */
  private told = -1
  private lastSentAt = 0
  private pumping = false
  private readonly flow: FlowSocket
  private readonly timer: NodeJS.Timeout

  constructor(
    private readonly ws: WebSocket,
    private readonly host: WatchHost,
    private readonly onClosed: () => void,
  ) {
    this.flow = new FlowSocket(ws, host.tuning.watchHighWaterBytes)
    ws.on(
      'message',
      guarded(
        'watch',
        host.logger,
        () => ws.terminate(),
        (data: RawData, isBinary: boolean) => this.onMessage(data as Buffer, isBinary),
      ),
    )
    ws.on('close', () => this.cleanup())
    ws.on('error', () => {})
    this.timer = setInterval(() => this.onProgressTimer(), host.tuning.watchProgressMs)
  }

  private get store(): Store {
    return this.host.store
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.state !== 'handshake') return this.end(1008, 'one watch request per socket')
    let parsed: ReturnType<typeof watchRequestSchema.safeParse>
    try {
      parsed = watchRequestSchema.safeParse(isBinary ? decodeFrame(data) : null)
    } catch {
      return this.fail(new TandemError('INVALID', 'a watch request is one msgpack map in a binary frame'))
    }
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      return this.fail(new TandemError('INVALID', `watch: ${issue?.path.join('.') || 'request'}: ${issue?.message}`))
    }
    try {
      this.begin(parsed.data)
    } catch (err) {
      this.fail(err)
    }
  }

  private begin(request: WatchRequest): void {
    if (request.key !== undefined && request.prefix !== undefined) {
      throw new TandemError('INVALID', 'watch takes a key or a prefix, not both')
    }
    for (const k of [request.key, request.prefix]) {
      if (k !== undefined && Buffer.byteLength(k, 'utf8') > this.host.maxKeyBytes) {
        throw new TandemError(
          'TOOLARGE',
          `key is ${Buffer.byteLength(k, 'utf8')} bytes; the limit is ${this.host.maxKeyBytes}`,
        )
      }
    }
    const why = this.host.unavailable()
    if (why !== null) throw new TandemError('UNAVAILABLE', why)
    this.request = request
    if (request.key !== undefined) this.keyBytes = Buffer.from(request.key, 'utf8')
    if (request.prefix !== undefined && request.prefix !== '') this.prefixBytes = Buffer.from(request.prefix, 'utf8')
    this.state = 'waiting'
    this.checkRole()
    this.tryStart()
  }

  /**
   * Starts streaming once the resume position checks out. A replica that
   * has not yet reached the position waits for it (it is catching up); a
   * master that lacks it, or any node whose log holds another entry there,
   * answers ROLLEDBACK.
   */
  private tryStart(): void {
    const request = this.request
    if (this.state !== 'waiting' || request === null) return
    const after = request.after
    if (after !== undefined && after.seq > 0) {
      if (after.seq > this.store.lastSeq) {
        if (!this.host.isMaster()) return
        return this.fail(this.rolledBack(after.seq, after.epoch))
      }
      if (epochAt(this.store.history, after.seq) !== after.epoch) {
        return this.fail(this.rolledBack(after.seq, after.epoch))
      }
    }
    this.cursor = request.fromSeq ?? (after ? after.seq + 1 : Math.min(this.host.head(), this.store.lastSeq) + 1)
    this.state = 'streaming'
    this.sendProgress()
    this.pumpSafely()
  }

  /** ROLLEDBACK for a watcher shown seq `seq` of epoch `epoch`, with the last seq this node agrees on. */
  private rolledBack(seq: number, epoch: number): TandemError {
    const history = this.store.history
    let agreed = 0
    for (let i = 0; i < history.length; i++) {
      const next = history[i + 1]?.startSeq ?? Number.POSITIVE_INFINITY
      if (history[i].epoch === epoch) agreed = Math.min(seq, next - 1, this.store.lastSeq)
      if (history[i].epoch > epoch) {
        if (agreed === 0) agreed = Math.min(seq, history[i].startSeq - 1, this.store.lastSeq)
        break
      }
    }
    return new TandemError(
      'ROLLEDBACK',
      `this node's log does not hold seq ${seq} of epoch ${epoch} that the watch delivered: a fail-over rolled back the entries after seq ${agreed}; re-read what you need and watch from seq ${agreed + 1}`,
      { details: { seq: agreed } },
    )
  }

  checkRole(): void {
    if (this.request?.master !== true || this.state === 'closed' || this.host.isMaster()) return
    const master = this.host.masterAddress()
    this.fail(
      new TandemError('READONLY', `this node is not the master; watch the master at ${master}`, {
        details: { master, epoch: this.store.epoch },
      }),
    )
  }

  wake(): void {
    if (this.state === 'waiting') this.tryStart()
    else if (this.state === 'streaming' && !this.pumping) this.pumpSafely()
  }

  private pumpSafely(): void {
    this.pump().catch((err) => this.fail(err))
  }

  /** Scans the log from the cursor up to the watch head, while the socket takes what it is sent. */
  private async pump(): Promise<void> {
    if (this.pumping) return
    this.pumping = true
    try {
      while (this.state === 'streaming' && this.flow.open) {
        const head = Math.min(this.host.head(), this.store.lastSeq)
        if (this.cursor > head) {
          if (
            this.told < this.cursor - 1 &&
            this.store.clock.wall() - this.lastSentAt >= this.host.tuning.watchCatchUpProgressMs
          )
            this.sendProgress()
          break
        }
        if (!this.flow.writable) {
          await this.flow.drained()
          continue
        }
        const want = Math.min(this.host.tuning.watchBatchEntries, head - this.cursor + 1)
        // Views into the tail's ring: scanned and sent before anything is awaited.
        const fromTail = this.store.log.tail.from(this.cursor, want, this.host.tuning.watchBatchBytes)
        if (fromTail !== null && fromTail.length > 0) {
          this.scan(fromTail)
          continue
        }
        const fromDisk = await this.readDisk(want)
        if (this.state !== 'streaming') break
        this.scan(fromDisk)
      }
    } finally {
      this.pumping = false
    }
  }

  /** Up to `want` entries from the cursor, read from the log on disk; TRIMMED when it no longer holds the cursor. */
  private async readDisk(want: number): Promise<Buffer[]> {
    const out: Buffer[] = []
    let bytes = 0
    let expected = this.cursor
    for await (const [seq, raw] of this.store.log.read(this.cursor, want)) {
      if (seq !== expected) break
      out.push(raw)
      expected++
      bytes += raw.length
      if (bytes >= this.host.tuning.watchBatchBytes) break
    }
    if (out.length === 0) {
      const oldest = Math.max(await this.store.log.firstSeq(), this.cursor + 1)
      throw new TandemError(
        'TRIMMED',
        `the watch fell behind: seq ${this.cursor} is no longer in this node's log (it holds seq ${oldest} on, per --log-retention); re-read what you need and watch from there`,
        { details: { oldestSeq: oldest } },
      )
    }
    return out
  }

  /** Turns entries from the cursor on into events for this watch and sends them. */
  private scan(raws: Buffer[]): void {
    let events: WireWatchEvent[] = []
    let bytes = 0
    for (const raw of raws) {
      const seq = this.cursor
      const entry = readForApply(raw)
      if (entry.seq !== seq) {
        throw new TandemError('INTERNAL', `the log holds seq ${entry.seq} where seq ${seq} belongs`)
      }
      for (const op of entry.ops) {
        // A tombstone's collection (multi-master) changes nothing a reader sees: the key was already deleted.
        if (op.collect) continue
        const key = op.key as Buffer
        if (!this.matches(key)) continue
        const name = key.toString('utf8')
        if (op.value === null) {
          events.push([seq, WATCH_DEL, name])
          bytes += key.length + 12
        } else {
          // Binary values are views into the log's bytes: encoded (copied) below, before anything is awaited.
          events.push([seq, WATCH_PUT, name, op.binary ? op.value : (op.value as Buffer).toString('utf8')])
          bytes += key.length + op.value.length + 12
        }
        if (bytes >= this.host.tuning.watchBatchBytes) {
          // A frame may end inside an entry: its position stays at the entry before.
          this.sendEvents(events, seq - 1)
          events = []
          bytes = 0
        }
      }
      this.cursor = seq + 1
    }
    if (events.length > 0) this.sendEvents(events, this.cursor - 1)
  }

  private matches(key: Buffer): boolean {
    if (this.keyBytes !== null) return key.equals(this.keyBytes)
    const prefix = this.prefixBytes
    if (prefix === null) return true
    return key.length >= prefix.length && key.compare(prefix, 0, prefix.length, 0, prefix.length) === 0
  }

  private sendEvents(events: WireWatchEvent[], to: number): void {
    this.send({ type: 'events', events, to, epoch: epochAt(this.store.history, to) })
    if (keyTraceOn) traceEvents(events)
    this.told = to
    const committedAt = this.store.log.commitTimes.timeOf(events[0][0])
    if (committedAt !== undefined) {
      this.store.stages.observe('watch_send', Math.max(0, this.store.clock.wall() - committedAt) / 1000)
    }
  }

  private sendProgress(): void {
    const to = this.cursor - 1
    this.send({ type: 'progress', to, epoch: epochAt(this.store.history, to), head: this.store.lastSeq })
    this.told = to
  }

  private send(message: WatchMessage): void {
    this.flow.send(message)
    this.lastSentAt = this.store.clock.wall()
  }

  /** Says where the feed is, which also tells the watcher that this node is alive. */
  private onProgressTimer(): void {
    if (this.store.clock.wall() - this.lastSentAt < this.host.tuning.watchProgressMs || !this.flow.writable) return
    if (this.state === 'streaming') {
      this.sendProgress()
    } else if (this.state === 'waiting') {
      this.ws.ping()
      this.lastSentAt = this.store.clock.wall()
    }
  }

  /** Tells the watcher why its watch ends, then closes. */
  private fail(err: unknown): void {
    if (this.state === 'closed') return
    const error =
      err instanceof TandemError
        ? err
        : new TandemError('INTERNAL', `watch failed: ${(err as Error)?.message ?? String(err)}`)
    if (error.code === 'INTERNAL') this.host.logger.warn('watch failed', { err })
    this.flow.send({ type: 'error', error: error.toWire() })
    this.end(1000, error.code)
  }

  end(code: number, reason: string): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    this.ws.close(code, reason.slice(0, 120))
    // A watcher that does not answer the close handshake is cut off.
    setTimeout(() => this.ws.terminate(), this.host.tuning.clientCloseGraceMs).unref()
    this.cleanup()
  }

  private cleaned = false
  private cleanup(): void {
    if (this.cleaned) return
    this.cleaned = true
    this.state = 'closed'
    clearInterval(this.timer)
    this.flow.release()
    this.onClosed()
  }
}

/** Each event of a traced key, in the key trace (key-trace.ts). */
function traceEvents(events: WireWatchEvent[]): void {
  const at = traceNow()
  for (const event of events) {
    const n = tracedKey(event[2])
    if (n >= 0) keyTrace(`W ${at} ${n}`)
  }
}
