import {
  type BatchOp,
  DEFAULT_LIMITS,
  type NodeStatus,
  type ScanOptions,
  type ScanPage,
  TandemError,
  type Value,
  type WriteConcern,
  type WriteResult,
} from '@tandem/protocol'
import { NodeConnection, type PendingRequest } from './connection.js'

export interface ConnectOptions {
  /** Seed addresses, HOST:PORT (an array or a comma-separated string). */
  servers: string[] | string
  authToken?: string
  /** Where reads go: the master (default), a replica, or whichever node is connected. */
  readFrom?: 'master' | 'replica' | 'any'
  /** Talk to exactly the first server, whatever its role; never re-route. */
  direct?: boolean
  /** Default per-request timeout in ms (default 10,000). */
  timeoutMs?: number
  /** How long to keep trying to connect before a request fails with UNAVAILABLE (default 5,000). */
  connectTimeoutMs?: number
  /** Most requests waiting for a connection or a reply at once; more fail with BUSY (default 100,000). */
  maxQueued?: number
}

export interface WriteOptions {
  /** Replicas that must hold the write before it is acknowledged: a number or 'majority'. */
  w?: WriteConcern
  timeoutMs?: number
}

export interface RequestOptions {
  timeoutMs?: number
}

export type ClientStatus = 'open' | 'closing' | 'closed'

const MAX_BACKOFF_MS = 1000

/**
 * TandemClient: the SDK. Calls made concurrently share one socket and are
 * sent together. When the connection drops, the client reconnects with
 * backoff; reads waiting on the lost connection are retried, writes that
 * were already sent fail with UNCERTAIN (they may or may not have been
 * applied), and writes that never left are sent on the new connection.
 */
export class TandemClient {
  state: ClientStatus = 'open'
  private readonly servers: string[]
  private readonly timeoutMs: number
  private readonly connectTimeoutMs: number
  private readonly maxQueued: number
  private conn: NodeConnection | null = null
  private connecting: Promise<NodeConnection> | null = null
  private nextId = 1
  private outstanding = 0
  private preferred = 0

  private constructor(private readonly options: ConnectOptions) {
    const servers = typeof options.servers === 'string' ? options.servers.split(',') : options.servers
    this.servers = servers.map((s) => s.trim()).filter(Boolean)
    if (this.servers.length === 0) throw new TypeError('TandemClient needs at least one server address')
    for (const s of this.servers) {
      if (!/^[^\s:/]+:\d{1,5}$/.test(s))
        throw new TypeError(`server address must be HOST:PORT, got ${JSON.stringify(s)}`)
    }
    this.timeoutMs = options.timeoutMs ?? 10_000
    this.connectTimeoutMs = options.connectTimeoutMs ?? 5000
    this.maxQueued = options.maxQueued ?? 100_000
  }

  /** Connects to the first reachable server and checks the auth token. */
  static async connect(options: ConnectOptions): Promise<TandemClient> {
    const client = new TandemClient(options)
    try {
      await client.request({ op: 'ping' }, false, client.connectTimeoutMs + 1000)
    } catch (err) {
      client.close()
      throw err
    }
    return client
  }

  // ---- data --------------------------------------------------------------

  /** The value stored at key (same type as stored), or undefined when there is none. */
  async get(key: string, options: RequestOptions = {}): Promise<Value | undefined> {
    checkKey(key)
    const value = (await this.request({ op: 'get', key }, false, options.timeoutMs)) as Value | null
    return value ?? undefined
  }

  async mget(keys: string[], options: RequestOptions = {}): Promise<(Value | undefined)[]> {
    if (!Array.isArray(keys)) throw new TypeError('mget takes an array of keys')
    for (const k of keys) checkKey(k)
    const values = (await this.request({ op: 'mget', keys }, false, options.timeoutMs)) as (Value | null)[]
    return values.map((v) => v ?? undefined)
  }

  async put(key: string, value: Value, options: WriteOptions = {}): Promise<WriteResult> {
    checkKey(key)
    checkValue(value)
    return (await this.request(
      { op: 'put', key, value, ...writeFields(options) },
      true,
      writeTimeout(options, this.timeoutMs),
    )) as WriteResult
  }

  async del(key: string, options: WriteOptions = {}): Promise<WriteResult> {
    checkKey(key)
    return (await this.request(
      { op: 'del', key, ...writeFields(options) },
      true,
      writeTimeout(options, this.timeoutMs),
    )) as WriteResult
  }

  /** Applies all ops atomically: all of them or none. */
  async batch(ops: BatchOp[], options: WriteOptions = {}): Promise<WriteResult> {
    if (!Array.isArray(ops)) throw new TypeError('batch takes an array of ops')
    for (const op of ops) {
      if (op?.type !== 'put' && op?.type !== 'del') throw new TypeError(`batch op type must be 'put' or 'del'`)
      checkKey(op.key)
      if (op.type === 'put') checkValue(op.value)
    }
    const wire = ops.map((op) =>
      op.type === 'put' ? { type: 'put', key: op.key, value: op.value } : { type: 'del', key: op.key },
    )
    return (await this.request(
      { op: 'batch', ops: wire, ...writeFields(options) },
      true,
      writeTimeout(options, this.timeoutMs),
    )) as WriteResult
  }

  /**
   * Entries in key order (reverse order with `reverse`), fetched a page at a
   * time so that neither side holds more than one page in memory.
   */
  async *scan(options: ScanOptions = {}): AsyncGenerator<[string, Value]> {
    let remaining = options.limit
    const range: ScanOptions = { ...options }
    delete range.limit
    while (remaining === undefined || remaining > 0) {
      const page = (await this.request(
        { op: 'scan', ...range, ...(remaining === undefined ? {} : { limit: remaining }) },
        false,
      )) as ScanPage
      for (const entry of page.entries) yield entry
      if (remaining !== undefined) remaining -= page.entries.length
      if (!page.more || page.entries.length === 0) return
      const last = page.entries[page.entries.length - 1][0]
      if (range.reverse) {
        delete range.lte
        range.lt = last
      } else {
        delete range.gte
        range.gt = last
      }
    }
  }

  // ---- admin -------------------------------------------------------------

  async status(options: RequestOptions = {}): Promise<NodeStatus> {
    return (await this.request({ op: 'status' }, false, options.timeoutMs)) as NodeStatus
  }

  async ping(options: RequestOptions = {}): Promise<void> {
    await this.request({ op: 'ping' }, false, options.timeoutMs)
  }

  /** Waits until `replicas` replicas hold the node's current seq; resolves with how many do. */
  async wait(replicas: number, timeoutMs: number): Promise<number> {
    return (await this.request({ op: 'wait', replicas, timeoutMs }, false, timeoutMs + this.timeoutMs)) as number
  }

  /** Makes the connected node a master. */
  async promote(options: RequestOptions = {}): Promise<NodeStatus> {
    return (await this.request({ op: 'promote' }, true, options.timeoutMs)) as NodeStatus
  }

  /** Points the connected node at a new upstream (HOST:PORT), or makes it stop following (null). */
  async replicaof(upstream: string | null, options: RequestOptions = {}): Promise<NodeStatus> {
    return (await this.request({ op: 'replicaof', upstream }, true, options.timeoutMs)) as NodeStatus
  }

  /** Closes the connection; calls still waiting fail with CLOSED. Safe to call twice. */
  close(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve()
    this.state = 'closed'
    this.conn?.close()
    this.conn = null
    return Promise.resolve()
  }

  // ---- plumbing ----------------------------------------------------------

  private request(message: Record<string, unknown>, mutates: boolean, timeoutMs = this.timeoutMs): Promise<unknown> {
    if (this.state !== 'open') return Promise.reject(new TandemError('CLOSED', 'client is closed'))
    if (this.outstanding >= this.maxQueued) {
      return Promise.reject(new TandemError('BUSY', `${this.outstanding} requests outstanding (maxQueued)`))
    }
    this.outstanding++
    return new Promise<unknown>((resolve, reject) => {
      let done = false
      let current: NodeConnection | null = null
      let connectError: TandemError | undefined
      const id = this.nextId++
      const finish = (fn: () => void) => {
        if (done) return
        done = true
        this.outstanding--
        clearTimeout(timer)
        fn()
      }
      const timer = setTimeout(() => {
        current?.forget(id)
        if (current === null && connectError) return finish(() => reject(connectError))
        finish(() =>
          reject(
            new TandemError(
              'TIMEOUT',
              `no reply to ${message.op} within ${timeoutMs} ms${mutates ? '; the write may or may not have been applied' : ''}`,
            ),
          ),
        )
      }, timeoutMs)
      const pending: PendingRequest = {
        id,
        message: { id, ...message },
        mutates,
        resolve: (result) => finish(() => resolve(result)),
        reject: (err) => finish(() => reject(err)),
      }
      const attempt = (delay: number) => {
        if (done) return
        this.connection().then(
          (conn) => {
            if (done) return
            current = conn
            try {
              conn.send(pending)
            } catch {
              setTimeout(() => attempt(nextDelay(delay)), delay)
            }
          },
          (err: TandemError) => {
            if (done) return
            connectError = err
            if (err.code === 'UNAUTHORIZED' || this.state !== 'open') return pending.reject(err)
            setTimeout(() => attempt(nextDelay(delay)), delay).unref?.()
          },
        )
      }
      pending.retry = () => attempt(0)
      attempt(25)
    })
  }

  /** The open connection, opening one (trying each server in turn) when there is none. */
  private connection(): Promise<NodeConnection> {
    if (this.conn && this.conn.state === 'open') return Promise.resolve(this.conn)
    if (this.connecting) return this.connecting
    this.connecting = this.open().finally(() => {
      this.connecting = null
    })
    return this.connecting
  }

  private async open(): Promise<NodeConnection> {
    const candidates = this.options.direct ? [this.servers[0]] : rotate(this.servers, this.preferred)
    let lastError: TandemError | undefined
    for (const [i, address] of candidates.entries()) {
      const conn = new NodeConnection(address, {
        authToken: this.options.authToken,
        connectTimeoutMs: this.connectTimeoutMs,
        maxFrameBytes: DEFAULT_LIMITS.maxFrameBytes * 2,
      })
      try {
        await conn.ready
      } catch (err) {
        lastError = err as TandemError
        if (lastError.code === 'UNAUTHORIZED') throw lastError
        continue
      }
      if (this.state !== 'open') {
        conn.close()
        throw new TandemError('CLOSED', 'client is closed')
      }
      this.preferred = (this.preferred + i) % this.servers.length
      conn.onClose((_err, unsent, sent) => this.onConnectionLost(conn, unsent, sent))
      this.conn = conn
      return conn
    }
    throw lastError ?? new TandemError('UNAVAILABLE', `cannot reach any of ${this.servers.join(', ')}`)
  }

  /**
   * A connection dropped. Unsent requests and sent reads are retried on a new
   * connection. A sent write may have been applied: retrying could apply it
   * twice, so it fails with UNCERTAIN and the caller decides.
   */
  private onConnectionLost(conn: NodeConnection, unsent: PendingRequest[], sent: PendingRequest[]): void {
    if (this.conn === conn) this.conn = null
    if (this.state !== 'open') {
      for (const r of [...unsent, ...sent]) r.reject(new TandemError('CLOSED', 'client closed'))
      return
    }
    for (const r of unsent) r.retry?.()
    for (const r of sent) {
      if (r.mutates) {
        r.reject(
          new TandemError(
            'UNCERTAIN',
            `connection to ${conn.address} was lost after ${r.message.op} was sent; it may or may not have been applied`,
          ),
        )
      } else {
        r.retry?.()
      }
    }
  }
}

function nextDelay(delay: number): number {
  return Math.min(MAX_BACKOFF_MS, delay * 2) * (0.75 + Math.random() * 0.5)
}

function rotate<T>(items: T[], start: number): T[] {
  return [...items.slice(start), ...items.slice(0, start)]
}

/** A w>0 write's own deadline is enforced by the server, which then says TIMEOUT with the seq; wait a little longer for that answer. */
function writeTimeout(options: WriteOptions, fallback: number): number {
  return options.w !== undefined && options.timeoutMs !== undefined
    ? options.timeoutMs + 1000
    : (options.timeoutMs ?? fallback)
}

function writeFields(options: WriteOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  if (options.w !== undefined) out.w = options.w
  if (options.w !== undefined && options.timeoutMs !== undefined) out.timeoutMs = options.timeoutMs
  return out
}

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw new TypeError(`key must be a string, got ${typeof key}`)
}

function checkValue(value: unknown): asserts value is Value {
  if (typeof value !== 'string' && !(value instanceof Uint8Array)) {
    throw new TypeError(`value must be a string or Uint8Array, got ${typeof value}`)
  }
}
