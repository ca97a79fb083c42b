import { EventEmitter } from 'node:events'
import {
  type BatchOp,
  type Consistency,
  consistencySchema,
  DEFAULT_LIMITS,
  type GetAllResult,
  hasLoneSurrogate,
  headerSafe,
  hostPortProblem,
  isHostPort,
  MAX_FRAME_BYTES_CEILING,
  type NodeStatus,
  type ScanOptions,
  type ScanPage,
  TandemError,
  type Value,
  type ValueMeta,
  type WriteConcern,
  type WriteResult,
} from '@tandem/protocol'
import { type ClientTls, dial, NodeConnection, type PendingRequest } from './connection.js'
import { parseConnectionUrl } from './url.js'
import { Watch, type WatchHost, type WatchOptions } from './watch.js'

export interface ConnectOptions {
  /** Seed addresses, HOST:PORT (an array or a comma-separated string). */
  servers: string[] | string
  /** Sent to the nodes as is: beyond loopback, use `tls` too. */
  authToken?: string
  /**
   * Connect over TLS (wss://): `true` to check the nodes' certificates
   * against the system's CAs, or `{ ca }` with the PEM of the CA that signed
   * them (as given to the servers' --tls-ca). A node whose certificate does
   * not check out is not connected to (UNAVAILABLE).
   */
  tls?: ClientTls
  /** Where reads go: the master (default), a replica, or whichever node is connected. */
  readFrom?: 'master' | 'replica' | 'any'
  /** Talk to exactly the first server, whatever its role; never re-route. */
  direct?: boolean
  /**
   * What reads may return, unless a call says otherwise (see the README):
   * 'linearizable' (the master, holding its lease, answers once a majority
   * holds every write the read could see), 'lease' (the master, holding its
   * lease, answers from its own data) or 'local' (the node read from answers
   * from its own data). linearizable and lease reads go to the master
   * whatever readFrom says. Default: linearizable for reads that go to the
   * master of a fail-over group (--cluster), else what the node serves by
   * default (local).
   */
  consistency?: Consistency
  /**
   * Largest frame the client sends, in bytes: the nodes' --max-frame-bytes
   * (default 8 MiB). Calls made together are split across frames under it;
   * a single request larger fails with TOOLARGE without being sent.
   */
  maxFrameBytes?: number
  /** Default per-request timeout in ms (default 10,000). */
  timeoutMs?: number
  /** How long to keep trying to connect before a request fails with UNAVAILABLE (default 5,000). */
  connectTimeoutMs?: number
  /** Most requests waiting for a connection or a reply at once; more fail with BUSY (default 100,000). */
  maxQueued?: number
  /**
   * A node that, while requests wait for its replies, sends nothing, not
   * even the answer to a ping, for this many ms is taken as gone (a paused
   * or cut-off master): its sent writes fail with UNCERTAIN, reads are
   * retried, and the client looks for the master again. Default 2,000;
   * at least 1,000 (nodes send a ping every 500 ms of quiet); 0 turns the
   * check off.
   */
  livenessTimeoutMs?: number
  /**
   * `connect` fails at once when no seed can be reached (refused, no such
   * host) instead of retrying for connectTimeoutMs: what a command-line
   * tool wants; a service that may start before its nodes wants the retry.
   */
  failFast?: boolean
}

export interface WriteOptions {
  /**
   * Replicas that must hold the write before it is acknowledged: a number or
   * 'majority'. In a multi-master group: peers.
   */
  w?: WriteConcern
  timeoutMs?: number
  /**
   * Multi-master (vclock): the context a read returned (getAll, or a
   * SIBLINGS error). The write replaces exactly the values that read saw;
   * without it, a put adds a value beside the others.
   */
  context?: string
}

/**
 * Compare-and-set: the write happens only if the key is as said when the
 * master commits it, else it fails with CONFLICT (details: the key and its
 * modification seq). ifSeq: the key's modification seq (get with meta) is
 * this, 0 meaning the key does not exist.
 */
interface DelConditions {
  ifSeq?: number
  ifPresent?: boolean
}
interface PutConditions extends DelConditions {
  ifAbsent?: boolean
  /** The key expires this long (ms) after the master takes the write; without it, a put clears any TTL. */
  ttlMs?: number
}
export type PutOptions = WriteOptions & PutConditions
export type DelOptions = WriteOptions & DelConditions

export interface RequestOptions {
  timeoutMs?: number
}

export interface ReadOptions extends RequestOptions {
  /** This call's consistency (see ConnectOptions.consistency). */
  consistency?: Consistency
}

export type ClientStatus = 'open' | 'closing' | 'closed'

/** What the master is, as the client last learned it (a fail-over's new master and epoch). */
export interface Topology {
  master: string
  epoch: number
  /** The master before, when the client knew one. */
  previous: { master: string; epoch: number } | null
}

/**
 * The client's events, for an application to log or alert on. None is
 * needed to use the client: calls report their own errors.
 * - connect (address): a connection to a node opened.
 * - disconnect (address, error): an open connection was lost (or closed).
 * - reconnecting (address): a connection to a node this client had lost is being opened again.
 * - topology (Topology): the master changed (a fail-over, a promote), as a
 *   node pushed it or the client found it out.
 * - error (error): a failure no call reports (a lost connection's cause,
 *   a discovery that found no node). Emitted only while an `error`
 *   listener is attached, so an application that attaches none is never
 *   thrown at, unlike a plain EventEmitter.
 */
export interface TandemClientEvents {
  connect: [address: string]
  disconnect: [address: string, error: TandemError]
  reconnecting: [address: string]
  topology: [topology: Topology]
  error: [error: TandemError]
}

export interface CloseOptions {
  /**
   * Wait for the calls already made to settle (as ioredis `quit()` does)
   * before closing; new calls fail with CLOSED meanwhile. Each call still
   * ends at its own timeout. Default false: calls in flight fail with CLOSED.
   */
  drain?: boolean
}

const MAX_BACKOFF_MS = 500

/**
 * TandemClient: the SDK. Calls made concurrently share one socket and are
 * sent together. Against a multi-master group it writes to the first
 * server (in the order given) that takes writes, and to the next one when
 * it cannot reach it: there is no election to wait for. When the connection drops, the client reconnects with
 * backoff; reads waiting on the lost connection are retried, writes that
 * were already sent fail with UNCERTAIN (they may or may not have been
 * applied), and writes that never left are sent on the new connection.
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
  private discovering: Promise<void> | null = null
  /** The master's address, once known (in a multi-master group: the peer writes go to). */
  private master: string | null = null
  /** Whether the nodes are a fail-over group (--cluster); null until a node says. */
  private clusterGroup: boolean | null = null
  /** Whether discovery found a multi-master group. */
  private multi = false
  private replicas: string[] = []
  private nextReplica = 0
  private nextId = 1
  private outstanding = 0
  /** The newest fail-over epoch any node has shown this client; sent with writes (a stale master steps down). */
  private epoch = 0
  /**
   * Multi-master: the greatest hybrid clock stamp of this client's writes,
   * sent with the next ones (`after`): whichever peer takes a write stamps
   * it later, so under last-writer-wins the client's writes keep the order
   * it made them in (a delete after a put is never undone by that put).
   */
  private stamp = 0
  /** Requests waiting out a backoff before their next attempt. */
  private readonly waiting = new Set<() => void>()

  /** The last master and epoch reported in a topology event. */
  private topology: { master: string; epoch: number } | null = null
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
    this.connectTimeoutMs = options.connectTimeoutMs ?? 5000
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
  }

  /**
   * Connects to the first reachable server and checks the auth token.
   * Takes the options, or a connection URL
   * (`tandem://HOST:PORT,HOST:PORT?authToken=...`, see url.ts).
   */
  static async connect(options: ConnectOptions | string): Promise<TandemClient> {
    const client = new TandemClient(typeof options === 'string' ? parseConnectionUrl(options) : options)
    try {
      if (client.options.failFast) await client.target('seed')
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
      return this.request(message, readRoute(consistency), options.timeoutMs).then(orUndefined<Value | ValueMeta>)
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
    return (await this.request(message, readRoute(consistency), options.timeoutMs)) as GetAllResult
  }

  async mget(keys: string[], options: ReadOptions = {}): Promise<(Value | undefined)[]> {
    if (!Array.isArray(keys)) throw new TypeError('mget takes an array of keys')
    for (const k of keys) checkKey(k)
    const consistency = this.readConsistency(options.consistency)
    const message: Record<string, unknown> = { op: 'mget', keys }
    if (consistency !== undefined) message.consistency = consistency
    const values = (await this.request(message, readRoute(consistency), options.timeoutMs)) as (Value | null)[]
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
    const consistency = this.readConsistency(asked)
    const extra = consistency === undefined ? {} : { consistency }
    while (remaining === undefined || remaining > 0) {
      const page = (await this.request(
        { op: 'scan', ...range, ...extra, ...(remaining === undefined ? {} : { limit: remaining }) },
        readRoute(consistency),
        timeoutMs,
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
      target: () => this.target('read'),
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
        if (err.details.master !== undefined) this.noteNotMaster(address, err)
        else if (this.master === address) this.master = null
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
    const address = this.servers[0]
    const ws = dial(address, '/snapshot', {
      authToken: this.options.authToken,
      tls: this.options.tls,
      connectTimeoutMs: this.connectTimeoutMs,
      maxFrameBytes: DEFAULT_LIMITS.maxFrameBytes * 16,
    })
    const queue: Buffer[] = []
    let paused = false
    let ended: TandemError | 'done' | null = null
    let wake: (() => void) | null = null
    const notify = () => {
      const w = wake
      wake = null
      w?.()
    }
    ws.on('message', (data) => {
      queue.push(data as Buffer)
      if (queue.length >= 16 && !paused) {
        paused = true
        ws.pause()
      }
      notify()
    })
    ws.on('unexpected-response', (_req, res) => {
      const code = res.statusCode === 401 ? 'UNAUTHORIZED' : res.statusCode === 503 ? 'UNAVAILABLE' : 'INVALID'
      const body: Buffer[] = []
      res.on('data', (b: Buffer) => body.push(b))
      res.on('end', () => {
        let reason = `HTTP ${res.statusCode}`
        try {
          reason = JSON.parse(Buffer.concat(body).toString()).error ?? reason
        } catch {}
        ended = new TandemError(code, `${address} refused the snapshot: ${reason}`)
        notify()
      })
      ws.terminate()
    })
    ws.on('error', (err) => {
      ended ??= new TandemError('UNAVAILABLE', `snapshot from ${address}: ${err.message}`)
      notify()
    })
    ws.on('close', (code, reason) => {
      const text = reason.toString()
      ended ??=
        code === 1000
          ? 'done'
          : new TandemError(
              code === 1013 ? 'BUSY' : 'UNAVAILABLE',
              `the snapshot from ${address} ended before it was complete (${code}${text ? ` ${text}` : ''})`,
            )
      notify()
    })
    try {
      for (;;) {
        const chunk = queue.shift()
        if (chunk !== undefined) {
          if (paused && queue.length < 4) {
            paused = false
            ws.resume()
          }
          yield chunk
          continue
        }
        if (ended === 'done') return
        if (ended) throw ended
        await new Promise<void>((resolve) => {
          wake = resolve
        })
      }
    } finally {
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.terminate()
    }
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

  /** A master (and its epoch) learned from a push or a discovery: a topology event when it is news. */
  private learnMaster(master: string, epoch: number): void {
    const last = this.topology
    if (last && (epoch < last.epoch || (epoch === last.epoch && master === last.master))) return
    this.topology = { master, epoch }
    this.emit('topology', { master, epoch, previous: last })
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
    return this.clusterGroup === false ? undefined : 'linearizable'
  }

  private request(message: Record<string, unknown>, route: Route, timeoutMs = this.timeoutMs): Promise<unknown> {
    if (this.state !== 'open') return Promise.reject(new TandemError('CLOSED', 'client is closed'))
    if (this.outstanding >= this.maxQueued) {
      return Promise.reject(new TandemError('BUSY', `${this.outstanding} requests outstanding (maxQueued)`))
    }
    this.outstanding++
    message.id = this.nextId++
    return new Promise<unknown>((resolve, reject) => {
      new Call(this.calls, message, route, timeoutMs, resolve, reject).attempt()
    })
  }

  /** What a Call needs of its client, made once per client (a request allocates no closures for it). */
  private readonly calls: CallHost = {
    finished: () => {
      this.outstanding--
      if (this.outstanding === 0 && this.drained) this.shutdown()
    },
    readyConnection: (route) => this.readyConnection(route),
    connect: (route) => this.target(route).then((address) => this.connection(address)),
    closed: () => this.state === 'closed',
    reroutes: (route, err) =>
      !this.options.direct &&
      route !== 'admin' &&
      // A peer that refuses a write for now (just started, restoring its
      // writes, shutting down) applied nothing: the next peer can take it.
      (REROUTE.has(err.code) || (this.multi && err.code === 'UNAVAILABLE')),
    noteNotMaster: (address, err) => this.noteNotMaster(address, err),
    epoch: () => this.epoch,
    noteEpoch: (epoch) => this.noteEpoch(epoch),
    stamp: () => this.stamp,
    noteStamp: (result) => {
      const hlc = (result as { hlc?: unknown } | null)?.hlc
      if (typeof hlc === 'number' && Number.isSafeInteger(hlc) && hlc > this.stamp) this.stamp = hlc
    },
    waiting: this.waiting,
  }

  /** The open connection a request of this kind goes to, when that is known without asking anyone. */
  private readyConnection(route: Route): NodeConnection | undefined {
    let address: string | null
    if (this.options.direct || route === 'admin') address = this.servers[0]
    else if (route === 'write' || (route === 'read' && (this.options.readFrom ?? 'master') === 'master'))
      address = this.master
    else return undefined
    if (address === null) return undefined
    const conn = this.conns.get(address)
    return conn?.state === 'open' ? conn : undefined
  }

  /** The address a request of this kind goes to now. */
  private async target(route: Route): Promise<string> {
    if (this.options.direct) return this.servers[0]
    if (route === 'read') {
      const readFrom = this.options.readFrom ?? 'master'
      if (readFrom === 'any') {
        for (const [address, conn] of this.conns) if (conn.state === 'open') return address
      }
      if (readFrom === 'replica') {
        if (this.replicas.length === 0 && this.master === null) await this.discover()
        if (this.replicas.length > 0) return this.replicas[this.nextReplica++ % this.replicas.length]
      }
    }
    if (route === 'admin') return this.servers[0]
    if (route === 'seed') {
      for (const [address, conn] of this.conns) if (conn.state === 'open') return address
      // All seeds at once: one that accepts TCP but never answers (paused,
      // or cut off by a partition) must not hold up the others.
      return Promise.any(this.servers.map((address) => this.connection(address).then(() => address))).catch(
        (err: AggregateError) => {
          throw err.errors[err.errors.length - 1]
        },
      )
    }
    if (this.master !== null) return this.master
    await this.discover()
    if (this.master !== null) return this.master
    throw new TandemError('NOMASTER', `no master among ${this.known().join(', ')}`)
  }

  /** Every address the client knows of: seeds first, then what the cluster told it. */
  private known(): string[] {
    return [...new Set([...this.servers, ...(this.master ? [this.master] : []), ...this.replicas])]
  }

  /**
   * Asks every known node for its status and takes the master with the
   * highest epoch. One discovery runs at a time; callers share it.
   */
  private discover(): Promise<void> {
    if (!this.discovering) {
      this.discovering = this.runDiscovery().finally(() => {
        this.discovering = null
      })
    }
    return this.discovering
  }

  private async runDiscovery(): Promise<void> {
    const statuses: NodeStatus[] = []
    const errors: TandemError[] = []
    const asked = new Set<string>()
    let pending = 0
    let grace: NodeJS.Timeout | undefined
    let done!: () => void
    const finished = new Promise<void>((resolve) => {
      done = resolve
    })
    const ask = (address: string) => {
      if (asked.has(address)) return
      asked.add(address)
      pending++
      this.connection(address)
        .then((conn) => this.direct(conn, { op: 'status' }, this.connectTimeoutMs))
        .then(
          (status) => {
            const s = status as NodeStatus
            statuses.push(s)
            // A replica names its master; ask it too.
            if (isHostPort(s.master)) ask(s.master)
            // A node that does not answer (paused, cut off) must not hold
            // up the others: once a master that takes writes has answered,
            // wait only briefly for one of a newer epoch.
            if ((s.role === 'master' || s.role === 'peer') && !s.readOnly && grace === undefined) {
              grace = setTimeout(done, DISCOVERY_GRACE_MS)
            }
          },
          (err) => errors.push(err as TandemError),
        )
        .finally(() => {
          if (--pending === 0) done()
        })
    }
    for (const address of this.known()) ask(address)
    await finished
    clearTimeout(grace)
    if (statuses.length > 0) this.clusterGroup = statuses.some((s) => s.failover != null)
    for (const s of statuses) this.noteEpoch(s.epoch)
    const peers = statuses.filter((s) => s.role === 'peer' && !s.readOnly)
    // Multi-master: every peer takes writes; the first in the caller's order wins.
    const rank = (s: NodeStatus) => {
      const i = this.servers.indexOf(String(s.address ?? ''))
      return i < 0 ? this.servers.length : i
    }
    peers.sort((a, b) => rank(a) - rank(b))
    const masters = statuses.filter((s) => s.role === 'master' && !s.readOnly).sort((a, b) => b.epoch - a.epoch)
    const master = peers[0] ?? masters[0]
    this.multi = statuses.some((s) => s.role === 'peer')
    // Addresses come from the nodes: only well-formed ones are ever dialled.
    if (master) {
      this.master = isHostPort(master.address) ? master.address : null
      this.replicas = master.replicas.map((r) => r.addr).filter(isHostPort)
      if (this.master) this.learnMaster(this.master, master.epoch)
    } else {
      this.master = null
      this.replicas = statuses
        .filter((s) => s.role === 'replica')
        .map((s) => s.address)
        .filter(isHostPort)
    }
    if (statuses.length === 0 && errors.length > 0) {
      const unauthorized = errors.find((e) => e.code === 'UNAUTHORIZED')
      const err =
        unauthorized ??
        new TandemError('UNAVAILABLE', `cannot reach any of ${this.known().join(', ')}: ${errors[0].message}`)
      this.report(err)
      throw err
    }
  }

  /** A request on one given connection, outside the routing (discovery). */
  private direct(conn: NodeConnection, message: Record<string, unknown>, timeoutMs: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++
      const timer = setTimeout(() => {
        conn.forget(id)
        reject(new TandemError('TIMEOUT', `${conn.address} did not answer ${message.op} in ${timeoutMs} ms`))
      }, timeoutMs)
      try {
        conn.send({
          id,
          message: { id, ...message },
          mutates: false,
          resolve: (r) => {
            clearTimeout(timer)
            resolve(r)
          },
          reject: (e) => {
            clearTimeout(timer)
            reject(e)
          },
          retry: () => {
            clearTimeout(timer)
            reject(new TandemError('UNAVAILABLE', `lost connection to ${conn.address}`))
          },
        })
      } catch (err) {
        clearTimeout(timer)
        reject(err)
      }
    })
  }

  private noteEpoch(epoch: unknown): void {
    if (typeof epoch === 'number' && Number.isSafeInteger(epoch) && epoch > this.epoch) this.epoch = epoch
  }

  /** A node refused a write as not the master: forget it as master, and take its hint. */
  private noteNotMaster(address: string | undefined, err: TandemError): void {
    const hint = isHostPort(err.details.master) ? err.details.master : null
    if (hint && hint !== address) this.master = hint
    else if (this.master === address || this.master === hint) this.master = null
    // A master learnt from a hint skips discovery, which says whether this is a fail-over group.
    if (this.clusterGroup === null) this.discover().catch(() => {})
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
        if (this.master === address) this.master = null
        throw err
      },
    )
    this.opening.set(address, ready)
    return ready
  }

  /** Servers push topology changes (a new master after a fail-over). */
  private onPush(message: Record<string, unknown>): void {
    this.noteEpoch(message.epoch)
    if (message.push === 'topology' && isHostPort(message.master)) {
      // Only the members of a fail-over group push topology changes.
      this.clusterGroup = true
      this.master = message.master
      if (typeof message.epoch === 'number') this.learnMaster(message.master, message.epoch)
      for (const wake of [...this.waiting]) wake()
    }
  }

  /**
   * A connection dropped. Unsent requests and sent reads are retried on a new
   * connection. A sent write may have been applied: retrying could apply it
   * twice, so it fails with UNCERTAIN and the caller decides.
   */
  private onConnectionLost(
    conn: NodeConnection,
    cause: TandemError,
    unsent: PendingRequest[],
    sent: PendingRequest[],
  ): void {
    if (this.conns.get(conn.address) === conn) this.conns.delete(conn.address)
    if (this.master === conn.address) this.master = null
    this.emit('disconnect', conn.address, cause)
    if (this.state !== 'closed') this.report(cause)
    if (this.state === 'closed') {
      for (const r of [...unsent, ...sent]) r.reject(new TandemError('CLOSED', 'client closed'))
      return
    }
    for (const r of unsent) r.retry?.()
    for (const r of sent) {
      if (r.mutates) {
        r.reject(
          new TandemError(
            'UNCERTAIN',
            `connection to ${conn.address} was lost after ${r.message.op} was sent (${cause.message}); it may or may not have been applied`,
          ),
        )
      } else {
        r.retry?.()
      }
    }
  }
}

/**
 * read: per readFrom; write: the master (writes, and lease or linearizable
 * reads); admin: the first server (the node the caller named); seed: any
 * reachable server.
 */
type Route = 'read' | 'write' | 'admin' | 'seed'

/** Lease and linearizable reads only the master serves. */
function readRoute(consistency: Consistency | undefined): Route {
  return consistency === 'linearizable' || consistency === 'lease' ? 'write' : 'read'
}

function checkConsistency(value: unknown): asserts value is Consistency {
  if (!consistencySchema.safeParse(value).success) {
    throw new TypeError(`consistency must be 'linearizable', 'lease' or 'local', got ${JSON.stringify(value)}`)
  }
}

interface CallHost {
  /** A call has settled (one fewer outstanding). */
  finished(): void
  readyConnection(route: Route): NodeConnection | undefined
  connect(route: Route): Promise<NodeConnection>
  /** Whether a refusal means "not the master here": nothing was applied, so the call may go elsewhere. */
  reroutes(route: Route, err: TandemError): boolean
  noteNotMaster(address: string | undefined, err: TandemError): void
  /** The newest epoch the client has seen, and a way to tell it of one. */
  epoch(): number
  noteEpoch(epoch: unknown): void
  /** Multi-master: the greatest stamp of the client's writes (0: none), and a way to tell it of a write's result. */
  stamp(): number
  noteStamp(result: unknown): void
  /** Wake-ups of calls waiting out a backoff (a pushed master change runs them at once). */
  waiting: Set<() => void>
  /** The client is closed: whatever went wrong, the call fails with CLOSED. */
  closed(): boolean
}

/**
 * One request from the call to its answer: sent on a connection (the
 * connection calls resolve/reject/retry), retried with backoff when it
 * could not be, failed with TIMEOUT at its deadline. A class, not a set of
 * closures: with hundreds in flight, every object a request keeps alive
 * is copied by each young-generation collection.
 */
class Call implements PendingRequest {
  readonly id: number
  readonly mutates: boolean
  /** put, del or batch: carries the client's epoch. */
  private readonly writes: boolean
  private done = false
  private current: NodeConnection | null = null
  private lastError: TandemError | undefined
  private delay = MIN_BACKOFF_MS
  private readonly timer: NodeJS.Timeout

  constructor(
    private readonly host: CallHost,
    readonly message: Record<string, unknown>,
    private readonly route: Route,
    private readonly timeoutMs: number,
    private readonly settle: (result: unknown) => void,
    private readonly fail: (err: TandemError) => void,
  ) {
    this.id = message.id as number
    this.mutates = MUTATING.has(String(message.op))
    this.writes = WRITES.has(String(message.op))
    this.timer = setTimeout(onCallTimeout, timeoutMs, this)
  }

  resolve(result: unknown): void {
    if (this.writes) this.host.noteStamp(result)
    if (this.finish()) this.settle(result)
  }

  reject(err: TandemError): void {
    this.host.noteEpoch(err.details.epoch)
    // Refused because the node is not (or no longer) the master: nothing
    // was applied, so it is safe to find the master and send it there.
    if (this.host.reroutes(this.route, err)) {
      this.host.noteNotMaster(this.current?.address, err)
      return this.retryLater(err)
    }
    if (this.finish()) this.fail(err)
  }

  /** Sends the request again on whatever connection the client has next. */
  retry(): void {
    this.retryLater(this.lastError ?? new TandemError('UNAVAILABLE', 'connection lost'))
  }

  attempt(): void {
    if (this.done) return
    if (this.writes) {
      const epoch = this.host.epoch()
      if (epoch > 0) this.message.epoch = epoch
      const stamp = this.host.stamp()
      if (stamp > 0) this.message.after = stamp
    }
    // Fast path: the target is known and its connection open, so the
    // request joins this turn's frame with no promise hops.
    const ready = this.host.readyConnection(this.route)
    if (ready) {
      this.current = ready
      try {
        ready.send(this)
        return
      } catch {
        // fall through to the full path
      }
    }
    this.host.connect(this.route).then(
      (conn) => {
        if (this.done) return
        this.current = conn
        try {
          conn.send(this)
        } catch (err) {
          this.retryLater(err as TandemError)
        }
      },
      (err: TandemError) => {
        if (this.done) return
        if (this.host.closed()) {
          if (this.finish()) this.fail(new TandemError('CLOSED', 'client closed'))
          return
        }
        if (err.code === 'UNAUTHORIZED' || err.code === 'CLOSED') {
          if (this.finish()) this.fail(err)
          return
        }
        this.retryLater(err)
      },
    )
  }

  timedOut(): void {
    this.current?.forget(this.id)
    // Never sent anywhere: say why (no server, no master) rather than just "timeout".
    const err =
      this.current === null && this.lastError
        ? this.lastError
        : new TandemError(
            'TIMEOUT',
            `no reply to ${this.message.op} within ${this.timeoutMs} ms${this.mutates ? '; the write may or may not have been applied' : ''}`,
          )
    if (this.finish()) this.fail(err)
  }

  /** Marks the call settled; false when it already was. */
  private finish(): boolean {
    if (this.done) return false
    this.done = true
    this.host.finished()
    clearTimeout(this.timer)
    return true
  }

  private retryLater(err: TandemError): void {
    this.lastError = err
    this.current = null
    if (this.done) return
    // Retried after the backoff, or at once when a server pushes a new
    // master (a fail-over ended): the backoff must not add to the outage.
    const waiting = this.host.waiting
    const wake = () => {
      clearTimeout(backoffTimer)
      waiting.delete(wake)
      this.attempt()
    }
    const backoffTimer = setTimeout(wake, this.delay)
    waiting.add(wake)
    this.delay = Math.min(MAX_BACKOFF_MS, this.delay * 2) * (0.75 + Math.random() * 0.5)
  }
}

function onCallTimeout(call: Call): void {
  call.timedOut()
}

/** Errors that mean "not the master" (or a peer that refuses writes for its clock): nothing was applied, it may go elsewhere. */
const REROUTE = new Set(['READONLY', 'NOMASTER', 'FENCED', 'CLOCKSKEW'])
/** Ops that change state: if their reply is lost, their outcome is unknown. */
const MUTATING = new Set(['put', 'del', 'batch', 'promote', 'replicaof'])
/** Ops that write data (and carry the client's epoch). */
const WRITES = new Set(['put', 'del', 'batch'])
const MIN_BACKOFF_MS = 25
/** How long discovery waits for other nodes once a writable master has answered (one of a newer epoch may too). */
const DISCOVERY_GRACE_MS = 100

/** A w>0 write's own deadline is enforced by the server, which then says TIMEOUT with the seq; wait a little longer for that answer. */
function writeTimeout(options: WriteOptions, fallback: number): number {
  return options.w !== undefined && options.timeoutMs !== undefined
    ? options.timeoutMs + 1000
    : (options.timeoutMs ?? fallback)
}

/** The message with the write concern fields of `options` added. */
function withWriteFields(message: Record<string, unknown>, options: WriteOptions): Record<string, unknown> {
  if (options.context !== undefined) {
    if (typeof options.context !== 'string') throw new TypeError('context must be the string a read returned')
    message.context = options.context
  }
  if (options.w !== undefined) message.w = options.w
  if (options.w !== undefined && options.timeoutMs !== undefined) message.timeoutMs = options.timeoutMs
  return message
}

function withConditions(
  message: Record<string, unknown>,
  options: PutConditions,
  put: boolean,
): Record<string, unknown> {
  if (options.ifSeq !== undefined) {
    if (!Number.isSafeInteger(options.ifSeq) || options.ifSeq < 0) {
      throw new TypeError(`ifSeq must be a seq (an integer >= 0), got ${String(options.ifSeq)}`)
    }
    message.ifSeq = options.ifSeq
  }
  if (options.ifPresent === true) message.ifPresent = true
  if (put && options.ifAbsent === true) message.ifAbsent = true
  if (put && options.ttlMs !== undefined) {
    if (!Number.isSafeInteger(options.ttlMs) || options.ttlMs <= 0) {
      throw new TypeError(`ttlMs must be a positive integer of ms, got ${String(options.ttlMs)}`)
    }
    message.ttlMs = options.ttlMs
  }
  return message
}

function orUndefined<T>(value: unknown): T | undefined {
  return (value as T | null) ?? undefined
}

function checkKey(key: unknown, what = 'key'): asserts key is string {
  if (typeof key !== 'string') throw new TypeError(`${what} must be a string, got ${typeof key}`)
  if (hasLoneSurrogate(key)) throw notUnicode(what)
}

function checkValue(value: unknown): asserts value is Value {
  if (typeof value !== 'string' && !(value instanceof Uint8Array)) {
    throw new TypeError(`value must be a string or Uint8Array, got ${typeof value}`)
  }
  if (typeof value === 'string' && hasLoneSurrogate(value)) throw notUnicode('value')
}

/** A string with a lone surrogate has no UTF-8 form: sent, it would arrive as another string. */
function notUnicode(what: string): TandemError {
  return new TandemError('INVALID', `${what} holds a lone UTF-16 surrogate, which UTF-8 cannot carry; nothing was sent`)
}
