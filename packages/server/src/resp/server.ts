import { type AddressInfo, createServer, type Server, type Socket } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'
import type { ErrorCode } from '@tandem/protocol'
import type { Config } from '../config.js'
import type { TandemNode } from '../node.js'
import { listenError } from '../util/listen-check.js'
import type { Logger } from '../util/logger.js'
import type { LatencyHistogram, Metrics } from '../util/metrics.js'
import { joinHostPort, splitHostPort } from './address.js'
import type { RespHost, RespSession } from './commands.js'
import { RespConnection } from './connection.js'
import { GetBatch } from './get-batch.js'
import { KeyLocks } from './key-locks.js'
import { PubSub } from './pubsub.js'
import { ScanCursors } from './scan-cursors.js'
import { masterRespAddress, SWITCH_MASTER } from './sentinel.js'

interface RespServerOptions {
  config: Config
  node: TandemNode
  logger: Logger
  metrics: Metrics
  version: string
  /** `count` requests of `op` (one when not given). */
  countRequest(op: string, count?: number): void
  countError(code: string): void
  /** Request latency, shared with the WebSocket API. */
  latency?: LatencyHistogram
  tokenMatches(token: string): boolean
  /** Client connections the node has on its other front end (they share --max-connections). */
  otherConnections(): number
  /**
   * With the node's --tls-cert/--tls-key, RESP is served over TLS only
   * (redis-cli --tls), and the RESP ports this node dials are checked
   * against --tls-ca (or the system's CAs).
   */
  tls?: { cert: Buffer; key: Buffer; ca?: Buffer }
}

/**
 * The Redis-protocol front end (--resp-port): a TCP listener whose
 * connections (RespConnection) run Redis commands against the same node as
 * the WebSocket API, with its auth token, limits, error codes and metrics.
 * It also publishes the Sentinel event `+switch-master` when the group's
 * master changes.
 */
export class RespServer implements RespHost {
  readonly cursors = new ScanCursors()
  readonly pubsub = new PubSub()
  readonly keyLocks = new KeyLocks()
  readonly stats = { connections: 0, commands: 0 }
  readonly gets: GetBatch
  readonly node: TandemNode
  readonly config: Config
  readonly version: string
  private readonly server: Server
  private readonly connections = new Set<RespConnection>()
  private nextId = 1
  private peakClosed = 0
  /** Bytes of input (commands not yet run, or still arriving) all connections hold. */
  private inputBytes = 0
  private protocolErrors = 0
  private lastMaster: string | null = null
  private readonly switchTimer: NodeJS.Timeout
  private closing: Promise<void> | null = null

  constructor(private readonly options: RespServerOptions) {
    this.node = options.node
    this.gets = new GetBatch(options.node)
    this.config = options.config
    this.version = options.version
    const onSocket = (socket: Socket) => this.onSocket(socket)
    this.server = options.tls
      ? createTlsServer({ cert: options.tls.cert, key: options.tls.key, allowHalfOpen: true, noDelay: true }, onSocket)
      : createServer({ allowHalfOpen: true, noDelay: true }, onSocket)
    this.registerMetrics(options.metrics)
    this.switchTimer = setInterval(() => this.checkMaster(), options.config.tune.respSwitchCheckMs)
    this.switchTimer.unref()
  }

  /** Listens on --host and --resp-port; resolves with the address to advertise. */
  listen(): Promise<string> {
    return new Promise((resolve, reject) => {
      const port = this.config.respPort ?? 0
      const onError = (err: Error) => reject(listenError(err, '--resp-port', this.config.host, port))
      this.server.once('error', onError)
      this.server.listen(port, this.config.host, () => {
        this.server.off('error', onError)
        const host = this.config.advertise ? splitHostPort(this.config.advertise).host : this.config.host
        resolve(joinHostPort(host, this.respPort))
      })
    })
  }

  get peerTls(): { ca?: Buffer } | undefined {
    return this.options.tls && { ca: this.options.tls.ca }
  }

  get respPort(): number {
    return (this.server.address() as AddressInfo | null)?.port ?? 0
  }

  get connectionCount(): number {
    return this.connections.size
  }

  clientCount(): number {
    return this.connections.size + this.options.otherConnections()
  }

  clients(): RespSession[] {
    return [...this.connections]
  }

  tokenMatches(token: string): boolean {
    return this.options.tokenMatches(token)
  }

  holdInput(delta: number): number {
    this.inputBytes += delta
    return this.inputBytes
  }

  private onSocket(socket: Socket): void {
    if (this.closing) {
      socket.destroy()
      return
    }
    if (this.clientCount() >= this.config.maxConnections) {
      this.options.countError('BUSY')
      socket.end('-ERR max number of clients reached\r\n')
      socket.on('error', () => {})
      setTimeout(() => socket.destroy(), this.config.tune.clientCloseGraceMs).unref()
      return
    }
    this.stats.connections++
    const connection = new RespConnection(socket, this.nextId++, this, {
      onCommand: (op, count) => this.options.countRequest(op, count),
      latency: this.options.latency,
      onError: (code: ErrorCode) => this.options.countError(code),
      onProtocolError: () => this.protocolErrors++,
      logger: this.options.logger,
      onClosed: (c) => {
        this.connections.delete(c)
        this.peakClosed = Math.max(this.peakClosed, c.peakBufferedBytes)
      },
    })
    this.connections.add(connection)
  }

  /** Called when the node learns of a new master, and on a timer: Sentinel clients are told of a change. */
  checkMaster(): void {
    if (this.pubsub.subscriberCount === 0 && this.lastMaster !== null) return
    const master = masterRespAddress(this.node)
    if (master === null || master === this.lastMaster) return
    const previous = this.lastMaster
    this.lastMaster = master
    if (previous === null) return
    const from = splitHostPort(previous)
    const to = splitHostPort(master)
    this.pubsub.publish(SWITCH_MASTER, `${this.config.groupName} ${from.host} ${from.port} ${to.host} ${to.port}`)
  }

  /** Parser bytes held by open connections, and the most one connection has held. */
  bufferedBytes(): { now: number; peak: number } {
    let now = 0
    let peak = this.peakClosed
    for (const c of this.connections) {
      now += c.bufferedBytes
      peak = Math.max(peak, c.peakBufferedBytes)
    }
    return { now, peak }
  }

  private registerMetrics(m: Metrics): void {
    m.gauge('tandem_resp_connections', 'Open Redis-protocol client connections.', () => this.connections.size)
    m.gauge(
      'tandem_resp_buffered_bytes',
      'Request bytes read from Redis-protocol clients and not yet parsed into commands.',
      () => this.bufferedBytes().now,
    )
    m.gauge(
      'tandem_resp_buffered_bytes_peak',
      'The most request bytes one Redis-protocol connection has held unparsed.',
      () => this.bufferedBytes().peak,
    )
    m.counterOf('tandem_resp_commands_total', 'Redis-protocol commands received.', () => this.stats.commands)
    m.counterOf(
      'tandem_resp_batched_gets_total',
      'GETs read in a batch with others (GETs of one event-loop turn, all connections: one LevelDB read).',
      () => this.gets.batched,
    )
    m.counterOf(
      'tandem_resp_protocol_errors_total',
      'Redis-protocol connections closed for a malformed request stream.',
      () => this.protocolErrors,
    )
  }

  /** Stops accepting, answers what was read, then closes every connection. Safe to call twice. */
  close(drainTimeoutMs = 10_000): Promise<void> {
    if (!this.closing) this.closing = this.doClose(drainTimeoutMs)
    return this.closing
  }

  private async doClose(drainTimeoutMs: number): Promise<void> {
    clearInterval(this.switchTimer)
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    for (const c of this.connections) c.stopReading()
    const drained = Promise.all([...this.connections].map((c) => c.drained()))
    await Promise.race([drained, new Promise((resolve) => setTimeout(resolve, drainTimeoutMs).unref())])
    for (const c of this.connections) c.close()
    await closed
  }
}
