import { createRequire } from 'node:module'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import type WebSocketClass from 'ws'
import { REPO_ROOT } from '../helpers/node-process.js'

// `ws` and `msgpackr` are dependencies of the packages, not of the workspace
// root, so a file under test/ cannot import them by name; borrow the client
// package's copies (the very ones the SDK speaks with).
const requireFromClient = createRequire(join(REPO_ROOT, 'packages/client/package.json'))
export const WebSocket = requireFromClient('ws') as typeof WebSocketClass
export type WebSocket = WebSocketClass

interface PackrLike {
  pack(value: unknown): Buffer
  unpack(bytes: Uint8Array): unknown
}
const { Packr } = requireFromClient('msgpackr') as { Packr: new (options: object) => PackrLike }

/** Plain msgpack, as the protocol requires: no records, maps decode as objects. */
export const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false })
export const pack = (value: unknown): Buffer => packr.pack(value)

export interface Reply {
  id: number
  result?: unknown
  error?: { code: string; message: string; [detail: string]: unknown }
}

export interface CloseEvent {
  code: number
  reason: string
}

/**
 * A bare WebSocket speaking tandem's framing by hand, so tests can send what
 * the SDK never would (garbage, wrong types, floods) and see exactly what
 * comes back: replies by id, and the close code when the server hangs up.
 */
export class RawClient {
  readonly replies = new Map<number, Reply>()
  /** Byte size of every frame received, in order. */
  readonly frameSizes: number[] = []
  closeEvent: CloseEvent | null = null
  private readonly listeners = new Set<() => void>()

  private constructor(
    readonly ws: WebSocketClass,
    /** The TCP socket under ws (pause it to stop reading replies at the source). */
    readonly tcp: Socket,
  ) {
    ws.on('message', (data: Buffer) => this.onFrame(data))
    ws.on('close', (code: number, reason: Buffer) => {
      this.closeEvent = { code, reason: reason.toString() }
      this.notify()
    })
    ws.on('error', () => {})
  }

  /** Connects to ws://address/ and resolves once the handshake is done. */
  static open(address: string, options: { headers?: Record<string, string> } = {}): Promise<RawClient> {
    const ws = new WebSocket(`ws://${address}/`, {
      headers: options.headers,
      perMessageDeflate: false,
      maxPayload: 64 * 1024 * 1024,
    })
    return new Promise((resolve, reject) => {
      let tcp: Socket | undefined
      ws.once('upgrade', (res) => {
        tcp = res.socket
      })
      ws.once('open', () => resolve(new RawClient(ws, tcp as Socket)))
      ws.once('error', reject)
      ws.once('unexpected-response', (_req, res) => reject(new Error(`handshake refused: HTTP ${res.statusCode}`)))
    })
  }

  private onFrame(data: Buffer): void {
    this.frameSizes.push(data.length)
    const decoded = packr.unpack(data)
    for (const message of Array.isArray(decoded) ? decoded : [decoded]) {
      const reply = message as Reply
      if (typeof reply?.id === 'number') this.replies.set(reply.id, reply)
    }
    this.notify()
  }

  private notify(): void {
    for (const l of [...this.listeners]) l()
  }

  /** Sends one msgpack-encoded value as a binary frame. */
  send(message: unknown): void {
    this.ws.send(pack(message), { binary: true })
  }

  /** Sends bytes (binary frame) or a string (text frame) exactly as given. */
  sendRaw(data: Uint8Array | string): void {
    this.ws.send(data, { binary: typeof data !== 'string' })
  }

  /** Resolves once `check` holds, re-checked on every frame and on close; rejects at the deadline. */
  until<T>(check: () => T | undefined | null | false, what: string, timeoutMs = 10_000): Promise<T> {
    const first = check()
    if (first) return Promise.resolve(first)
    return new Promise((resolve, reject) => {
      const listener = () => {
        const value = check()
        if (!value) return
        this.listeners.delete(listener)
        clearTimeout(timer)
        resolve(value)
      }
      const timer = setTimeout(() => {
        this.listeners.delete(listener)
        reject(
          new Error(`timed out after ${timeoutMs} ms waiting for ${what}; close: ${JSON.stringify(this.closeEvent)}`),
        )
      }, timeoutMs)
      this.listeners.add(listener)
    })
  }

  /** The reply to request `id`; rejects if the socket closes first. */
  async reply(id: number, timeoutMs = 10_000): Promise<Reply> {
    const reply = await this.until(
      () => this.replies.get(id) ?? (this.closeEvent ? { id: -1 } : undefined),
      `reply ${id}`,
      timeoutMs,
    )
    if (reply.id === -1) throw new Error(`socket closed ${JSON.stringify(this.closeEvent)} before reply ${id}`)
    return reply
  }

  /** Sends a request and waits for its reply. */
  request(message: { id: number; [field: string]: unknown }, timeoutMs?: number): Promise<Reply> {
    this.send(message)
    return this.reply(message.id, timeoutMs)
  }

  /** Resolves with the close code and reason once the server has closed the socket. */
  closed(timeoutMs = 10_000): Promise<CloseEvent> {
    return this.until(() => this.closeEvent, 'the socket to close', timeoutMs)
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN
  }

  terminate(): void {
    this.ws.terminate()
  }
}

/**
 * A TCP socket that does the WebSocket handshake by hand and then writes
 * frames, or only the first bytes of one, as a slow or hostile client
 * would. It reads what the node sends back far enough to find a close
 * frame's code.
 */
export class HandRolledSocket {
  closeCode: number | null = null
  ended = false
  private received = Buffer.alloc(0)
  private readonly waiters = new Set<() => void>()

  private constructor(readonly socket: import('node:net').Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk])
      this.parse()
    })
    socket.on('close', () => {
      this.ended = true
      for (const w of [...this.waiters]) w()
    })
    socket.on('error', () => {})
  }

  static async open(address: string, headers: Record<string, string> = {}): Promise<HandRolledSocket> {
    const { connect } = await import('node:net')
    const [host, port] = [
      address.slice(0, address.lastIndexOf(':')),
      Number(address.slice(address.lastIndexOf(':') + 1)),
    ]
    const socket = connect({ host, port })
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve())
      socket.once('error', reject)
    })
    const extra = Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('')
    socket.write(
      `GET / HTTP/1.1\r\nHost: ${address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
    )
    const head = await new Promise<string>((resolve, reject) => {
      let text = ''
      const onData = (chunk: Buffer) => {
        text += chunk.toString('latin1')
        const end = text.indexOf('\r\n\r\n')
        if (end < 0) return
        socket.off('data', onData)
        if (end + 4 < text.length) socket.unshift(Buffer.from(text.slice(end + 4), 'latin1'))
        resolve(text.slice(0, end))
      }
      socket.on('data', onData)
      socket.once('close', () => reject(new Error(`closed during the handshake: ${text}`)))
    })
    if (!head.startsWith('HTTP/1.1 101')) {
      socket.destroy()
      throw new Error(`handshake refused: ${head.split('\r\n')[0]}`)
    }
    return new HandRolledSocket(socket)
  }

  /** Writes the header of a binary frame of `payloadBytes` and the first `sendBytes` of its (masked) payload. */
  startFrame(payloadBytes: number, sendBytes: number): void {
    const header = Buffer.alloc(14)
    header[0] = 0x82
    header[1] = 0x80 | 127
    header.writeBigUInt64BE(BigInt(payloadBytes), 2)
    header.writeUInt32BE(0x01020304, 10)
    this.socket.write(header)
    this.sendMore(sendBytes)
  }

  /** Writes one whole masked frame (a zero mask: the payload goes as it is). */
  sendFrame(opcode: number, payload: Buffer, fin = true): void {
    const ext = payload.length < 126 ? 0 : payload.length < 0x10000 ? 2 : 8
    const header = Buffer.alloc(2 + ext + 4)
    header[0] = (fin ? 0x80 : 0) | opcode
    if (ext === 0) header[1] = 0x80 | payload.length
    else if (ext === 2) {
      header[1] = 0x80 | 126
      header.writeUInt16BE(payload.length, 2)
    } else {
      header[1] = 0x80 | 127
      header.writeBigUInt64BE(BigInt(payload.length), 2)
    }
    this.socket.write(Buffer.concat([header, payload]))
  }

  /** Writes more payload bytes of the frame started (msgpack nil bytes, masked: any bytes do). */
  sendMore(bytes: number): void {
    if (bytes > 0) this.socket.write(Buffer.alloc(bytes, 0xc0))
  }

  private parse(): void {
    for (;;) {
      const b = this.received
      if (b.length < 2) return
      let length = b[1] & 0x7f
      let at = 2
      if (length === 126) {
        if (b.length < 4) return
        length = b.readUInt16BE(2)
        at = 4
      } else if (length === 127) {
        if (b.length < 10) return
        length = Number(b.readBigUInt64BE(2))
        at = 10
      }
      if (b.length < at + length) return
      if ((b[0] & 0x0f) === 0x8) {
        this.closeCode = length >= 2 ? b.readUInt16BE(at) : 1005
        for (const w of [...this.waiters]) w()
      }
      this.received = b.subarray(at + length)
    }
  }

  /** Resolves with the close code the node sent (null when it dropped the socket without one). */
  closed(timeoutMs = 20_000): Promise<number | null> {
    if (this.closeCode !== null || this.ended) return Promise.resolve(this.closeCode)
    return new Promise((resolve, reject) => {
      const done = () => {
        if (this.closeCode === null && !this.ended) return
        this.waiters.delete(done)
        clearTimeout(timer)
        resolve(this.closeCode)
      }
      const timer = setTimeout(() => {
        this.waiters.delete(done)
        reject(new Error(`the node did not close the socket within ${timeoutMs} ms`))
      }, timeoutMs)
      this.waiters.add(done)
    })
  }

  get open(): boolean {
    return this.closeCode === null && !this.ended
  }

  destroy(): void {
    this.socket.destroy()
  }
}
