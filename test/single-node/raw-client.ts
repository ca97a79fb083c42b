import { createRequire } from 'node:module'
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
  closeEvent: CloseEvent | null = null
  private readonly listeners = new Set<() => void>()

  private constructor(readonly ws: WebSocketClass) {
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
      ws.once('open', () => resolve(new RawClient(ws)))
      ws.once('error', reject)
      ws.once('unexpected-response', (_req, res) => reject(new Error(`handshake refused: HTTP ${res.statusCode}`)))
    })
  }

  private onFrame(data: Buffer): void {
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
