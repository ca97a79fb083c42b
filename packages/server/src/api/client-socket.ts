import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { handlerThrew } from '../util/handler-guard.js'
import { type Logger, silentLogger } from '../util/logger.js'
import type { FrameWatch } from './frame-guard.js'
import {
  closePayload,
  FrameReader,
  type FrameSink,
  headerBytes,
  OP_BINARY,
  OP_CLOSE,
  OP_PING,
  OP_PONG,
  serverFrame,
  WS_CLOSE,
  writeHeader,
} from './ws-frames.js'

/** RFC 6455 1.3: appended to the client's key to prove the server read it. */
const ACCEPT_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
const KEY = /^[+/0-9A-Za-z]{22}==$/
/** A payload up to this size is copied behind its header (one buffer, one write); a larger one goes beside it. */
const COPY_BYTES = 16 * 1024
/**
 * Pongs owed to a client that does not read them: past this many, with the
 * socket's buffer full, it is dropped. Both, because a burst of pings read
 * in one chunk owes its pongs until their writes call back on a later tick,
 * though the kernel took them at once.
 */
const MAX_PENDING_PONGS = 60

type Status = 'open' | 'closing' | 'closed'

/**
 * The WebSocket of one client API connection, run by tandem over the
 * upgraded socket (see ws-frames.ts for why not ws). It speaks what
 * ClientConnection and the frame guard need of a WebSocket: 'message',
 * 'ping', 'pong', 'close' and 'error' events, send, ping, pause/resume,
 * bufferedAmount, and the close handshake:
 *
 *   open --close(code)--> closing: our close frame sent; frames still read
 *                          for the peer's, then the socket ended. Dropped
 *                          after closeGraceMs whatever the peer does.
 *   open --peer's close frame--> its code echoed, the socket ended.
 *   open --the peer's FIN--> closing: our side ended; dropped once its
 *                          writes make no progress for closeGraceMs.
 *   any --socket closed--> closed: 'close' emitted once.
 */
export class ClientSocket extends EventEmitter implements FrameSink {
  private status: Status = 'open'
  private paused = false
  private closeFrameSent = false
  private closeFrameReceived = false
  private pendingPongs = 0
  /** A handler threw while reading: nothing more is read (onHandlerThrew). */
  private failed = false
  private closeTimer: NodeJS.Timeout | null = null
  private readonly reader: FrameReader
  /** The frame guard's hooks, when it watches this socket. */
  private frameWatch: FrameWatch | null = null

  constructor(
    readonly socket: Socket,
    head: Buffer,
    maxPayload: number,
    /** How long a socket being closed may take to send its close frame before it is dropped. */
    private readonly closeGraceMs: number,
    private readonly logger: Logger = silentLogger,
  ) {
    super()
    this.reader = new FrameReader(this, maxPayload)
    socket.setTimeout(0)
    socket.setNoDelay(true)
    // Read from the next tick on (flowing mode starts then): the connection and the guard listen first.
    if (head.length > 0) socket.unshift(head)
    socket.on('data', (chunk: Buffer) => this.onSocketData(chunk))
    socket.on('end', () => this.onSocketEnd())
    socket.on('error', (err) => this.onSocketError(err))
    socket.on('close', () => this.onSocketClose())
  }

  /** Bytes written and not yet flushed to the kernel. */
  get bufferedAmount(): number {
    return this.socket.writableLength
  }

  get isPaused(): boolean {
    return this.paused
  }

  /** Whether a fragmented message is part read (the frame guard counts it as still arriving). */
  get assembling(): boolean {
    return this.reader.assembling
  }

  /** The frame guard's hooks: called after each read of the socket and after each whole message. */
  watchFrames(watch: FrameWatch): void {
    this.frameWatch = watch
  }

  /** Sends one binary message. */
  send(payload: Buffer): void {
    if (this.status !== 'open') return
    if (payload.length <= COPY_BYTES) {
      this.socket.write(serverFrame(OP_BINARY, payload))
      return
    }
    const header = Buffer.allocUnsafe(headerBytes(payload.length))
    writeHeader(header, 0, OP_BINARY, payload.length)
    this.socket.cork()
    this.socket.write(header)
    this.socket.write(payload)
    this.socket.uncork()
  }

  /** Sends one binary message already framed (see ws-frames.ts writeHeader). */
  sendFrame(frame: Buffer): void {
    if (this.status === 'open') this.socket.write(frame)
  }

  /** Writes what is sent until uncork() in one write. */
  cork(): void {
    this.socket.cork()
  }

  uncork(): void {
    this.socket.uncork()
  }

  ping(): void {
    if (this.status === 'open') this.socket.write(serverFrame(OP_PING, EMPTY))
  }

  pause(): void {
    if (this.status === 'closed') return
    this.paused = true
    this.socket.pause()
  }

  resume(): void {
    if (this.status === 'closed') return
    this.paused = false
    this.socket.resume()
  }

  /** Starts the close handshake (see the class comment). Safe to call twice. */
  close(code: number, reason = ''): void {
    if (this.status !== 'open') {
      if (this.status === 'closing' && this.closeFrameSent && this.closeFrameReceived) this.socket.end()
      return
    }
    this.startClosing()
    this.sendClose(code, reason)
  }

  /** Drops the socket without a close handshake. */
  terminate(): void {
    if (this.status === 'closed') return
    if (this.status === 'open') this.status = 'closing'
    this.socket.destroy()
  }

  // ---- FrameSink: what the reader found ----------------------------------

  onMessage(data: Buffer, isBinary: boolean): void {
    this.emit('message', data, isBinary)
    this.frameWatch?.whole()
  }

  onPing(data: Buffer): void {
    if (this.status === 'open') {
      if (this.pendingPongs >= MAX_PENDING_PONGS && this.socket.writableNeedDrain) return this.terminate()
      this.pendingPongs++
      this.socket.write(serverFrame(OP_PONG, data), () => this.pendingPongs--)
    }
    this.emit('ping', data)
  }

  onPong(data: Buffer): void {
    this.emit('pong', data)
  }

  onCloseFrame(code: number, reason: string): void {
    this.closeFrameReceived = true
    // Whatever is still unread is after the close frame: the socket is read only to see it end.
    this.resume()
    if (this.status === 'open') {
      this.startClosing()
      this.sendClose(code, reason)
    } else if (this.closeFrameSent) {
      this.socket.end()
    }
  }

  onProtocolError(closeCode: number, message: string): void {
    // Nothing after the error is read: ws, too, ends the handshake without the peer's close frame.
    this.closeFrameReceived = true
    this.resume()
    this.emit('error', new Error(message))
    if (this.status === 'open') this.close(closeCode, message)
    else this.socket.end()
  }

  // ---- the socket ------------------------------------------------------------

  /**
   * Frames are parsed, and the requests they carry handled, from inside
   * this listener: a throw from any of that would end the process (see
   * handler-guard.ts). It ends this connection instead, with 1011.
   */
  private onSocketData(chunk: Buffer): void {
    if (!this.failed) {
      try {
        this.reader.push(chunk)
      } catch (err) {
        this.onHandlerThrew(err)
      }
    }
    this.frameWatch?.data()
  }

  /** A handler threw: nothing more is read, and the socket goes after a 1011 close frame. */
  onHandlerThrew(err: unknown): void {
    if (this.failed) return
    this.failed = true
    handlerThrew('client', this.logger, err)
    if (this.status === 'open') {
      this.startClosing()
      this.socket.write(serverFrame(OP_CLOSE, closePayload(WS_CLOSE.INTERNAL_ERROR, 'internal error')))
    }
    this.socket.end()
    this.socket.resume()
  }

  /** A peer that never ends its side is dropped after closeGraceMs. */
  private startClosing(): void {
    this.status = 'closing'
    this.closeTimer = setTimeout(() => this.socket.destroy(), this.closeGraceMs)
    this.closeTimer.unref()
  }

  private sendClose(code: number, reason: string): void {
    const payload = code === WS_CLOSE.NO_STATUS ? EMPTY : closePayload(code, reason)
    this.socket.write(serverFrame(OP_CLOSE, payload), (err) => {
      if (err) return
      this.closeFrameSent = true
      if (this.closeFrameReceived) this.socket.end()
    })
  }

  /**
   * The peer ended its side (a FIN, no close frame): it sends nothing
   * more, and our side ends once what was written is flushed. A peer that
   * does not read that would hold the socket, its connection slot and the
   * replies in it for ever, so the socket is dropped once its unflushed
   * bytes have not gone down for closeGraceMs (a slow reader that still
   * reads keeps it).
   */
  private onSocketEnd(): void {
    if (this.status === 'open') this.status = 'closing'
    this.socket.end()
    if (this.closeTimer === null) this.dropUnlessFlushing(this.socket.writableLength)
  }

  private dropUnlessFlushing(unflushedBefore: number): void {
    this.closeTimer = setTimeout(() => {
      const unflushed = this.socket.writableLength
      if (unflushed > 0 && unflushed < unflushedBefore) return this.dropUnlessFlushing(unflushed)
      this.socket.destroy()
    }, this.closeGraceMs)
    this.closeTimer.unref()
  }

  private onSocketError(err: Error): void {
    if (this.status === 'open') this.status = 'closing'
    this.emit('error', err)
    this.socket.destroy()
  }

  private onSocketClose(): void {
    if (this.status === 'closed') return
    this.status = 'closed'
    if (this.closeTimer) clearTimeout(this.closeTimer)
    this.closeTimer = null
    this.emit('close')
  }
}

const EMPTY = Buffer.alloc(0)

/**
 * Completes a client's WebSocket handshake on an upgrade request (RFC 6455
 * 4.2), as ws's server did with tandem's settings: GET, `Upgrade:
 * websocket`, a 16-byte base64 key, version 13 (or 8); the first
 * subprotocol offered, if any, is echoed; no extension is accepted. The
 * reason a request is refused, or null once the 101 is written.
 */
export function acceptUpgrade(
  req: IncomingMessage,
  socket: Socket,
): { status: number; message: string; headers?: Record<string, string> } | null {
  if (req.method !== 'GET') return { status: 405, message: 'Invalid HTTP method' }
  const upgrade = req.headers.upgrade
  if (upgrade === undefined || upgrade.toLowerCase() !== 'websocket') {
    return { status: 400, message: 'Invalid Upgrade header' }
  }
  const key = req.headers['sec-websocket-key']
  if (key === undefined || !KEY.test(key))
    return { status: 400, message: 'Missing or invalid Sec-WebSocket-Key header' }
  const version = Number(req.headers['sec-websocket-version'])
  if (version !== 13 && version !== 8) {
    // RFC 6455 4.4: the refusal names the versions the server speaks, so a client may retry with one.
    return {
      status: 400,
      message: 'Missing or invalid Sec-WebSocket-Version header',
      headers: { 'Sec-WebSocket-Version': '13, 8' },
    }
  }
  let protocolLine = ''
  const protocols = req.headers['sec-websocket-protocol']
  if (protocols !== undefined) {
    const first = protocols.split(',')[0].trim()
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(first)) {
      return { status: 400, message: 'Invalid Sec-WebSocket-Protocol header' }
    }
    protocolLine = `Sec-WebSocket-Protocol: ${first}\r\n`
  }
  const accept = createHash('sha1')
    .update(key + ACCEPT_GUID)
    .digest('base64')
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n${protocolLine}\r\n`,
  )
  return null
}
