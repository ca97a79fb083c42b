import { createConnection, createServer, type Server, type Socket } from 'node:net'

/**
 * A TCP proxy for one directed link (from one member to another), owned by
 * a test so that partitions are real: the processes see connections reset,
 * handshakes that never complete and bytes that arrive late.
 *
 *   member X --(X's route to Y)--> FaultProxy X->Y --> Y's real address
 *
 * States:
 * - open: bytes are forwarded both ways, optionally delayed (per direction);
 * - cut:  existing connections are destroyed; new ones are refused (closed
 *         at once) or, by default, blackholed: accepted and then never
 *         answered, as when packets are dropped, until heal() resets them.
 *         In 'stall' mode existing connections are kept but neither side's
 *         bytes get through (the proxy stops reading them, so TCP pushes
 *         back on the sender), as when a network drops every packet while
 *         both ends keep their connection: nothing tells them the other is
 *         gone but their own timeouts. heal() lets what was held through.
 *
 * Independently, holdStreams(path, passFrames = 1) holds back what the
 * target sends on new WebSocket connections to that path once their
 * handshake is answered and the link's first frames have passed (the
 * listener's challenge; with 3, also its welcome and CONTINUE or FULLSYNC), so the
 * connecting side has an open link and has sent its first messages but
 * receives nothing more until release() (a full sync that has begun and
 * does not progress).
 */
export type CutMode = 'blackhole' | 'refuse' | 'stall'

export class FaultProxy {
  private server: Server | null = null
  private readonly pairs = new Set<Pair>()
  private holdPath: string | null = null
  /** Frames from the target that pass before holdStreams() holds the rest. */
  private holdAfterFrames = 1
  private readonly held = new Set<Socket>()
  private cutMode: CutMode | null = null
  /** Added to every chunk going to the target (what the connecting side sends). */
  delayToTargetMs = 0
  /** Added to every chunk coming back from the target (what the connecting side receives). */
  delayFromTargetMs = 0
  port = 0
  /** Connections accepted so far (forwarded or held). */
  accepted = 0
  /**
   * Called with each WebSocket message the target sends, as the proxy
   * delivers it (after any delay), on connections accepted while it is set;
   * `delayed` says the message waited in the delay queue.
   */
  onTargetMessage: ((payload: Buffer, delayed: boolean) => void) | null = null

  constructor(
    readonly targetHost: string,
    /** Where new connections go; may be set after start() (existing ones keep theirs). */
    public targetPort: number,
    readonly name = `->${targetHost}:${targetPort}`,
  ) {}

  get address(): string {
    return `127.0.0.1:${this.port}`
  }

  get isCut(): boolean {
    return this.cutMode !== null
  }

  /** Listens on a port chosen by the OS. */
  async start(): Promise<this> {
    const server = createServer((socket) => this.onConnection(socket))
    this.server = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => resolve())
    })
    const address = server.address()
    if (address === null || typeof address === 'string') throw new Error('proxy has no TCP address')
    this.port = address.port
    return this
  }

  /**
   * Cuts the link: drops what is connected (or, 'stall', stops it) and
   * refuses or blackholes what comes next.
   */
  cut(mode: CutMode = 'blackhole'): void {
    this.cutMode = mode
    for (const pair of this.pairs) {
      if (mode === 'stall') {
        pair.client.pause()
        pair.upstream?.pause()
        continue
      }
      pair.client.destroy()
      pair.upstream?.destroy()
    }
    if (mode !== 'stall') this.pairs.clear()
  }

  /** Restores forwarding. Connections held while cut are reset so their owners reconnect; stalled ones resume. */
  heal(): void {
    const wasStalled = this.cutMode === 'stall'
    this.cutMode = null
    for (const s of this.held) s.destroy()
    this.held.clear()
    if (wasStalled) {
      for (const pair of this.pairs) {
        pair.client.resume()
        pair.upstream?.resume()
      }
    }
  }

  /**
   * Delays every chunk by `ms` (0 restores), in both directions or only one:
   * 'toTarget' is what the connecting member sends (its requests, a
   * replica's acks), 'fromTarget' what it receives (replies, a replication
   * stream it follows). Order is kept.
   */
  delay(ms: number, direction: 'both' | 'toTarget' | 'fromTarget' = 'both'): void {
    if (direction !== 'fromTarget') this.delayToTargetMs = ms
    if (direction !== 'toTarget') this.delayFromTargetMs = ms
  }

  async close(): Promise<void> {
    this.cut('refuse')
    this.heal()
    const server = this.server
    this.server = null
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  private onConnection(client: Socket): void {
    this.accepted++
    client.on('error', () => {})
    if (this.cutMode === 'refuse') {
      client.destroy()
      return
    }
    if (this.cutMode === 'blackhole' || this.cutMode === 'stall') {
      client.on('data', () => {})
      client.on('close', () => this.held.delete(client))
      this.held.add(client)
      return
    }
    client.setNoDelay(true)
    const pair: Pair = {
      client,
      upstream: null,
      path: null,
      handshakeDone: false,
      held: null,
      passing: Buffer.alloc(0),
      framesToPass: 0,
    }
    this.pairs.add(pair)
    const upstream = createConnection({ host: this.targetHost, port: this.targetPort })
    pair.upstream = upstream
    upstream.setNoDelay(true)
    upstream.on('error', () => {})
    const end = () => {
      this.pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('close', end)
    upstream.on('close', end)
    client.once('data', (chunk: Buffer) => {
      pair.path = /^[A-Z]+ (\S+)/.exec(chunk.toString('latin1', 0, Math.min(chunk.length, 512)))?.[1] ?? ''
      if (this.holdPath !== null && pair.path.startsWith(this.holdPath)) {
        pair.held = []
        pair.framesToPass = this.holdAfterFrames
      }
    })
    this.pipe(client, upstream, () => this.delayToTargetMs)
    const tap = this.onTargetMessage
    this.pipe(
      upstream,
      client,
      () => this.delayFromTargetMs,
      (chunk) => this.holdBack(pair, chunk),
      tap ? messageReader(tap) : undefined,
    )
  }

  /**
   * From now on, new connections whose request path starts with `path` get
   * their handshake answer and then nothing from the target until release().
   */
  holdStreams(path: string, passFrames = 1): void {
    this.holdPath = path
    this.holdAfterFrames = passFrames
  }

  /** Delivers what holdStreams() held back, and stops holding. */
  release(): void {
    this.holdPath = null
    for (const pair of this.pairs) {
      const held = pair.held
      pair.held = null
      if (held && !pair.client.destroyed) for (const chunk of held) pair.client.write(chunk)
    }
  }

  /** The part of a chunk from the target to forward now; the rest is held (see holdStreams). */
  private holdBack(pair: Pair, chunk: Buffer): Buffer {
    if (pair.held === null) return chunk
    let out = chunk.subarray(0, 0)
    if (!pair.handshakeDone) {
      const end = chunk.indexOf('\r\n\r\n')
      if (end < 0) return chunk
      pair.handshakeDone = true
      out = chunk.subarray(0, end + 4)
      chunk = chunk.subarray(end + 4)
    }
    // The link's first frames (the listener's challenge, and as many more
    // as holdStreams was told) pass, so the connecting side can say hello;
    // what follows them is held.
    while (pair.passing !== null) {
      pair.passing = Buffer.concat([pair.passing, chunk])
      chunk = chunk.subarray(chunk.length)
      const length = frameLength(pair.passing)
      if (length === undefined) return out
      const rest = pair.passing.subarray(length)
      out = Buffer.concat([out, pair.passing.subarray(0, length)])
      pair.passing = --pair.framesToPass > 0 ? Buffer.alloc(0) : null
      chunk = rest
    }
    if (chunk.length > 0) pair.held.push(chunk)
    return out
  }

  /** Forwards from one socket to the other through an ordered delay queue, with backpressure. */
  private pipe(
    from: Socket,
    to: Socket,
    delayMs: () => number,
    filter?: (chunk: Buffer) => Buffer,
    delivered?: (chunk: Buffer, delayed: boolean) => void,
  ): void {
    const queue: { at: number; chunk: Buffer }[] = []
    let timer: NodeJS.Timeout | null = null
    const flush = () => {
      timer = null
      const now = Date.now()
      while (queue.length > 0 && queue[0].at <= now) {
        const { chunk } = queue.shift()!
        delivered?.(chunk, true)
        if (!to.destroyed && !to.write(chunk)) {
          from.pause()
          to.once('drain', () => this.cutMode !== 'stall' && from.resume())
        }
      }
      if (queue.length > 0) timer = setTimeout(flush, queue[0].at - now)
    }
    from.on('data', (data: Buffer) => {
      const chunk = filter ? filter(data) : data
      if (chunk.length === 0) return
      const delay = delayMs()
      if (delay === 0 && queue.length === 0) {
        delivered?.(chunk, false)
        if (!to.destroyed && !to.write(chunk)) {
          from.pause()
          to.once('drain', () => this.cutMode !== 'stall' && from.resume())
        }
        return
      }
      // Never before a chunk queued earlier, so order holds when the delay changes.
      const at = Math.max(Date.now() + delay, queue.length > 0 ? queue[queue.length - 1].at : 0)
      queue.push({ at, chunk })
      if (timer === null) timer = setTimeout(flush, at - Date.now())
    })
    from.on('close', () => {
      if (timer) clearTimeout(timer)
    })
  }
}

interface Pair {
  client: Socket
  upstream: Socket | null
  /** The request path of the connection's first bytes (null until they arrive). */
  path: string | null
  handshakeDone: boolean
  /** Chunks from the target held back by holdStreams(), or null when not holding. */
  held: Buffer[] | null
  /** Bytes of the target's next frame to pass received so far; null once the frames to pass have. */
  passing: Buffer | null
  framesToPass: number
}

/** Bytes of the unmasked WebSocket frame at the start of `buf`, or undefined until it is all there. */
function frameLength(buf: Buffer): number | undefined {
  const frame = frameParts(buf)
  return frame === undefined ? undefined : frame.header + frame.payload
}

/**
 * Reads what the target sends on one connection, chunk by chunk: its
 * handshake answer, then WebSocket frames; each whole binary message goes
 * to onMessage (the target's frames are unmasked and never fragmented).
 */
function messageReader(
  onMessage: (payload: Buffer, delayed: boolean) => void,
): (chunk: Buffer, delayed: boolean) => void {
  let handshakeDone = false
  let buf = Buffer.alloc(0)
  return (chunk, delayed) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
    if (!handshakeDone) {
      const end = buf.indexOf('\r\n\r\n')
      if (end < 0) return
      handshakeDone = true
      buf = buf.subarray(end + 4)
    }
    for (let frame = frameParts(buf); frame !== undefined; frame = frameParts(buf)) {
      const end = frame.header + frame.payload
      if ((buf[0] & 0x0f) === 2) onMessage(buf.subarray(frame.header, end), delayed)
      buf = buf.subarray(end)
    }
  }
}

/** Header and payload sizes of the WebSocket frame at the start of `buf`, or undefined until it is all there. */
function frameParts(buf: Buffer): { header: number; payload: number } | undefined {
  if (buf.length < 2) return undefined
  let payload = buf[1] & 0x7f
  let header = 2
  if (payload === 126) {
    if (buf.length < 4) return undefined
    payload = buf.readUInt16BE(2)
    header = 4
  } else if (payload === 127) {
    if (buf.length < 10) return undefined
    payload = Number(buf.readBigUInt64BE(2))
    header = 10
  }
  if (buf[1] & 0x80) header += 4
  return header + payload <= buf.length ? { header, payload } : undefined
}

// A TCP port that was free a moment ago: the harness's own (members of a
// fail-over group need each other's ports before any of them starts).
export { freePort } from '@tandem/bench/fixtures'
