import { EventEmitter } from 'node:events'
import {
  type BatchOp,
  type Consistency,
  DEFAULT_LIMITS,
  type GetAllResult,
  headerSafe,
  hostPortProblem,
  MAX_FRAME_BYTES_CEILING,
  type NodeStatus,
  type ScanOptions,
  type ScanPage,
  TandemError,
  type Value,
  type ValueMeta,
  type WriteResult,
} from '@tandem/protocol'
import { snapshotFrom } from './backup.js'
import { Call, type CallHost, Deadlines, pinnedTo, type Route } from './call.js'
import { dial, NodeConnection, type PendingRequest } from './connection.js'
import {
  checkConsistency,
  checkKey,
  checkTimeout,
  checkValue,
  withConditions,
  withWriteFields,
  writeTimeout,
} from './messages.js'
import type {
  ClientStatus,
  CloseOptions,
  ConnectOptions,
  DelOptions,
  PutOptions,
  ReadOptions,
  RequestOptions,
  TandemClientEvents,
  WriteOptions,
} from './options.js'
import { Router, readRoute } from './router.js'
import { parseConnectionUrl } from './url.js'
import { Watch, type WatchHost, type WatchOptions } from './watch.js'

/**
 * TandemClient: the SDK. Calls made concurrently share one socket and are
 * sent together. Each call is a Call (call.ts: its timeout, retries, the
 * UNCERTAIN rule); the Router (router.ts) says which node it goes to: the
 * master, found by discovery and followed after a fail-over, a replica, or
 * in a multi-master group the first server (in the order given) that takes
 * writes, and the next one when it cannot reach it: there is no election
 * to wait for. The client holds one connection per node, opened when a
 * call or the router needs it and again after it drops.
 */
export class TandemClient extends EventEmitter<TandemClientEvents> {
  state: ClientStatus = 'open'
  private readonly servers: string[]
  private readonly timeoutMs: number
  private readonly connectTimeoutMs: number
  private readonly maxQueued: number
  private readonly livenessTimeoutMs: number
  private readonly maxFrameBytes: number
  private readonly conns = new Map<string, NodeConnection>()
  private readonly opening = new Map<string, Promise<NodeConnection>>()
  private readonly router: Router
  private nextId = 1
  private outstanding = 0
  /**
   * Multi-master: the greatest hybrid clock stamp of this client's writes,
   * sent with the next ones (`after`): whichever peer takes a write stamps
   * it later, so under last-writer-wins the client's writes keep the order
   * it made them in (a delete after a put is never undone by that put).
   */
  private stamp = 0
  /** Requests waiting out a backoff before their next attempt. */
  private readonly waiting = new Set<() => void>()
  /** Nodes this client had a connection to: opening one again is a reconnect. */
  private readonly everConnected = new Set<string>()
  /** close({ drain: true }) waiting for the outstanding calls. */
  private drained: (() => void) | null = null
  private closing: Promise<void> | null = null

  private constructor(private readonly options: ConnectOptions) {
    super()
    const servers = typeof options.servers === 'string' ? options.servers.split(',') : options.servers
    this.servers = servers.map((s) => s.trim()).filter(Boolean)
    if (this.servers.length === 0) throw new TypeError('TandemClient needs at least one server address')
    const token = options.authToken
    if (token !== undefined && (typeof token !== 'string' || !headerSafe(token))) {
      throw new TypeError('authToken must be a string of printable Latin-1 characters (it travels in an HTTP header)')
    }
    for (const s of this.servers) {
      const problem = hostPortProblem(s)
      if (problem !== null) throw new TypeError(`server address: ${problem}`)
    }
    this.timeoutMs = options.timeoutMs ?? 10_000
    checkTimeout('timeoutMs', this.timeoutMs)
    this.connectTimeoutMs = options.connectTimeoutMs ?? 5000
    checkTimeout('connectTimeoutMs', this.connectTimeoutMs)
    this.maxQueued = options.maxQueued ?? 100_000
    this.livenessTimeoutMs = options.livenessTimeoutMs ?? 2000
    if (options.consistency !== undefined) checkConsistency(options.consistency)
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_LIMITS.maxFrameBytes
    if (
      !(Number.isInteger(this.maxFrameBytes) && this.maxFrameBytes > 0 && this.maxFrameBytes <= MAX_FRAME_BYTES_CEILING)
    )
      throw new TypeError(`maxFrameBytes must be an integer from 1 to ${MAX_FRAME_BYTES_CEILING}`)
    // Nodes ping a client they owe replies to every 500 ms of quiet, so a
    // shorter timeout could drop a node that is only holding back its socket.
    if (!(this.livenessTimeoutMs === 0 || (this.livenessTimeoutMs >= 1000 && Number.isFinite(this.livenessTimeoutMs))))
      throw new TypeError(
        `livenessTimeoutMs must be 0 (off) or at least 1000 ms, got ${String(options.livenessTimeoutMs)}`,
      )
    this.router = new Router(
      { servers: this.servers, direct: options.direct === true, readFrom: options.readFrom ?? 'master' },
      {
        connect: (address) => this.connection(address),
        anyOpen: () => this.anyOpen(),
        statusOf: (address) =>
          this.connection(address).then(
            (conn) => this.callOn(conn, { op: 'status' }, this.connectTimeoutMs) as Promise<NodeStatus>,
          ),
        topology: (topology) => this.emit('topology', topology),
        report: (err) => this.report(err),
      },
    )
  }

  /**
   * Connects to the first reachable server and checks the auth token.
   * Takes the options, or a connection URL
   * (`tandem://HOST:PORT,HOST:PORT?authToken=...`, see url.ts).
   */
  static async connect(options: ConnectOptions | string): Promise<TandemClient> {
    const client = new TandemClient(typeof options === 'string' ? parseConnectionUrl(options) : options)
    try {
      if (client.options.failFast) await client.router.target('seed')
      await client.request({ op: 'ping' }, 'seed', client.connectTimeoutMs + 1000)
    } catch (err) {
      client.close()
      throw err
    }
    return client
  }

  // ---- data --------------------------------------------------------------

  // get, put and del are the hot calls: plain functions rather than async
  // ones (no extra promise per call), and, like async ones, they report
  // every error as a rejection, never a throw (bad arguments, options:
  // null from plain JavaScript, a method called without its client).

  /**
   * The value stored at key (same type as stored), or undefined when there
   * is none. With `meta: true`, `{ value, seq, expiresAt? }`: seq is the
   * key's modification seq (what `ifSeq` compares with).
   */
  get(key: string, options?: ReadOptions & { meta?: false }): Promise<Value | undefined>
  get(key: string, options: ReadOptions & { meta: true }): Promise<ValueMeta | undefined>
  get(key: string, options: ReadOptions & { meta?: boolean } = {}): Promise<Value | ValueMeta | undefined> {
    try {
      checkKey(key)
      const consistency = this.readConsistency(options.consistency)
      const message: Record<string, unknown> = { op: 'get', key }
      if (consistency !== undefined) message.consistency = consistency
      if (options.meta === true) message.meta = true
      return this.request(
        message,
        readRoute(consistency),
        options.timeoutMs,
        this.defaultRead(options.consistency, consistency),
      ).then(orUndefined<Value | ValueMeta>)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /**
   * Every concurrent value of a key (multi-master vclock; one at most
   * otherwise), none when it is missing, and the causal context to write
   * with: `put(key, value, { context })` then replaces exactly these values.
   */
  async getAll(key: string, options: ReadOptions = {}): Promise<GetAllResult> {
    checkKey(key)
    const consistency = this.readConsistency(options.consistency)
    const message: Record<string, unknown> = { op: 'getAll', key }
    if (consistency !== undefined) message.consistency = consistency
    const defaultRead = this.defaultRead(options.consistency, consistency)
    return (await this.request(message, readRoute(consistency), options.timeoutMs, defaultRead)) as GetAllResult
  }

  async mget(keys: string[], options: ReadOptions = {}): Promise<(Value | undefined)[]> {
    if (!Array.isArray(keys)) throw new TypeError('mget takes an array of keys')
    for (const k of keys) checkKey(k)
    const consistency = this.readConsistency(options.consistency)
    const message: Record<string, unknown> = { op: 'mget', keys }
    if (consistency !== undefined) message.consistency = consistency
    const defaultRead = this.defaultRead(options.consistency, consistency)
    const values = (await this.request(
      message,
      readRoute(consistency),
      options.timeoutMs,
      defaultRead,
    )) as (Value | null)[]
    return values.map((v) => v ?? undefined)
  }

  put(key: string, value: Value, options: PutOptions = {}): Promise<WriteResult> {
    try {
      checkKey(key)
      checkValue(value)
      const message = withWriteFields(withConditions({ op: 'put', key, value }, options, true), options)
      return this.request(message, 'write', writeTimeout(options, this.timeoutMs)) as Promise<WriteResult>
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /**
   * Stores `value` as JSON text (a string value, so `tandem get` prints it).
   * A value JSON cannot hold (undefined, a function, a BigInt, a cycle) is a TypeError.
   */
  putJson(key: string, value: unknown, options: PutOptions = {}): Promise<WriteResult> {
    let text: string | undefined
    try {
      text = JSON.stringify(value)
    } catch (err) {
      return Promise.reject(new TypeError(`putJson: the value cannot be written as JSON: ${(err as Error).message}`))
    }
    if (text === undefined) return Promise.reject(new TypeError(`putJson: ${typeof value} cannot be written as JSON`))
    return this.put(key, text, options)
  }

  /**
   * The value at key parsed as JSON, typed as the caller says (nothing
   * checks the shape), or undefined when there is none. A value that is
   * not JSON text (binary, or text that does not parse) fails with INVALID.
   */
  async getJson<T = unknown>(key: string, options: RequestOptions = {}): Promise<T | undefined> {
    const value = await this.get(key, options)
    if (value === undefined) return undefined
    if (typeof value !== 'string')
      throw new TandemError('INVALID', `the value at ${JSON.stringify(key)} is binary, not JSON`)
    try {
      return JSON.parse(value) as T
    } catch (err) {
      throw new TandemError('INVALID', `the value at ${JSON.stringify(key)} is not JSON: ${(err as Error).message}`)
    }
  }

  del(key: string, options: DelOptions = {}): Promise<WriteResult> {
    try {
      checkKey(key)
      const message = withWriteFields(withConditions({ op: 'del', key }, options, false), options)
      return this.request(message, 'write', writeTimeout(options, this.timeoutMs)) as Promise<WriteResult>
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /**
   * Applies all ops atomically: all of them or none. Ops may carry
   * conditions (ifSeq, ifAbsent, ifPresent): if any does not hold, none
   * is applied (CONFLICT).
   */
  async batch(ops: BatchOp[], options: WriteOptions = {}): Promise<WriteResult> {
    if (!Array.isArray(ops)) throw new TypeError('batch takes an array of ops')
    if (options.context !== undefined) throw new TypeError('batch takes no context: write a key with put or del')
    for (const op of ops) {
      if (op?.type !== 'put' && op?.type !== 'del') throw new TypeError(`batch op type must be 'put' or 'del'`)
      checkKey(op.key)
      if (op.type === 'put') checkValue(op.value)
    }
    const wire = ops.map((op) =>
      op.type === 'put'
        ? withConditions({ type: 'put', key: op.key, value: op.value }, op, true)
        : withConditions({ type: 'del', key: op.key }, op, false),
    )
    return (await this.request(
      withWriteFields({ op: 'batch', ops: wire }, options),
      'write',
      writeTimeout(options, this.timeoutMs),
    )) as WriteResult
  }

  /**
   * Entries in key order (reverse order with `reverse`), fetched a page at a
   * time so that neither side holds more than one page in memory.
   */
  async *scan(options: ScanOptions & ReadOptions = {}): AsyncGenerator<[string, Value]> {
    for (const bound of ['prefix', 'gt', 'gte', 'lt', 'lte'] as const) {
      if (options[bound] !== undefined) checkKey(options[bound], bound)
    }
    let remaining = options.limit
    const { consistency: asked, timeoutMs, ...rest } = options
    const range: ScanOptions = { ...rest }
    delete range.limit
    // Each page is one read of its own (see the README: a scan is not one snapshot).
    if (asked !== undefined) checkConsistency(asked)
    while (remaining === undefined || remaining > 0) {
      const consistency = this.readConsistency(asked)
      const extra = consistency === undefined ? {} : { consistency }
      const page = (await this.request(
        { op: 'scan', ...range, ...extra, ...(remaining === undefined ? {} : { limit: remaining }) },
        readRoute(consistency),
        timeoutMs,
        this.defaultRead(asked, consistency),
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

  /**
   * Follows changes in log order, from `fromSeq` or from now on: an async
   * iterator of `{ seq, type, key, value? }`. It goes where reads go (the
   * master by default) and follows a fail-over, resuming on the new node
   * from the last seq it received. `break` (or `close()`) ends it.
   */
  watch(options: WatchOptions = {}): Watch {
    if (options === null || typeof options !== 'object') throw new TypeError('watch takes an options object')
    if (options.key !== undefined) checkKey(options.key)
    if (options.prefix !== undefined) checkKey(options.prefix)
    if (options.fromSeq !== undefined && !(Number.isSafeInteger(options.fromSeq) && options.fromSeq >= 1)) {
      throw new TypeError(`fromSeq must be an integer >= 1, got ${String(options.fromSeq)}`)
    }
    if (this.state !== 'open') throw new TandemError('CLOSED', 'client is closed')
    const watch = new Watch(this.watchHost, options)
    this.watches.add(watch)
    return watch
  }

  private readonly watches = new Set<Watch>()

  private get watchHost(): WatchHost {
    const direct = this.options.direct === true
    const readFrom = this.options.readFrom ?? 'master'
    return {
      target: () => this.router.target('read'),
      wantsMaster: !direct && readFrom === 'master',
      dial: (address) =>
        dial(address, '/watch', {
          authToken: this.options.authToken,
          tls: this.options.tls,
          connectTimeoutMs: this.connectTimeoutMs,
          // A frame holds about 256 KiB of events, or more for one large entry.
          maxFrameBytes: DEFAULT_LIMITS.maxFrameBytes * 8,
        }),
      lost: (address, err) => {
        if (err.details.master !== undefined) this.router.noteNotMaster(address, err)
        else this.router.forget(address)
      },
      ended: (watch) => this.watches.delete(watch),
      waiting: this.waiting,
      livenessTimeoutMs: this.livenessTimeoutMs,
      reconnectTimeoutMs: Math.max(this.timeoutMs, 10_000),
    }
  }

  /**
   * A backup of the node named first in `servers`: the bytes of a snapshot
   * file (see `tandem snapshot save`), streamed as the node reads its data.
   * The data is consistent at one seq while writes go on. The stream pauses
   * while the caller does not take its chunks, and so does the node.
   */
  async *backup(): AsyncGenerator<Buffer> {
    if (this.state !== 'open') throw new TandemError('CLOSED', 'client is closed')
    yield* snapshotFrom(this.servers[0], {
      authToken: this.options.authToken,
      tls: this.options.tls,
      connectTimeoutMs: this.connectTimeoutMs,
      maxFrameBytes: DEFAULT_LIMITS.maxFrameBytes * 16,
    })
  }

  // ---- admin -------------------------------------------------------------

  async status(options: RequestOptions = {}): Promise<NodeStatus> {
    return (await this.request(
      { op: 'status' },
      this.options.direct ? 'read' : 'write',
      options.timeoutMs,
    )) as NodeStatus
  }

  async ping(options: RequestOptions = {}): Promise<void> {
    await this.request({ op: 'ping' }, 'read', options.timeoutMs)
  }

  /** Waits until `replicas` replicas hold the node's current seq; resolves with how many do. */
  async wait(replicas: number, timeoutMs: number): Promise<number> {
    return (await this.request({ op: 'wait', replicas, timeoutMs }, 'write', timeoutMs + this.timeoutMs)) as number
  }

  /** Makes the connected node a master. */
  async promote(options: RequestOptions = {}): Promise<NodeStatus> {
    return (await this.request({ op: 'promote' }, 'admin', options.timeoutMs)) as NodeStatus
  }

  /**
   * Multi-master: makes the connected node forget a peer's origin for good
   * (a dead or replaced peer, which otherwise holds tombstone collection up
   * forever); `force` even while a link of it is up.
   */
  async forget(
    origin: string,
    options: RequestOptions & { force?: boolean } = {},
  ): Promise<{ origin: string; forgotten: string[]; closedLinks: number }> {
    const { force, timeoutMs } = options
    return (await this.request({ op: 'forget', origin, ...(force ? { force } : {}) }, 'admin', timeoutMs)) as {
      origin: string
      forgotten: string[]
      closedLinks: number
    }
  }

  /** Points the connected node at a new upstream (HOST:PORT), or makes it stop following (null). */
  async replicaof(upstream: string | null, options: RequestOptions = {}): Promise<NodeStatus> {
    return (await this.request({ op: 'replicaof', upstream }, 'admin', options.timeoutMs)) as NodeStatus
  }

  /**
   * Closes the connections and watches. Calls still waiting fail with
   * CLOSED, or, with `{ drain: true }`, are waited for first. Safe to call
   * twice; a close without drain during a drain ends it at once.
   */
  close(options: CloseOptions = {}): Promise<void> {
    if (this.state === 'closed') return Promise.resolve()
    if (options.drain && this.outstanding > 0) {
      if (this.state === 'open') {
        this.state = 'closing'
        for (const watch of this.watches) watch.close()
        this.watches.clear()
        this.closing = new Promise<void>((resolve) => {
          this.drained = resolve
        }).then(() => this.shutdown())
      }
      return this.closing as Promise<void>
    }
    this.shutdown()
    return Promise.resolve()
  }

  /** `await using db = await TandemClient.connect(...)`: a draining close at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close({ drain: true })
  }

  private shutdown(): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    const drained = this.drained
    this.drained = null
    for (const watch of this.watches) watch.close()
    this.watches.clear()
    for (const conn of this.conns.values()) conn.close()
    this.conns.clear()
    // Calls waiting out a backoff try again now, and fail with CLOSED.
    for (const wake of [...this.waiting]) wake()
    drained?.()
  }

  /** Emits `error` only to a listener: a client nobody listens to must not throw. */
  private report(err: TandemError): void {
    if (this.listenerCount('error') > 0) this.emit('error', err)
  }

  // ---- plumbing ----------------------------------------------------------

  /**
   * The consistency a read asks for: the call's, else the client's, else
   * linearizable when it goes to the master of a fail-over group. Sent
   * explicitly then, so that a node that is no longer the master refuses it
   * (and the call finds the master) instead of answering from its own data.
   * Undefined: the node's default.
   */
  private readConsistency(asked: Consistency | undefined): Consistency | undefined {
    if (asked !== undefined) {
      checkConsistency(asked)
      return asked
    }
    if (this.options.consistency !== undefined) return this.options.consistency
    if (this.options.direct || (this.options.readFrom ?? 'master') !== 'master') return undefined
    // Not known yet (no node has said): the safe choice. A master outside a
    // fail-over group serves it too (waiting for a majority of itself and
    // its replicas), and the first discovery settles it for later reads.
    return this.router.clusterGroup === false ? undefined : 'linearizable'
  }

  /** Whether a read's consistency is the client's own linearizable, chosen before any node said what the nodes are. */
  private defaultRead(asked: Consistency | undefined, consistency: Consistency | undefined): boolean {
    return asked === undefined && this.options.consistency === undefined && consistency !== undefined
  }

  private request(
    message: Record<string, unknown>,
    route: Route,
    timeoutMs = this.timeoutMs,
    defaultRead = false,
  ): Promise<unknown> {
    if (this.state !== 'open') return Promise.reject(new TandemError('CLOSED', 'client is closed'))
    try {
      checkTimeout('timeoutMs', timeoutMs)
    } catch (err) {
      return Promise.reject(err)
    }
    if (this.outstanding >= this.maxQueued) {
      return Promise.reject(new TandemError('BUSY', `${this.outstanding} requests outstanding (maxQueued)`))
    }
    this.outstanding++
    message.id = this.nextId++
    return new Promise<unknown>((resolve, reject) => {
      const call = new Call(this.calls, message, route, timeoutMs, resolve, reject)
      call.defaultRead = defaultRead
      call.attempt()
    })
  }

  /**
   * One request on `conn` alone, under a call's timeout, never sent again
   * nor elsewhere: discovery asks each node itself.
   */
  private callOn(conn: NodeConnection, message: Record<string, unknown>, timeoutMs: number): Promise<unknown> {
    message.id = this.nextId++
    return new Promise<unknown>((resolve, reject) => {
      new Call(pinnedTo(this.calls, conn), message, 'admin', timeoutMs, resolve, reject).attempt()
    })
  }

  /** What a Call needs of its client, made once per client (a request allocates no closures for it). */
  private readonly calls: CallHost = {
    finished: () => {
      this.outstanding--
      if (this.outstanding === 0 && this.drained) this.shutdown()
    },
    readyConnection: (route) => this.readyConnection(route),
    connect: (route) => this.router.target(route).then((address) => this.connection(address)),
    closed: () => this.state === 'closed',
    reroutes: (route, err) => this.router.reroutes(route, err),
    noteNotMaster: (address, err) => this.router.noteNotMaster(address, err),
    epoch: () => this.router.epoch,
    noteEpoch: (epoch) => this.router.noteEpoch(epoch),
    stamp: () => this.stamp,
    noteStamp: (result) => {
      const hlc = (result as { hlc?: unknown } | null)?.hlc
      if (typeof hlc === 'number' && Number.isSafeInteger(hlc) && hlc > this.stamp) this.stamp = hlc
    },
    waiting: this.waiting,
    deadlines: new Deadlines(),
    clusterGroup: () => this.router.clusterGroup,
    retries: true,
  }

  /** The open connection a request of this kind goes to, when that is known without asking anyone. */
  private readyConnection(route: Route): NodeConnection | undefined {
    const address = this.router.readyAddress(route)
    if (address === null) return undefined
    const conn = this.conns.get(address)
    return conn?.state === 'open' ? conn : undefined
  }

  /** An address whose connection is open, if any. */
  private anyOpen(): string | undefined {
    for (const [address, conn] of this.conns) if (conn.state === 'open') return address
    return undefined
  }

  /**
   * The open connection to `address`, opening it when there is none. Never
   * throws: every failure, an address a node reported that cannot be
   * dialled included, is the returned promise's rejection.
   */
  private connection(address: string): Promise<NodeConnection> {
    if (this.state === 'closed') return Promise.reject(new TandemError('CLOSED', 'client is closed'))
    const problem = hostPortProblem(address)
    if (problem !== null) return Promise.reject(new TandemError('UNAVAILABLE', `cannot connect: ${problem}`))
    const existing = this.conns.get(address)
    if (existing && existing.state === 'open') return Promise.resolve(existing)
    const opening = this.opening.get(address)
    if (opening) return opening
    if (this.everConnected.has(address)) this.emit('reconnecting', address)
    let conn: NodeConnection
    try {
      conn = new NodeConnection(address, {
        authToken: this.options.authToken,
        tls: this.options.tls,
        connectTimeoutMs: this.connectTimeoutMs,
        maxFrameBytes: this.maxFrameBytes,
        livenessTimeoutMs: this.livenessTimeoutMs,
        onPush: (message) => this.onPush(message),
      })
    } catch (err) {
      // `new WebSocket` throws on what it cannot put in a URL or a header
      // (or a TLS option it cannot use).
      return Promise.reject(
        new TandemError('UNAVAILABLE', `cannot connect to ${address}: ${(err as Error).message}`, { cause: err }),
      )
    }
    const ready = conn.ready.then(
      () => {
        this.opening.delete(address)
        if (this.state === 'closed') {
          conn.close()
          throw new TandemError('CLOSED', 'client is closed')
        }
        conn.onClose((err, unsent, sent) => this.onConnectionLost(conn, err, unsent, sent))
        this.conns.set(address, conn)
        this.everConnected.add(address)
        this.emit('connect', address)
        return conn
      },
      (err) => {
        this.opening.delete(address)
        this.router.forget(address)
        throw err
      },
    )
    this.opening.set(address, ready)
    return ready
  }

  /** Servers push topology changes (a new master after a fail-over): calls waiting out a backoff go at once. */
  private onPush(message: Record<string, unknown>): void {
    if (this.router.onPush(message)) for (const wake of [...this.waiting]) wake()
  }

  /**
   * A connection dropped: its requests decide (a Call sends a read again on
   * a new connection, fails a sent write with UNCERTAIN).
   */
  private onConnectionLost(
    conn: NodeConnection,
    cause: TandemError,
    unsent: PendingRequest[],
    sent: PendingRequest[],
  ): void {
    if (this.conns.get(conn.address) === conn) this.conns.delete(conn.address)
    this.router.forget(conn.address)
    this.emit('disconnect', conn.address, cause)
    if (this.state !== 'closed') this.report(cause)
    for (const r of unsent) r.connectionLost(conn.address, cause, false)
    for (const r of sent) r.connectionLost(conn.address, cause, true)
  }
}

function orUndefined<T>(value: unknown): T | undefined {
  return (value as T | null) ?? undefined
}
