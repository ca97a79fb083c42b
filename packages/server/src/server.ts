import { readFileSync } from 'node:fs'
import { createServer, type Server as HttpServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer as createTlsServer } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { TLSSocket } from 'node:tls'
import { formatHostPort, msgpackKeepsBom, TandemError } from '@tandem/protocol'
import { WebSocketServer } from 'ws'
import { bearerToken, tokenMatches } from './api/auth.js'
import { acceptUpgrade, ClientSocket } from './api/client-socket.js'
import { CLOSE, ClientConnection } from './api/connection.js'
import { FrameGuard } from './api/frame-guard.js'
import { SnapshotSender } from './api/snapshot-sender.js'
import { TurnFlush } from './api/turn-flush.js'
import type { Config } from './config.js'
import { rejectUpgrade, sendJson } from './http/answer.js'
import { WebConsole } from './http/console.js'
import { answerLater, guardRequest, guardUpgrade } from './http/http-guard.js'
import { type Readiness, readiness } from './http/readiness.js'
import { groupAddresses } from './http/report-fetch.js'
import { SERVER_VERSION } from './http/self-report.js'
import { TandemNode } from './node.js'
import type { PeerTls } from './replication/dial.js'
import { RespServer } from './resp/server.js'
import { onWriterFault, writerFaults } from './storage/entry-writer.js'
import { restoreSnapshot } from './storage/restore.js'
import { Store } from './storage/store.js'
import { WRITE_STAGE_BUCKETS } from './storage/write-stages.js'
import { type Clock, fileClock, systemClock } from './util/clock.js'
import { handlerErrors } from './util/handler-guard.js'
import { listenError, tryListen } from './util/listen-check.js'
import { type Logger, silentLogger } from './util/logger.js'
import { type LatencyHistogram, Metrics } from './util/metrics.js'

type ServerStatus = 'opening' | 'open' | 'closing' | 'closed'

/**
 * Test-only: a request or WebSocket handshake for exactly this path throws
 * inside the HTTP listeners, so that a test can check their guard
 * (http-guard.ts) on a real node: no real input is known to make them throw.
 */
const TEST_THROW_PATH = process.env.TANDEM_TEST_HTTP_THROW_PATH || undefined

/**
 * Request latency buckets, in seconds: from well under a millisecond (a
 * read served from memory) to the default request timeout (10 s).
 */
const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const

/**
 * TandemServer: one node's process-level shell. It owns the Store, the
 * TandemNode and one HTTP server on --port that upgrades WebSocket
 * connections (clients at /, replication peers later at /replication) and
 * answers /health, /status, /metrics and the web console under /ui.
 */
export class TandemServer {
  status: ServerStatus = 'opening'
  readonly metrics = new Metrics()
  private readonly http: HttpServer
  private readonly wss: WebSocketServer
  /** Client connections, oldest first. */
  private readonly connections = new Set<ClientConnection>()
  /** Client replies wait here for the end of the loop's turn (tunable clientFlushPerTurn). */
  private readonly turnFlush: TurnFlush | undefined
  private readonly frames: FrameGuard
  /** The most reply bytes any closed connection held (open ones keep their own). */
  private peakReplyBytesClosed = 0
  private readonly keepaliveTimer: NodeJS.Timeout
  private closing: Promise<void> | null = null
  private countRequest!: (op: string, count?: number) => void
  private countError!: (code: string) => void
  private latency!: LatencyHistogram
  private readonly console: WebConsole
  private readonly snapshots: SnapshotSender
  /** The Redis-protocol front end, with --resp-port. */
  readonly resp: RespServer | null = null
  /** Stops the test clock's file watch (--test-clock-file). */
  private releaseClock: () => void = () => {}

  private constructor(
    readonly config: Config,
    readonly node: TandemNode,
    private readonly logger: Logger,
    tls: PeerTls | undefined,
  ) {
    this.turnFlush = config.tune.clientFlushPerTurn === 1 ? new TurnFlush() : undefined
    const onRequest = guardRequest(logger, (req, res) => this.onHttpRequest(req, res))
    // With --tls-ca, peers are asked for a certificate (checked on peer links
    // in onUpgrade); clients may connect without one.
    this.http = tls
      ? createTlsServer(
          { cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: tls.ca !== undefined, rejectUnauthorized: false },
          onRequest,
        )
      : createServer(onRequest)
    this.http.on(
      'upgrade',
      guardUpgrade(logger, (req, socket, head) => this.onUpgrade(req, socket, head)),
    )
    this.wss = new WebSocketServer({ noServer: true, maxPayload: config.maxFrameBytes, perMessageDeflate: false })
    this.snapshots = new SnapshotSender(node.store, logger, config.tune)
    this.console = new WebConsole({
      dataDir: config.dataDir,
      authToken: config.authToken,
      tls,
      groupAddresses: () => groupAddresses(node),
      logger,
      now: () => node.clock.wall(),
      tuning: config.tune,
      disk: node.disk,
      status: (diskMaxAgeMs) => node.status({ diskMaxAgeMs }),
      requests: () => this.metrics.counterValues('tandem_requests_total'),
      onSelfServed: this.metrics.counter('tandem_console_reports_served_total', 'Reports served to web consoles.'),
      onEncoded: this.metrics.counter(
        'tandem_console_views_encoded_total',
        'Views and snapshots encoded for web console streams (one of each a tick at most, whatever the number of streams).',
      ),
    })
    this.frames = new FrameGuard({
      frameTimeoutMs: config.frameTimeout,
      maxPartialBytes: config.maxPartialFrameBytes,
      now: () => node.clock.now(),
      closeGraceMs: config.tune.frameCloseGraceMs,
    })
    node.clientStatus = () => this.clientStatus()
    onWriterFault((err) =>
      logger.error('the log entry writer threw; it starts over, and msgpackr wrote that entry', {
        err,
        stack: (err as Error)?.stack?.split('\n').slice(0, 8).join('\n'),
      }),
    )
    this.registerMetrics()
    if (config.respPort !== undefined) {
      this.resp = new RespServer({
        config,
        node,
        logger,
        metrics: this.metrics,
        version: SERVER_VERSION,
        tls: tls && { cert: tls.cert, key: tls.key, ca: tls.ca },
        countRequest: (op, count) => this.countRequest(op, count),
        countError: (code) => this.countError(code),
        latency: this.latency,
        tokenMatches: (token) => tokenMatches(config.authToken, token),
        otherConnections: () => this.connections.size,
      })
    }
    node.topology.onNewMaster = (master, epoch) => {
      for (const c of this.connections) c.push({ push: 'topology', master, epoch })
      this.resp?.checkMaster()
    }
    this.keepaliveTimer = setInterval(() => {
      const now = node.clock.now()
      for (const c of this.connections) c.keepalive(now)
    }, config.tune.clientKeepaliveMs / 4)
    this.keepaliveTimer.unref()
  }

  static async start(config: Config, logger: Logger = silentLogger): Promise<TandemServer> {
    const tls = loadTls(config)
    // The one clock of this process's protocol logic, passed down from here (see util/clock.ts).
    const testClock = config.testClockFile === undefined ? null : fileClock(config.testClockFile)
    const clock: Clock = testClock ?? systemClock
    if (testClock) {
      logger.warn('--test-clock-file is set: this node moves its wall clock as that file says (for tests only)', {
        file: config.testClockFile,
      })
    }
    if (!msgpackKeepsBom) {
      // Would store keys and values that start with U+FEFF one character short.
      throw new TandemError(
        'INTERNAL',
        'msgpackr was loaded before @tandem/protocol and its native addon is missing: strings that start with U+FEFF would lose it; import @tandem/server first',
      )
    }
    // Before the data dir is opened: a port in use leaves it untouched (listen-check.ts).
    await tryListen('--port', config.host, config.port)
    if (config.respPort !== undefined) await tryListen('--resp-port', config.host, config.respPort)
    const store = await Store.open({
      dataDir: config.dataDir,
      nodeId: config.nodeId,
      sync: config.sync,
      logRetention: config.logRetention,
      trimIntervalMs: config.logTrimInterval,
      maxGroup: config.maxGroupCommit,
      maxQueued: config.maxQueuedWrites,
      periodicSyncMs: config.tune.periodicSyncMs,
      noSpaceRetryMs: config.tune.noSpaceRetryMs,
      noSpaceHeadroomBytes: config.tune.noSpaceHeadroomBytes,
      readBatchKeys: config.tune.readBatchKeys,
      snapshotPageRecords: config.tune.snapshotPageRecords,
      presenceKeys: config.tune.presenceKeys,
      lwwHeadKeys: config.tune.lwwHeadKeys,
      blockCacheBytes: config.tune.blockCacheBytes,
      readCacheKeys: config.tune.readCacheKeys,
      readCacheBytes: config.tune.readCacheBytes,
      readCacheWrites: config.tune.readCacheWrites,
      writeBufferBytes: config.tune.writeBufferBytes,
      tableCompression: config.tune.tableCompression,
      pipelinedCommit: config.tune.pipelinedCommit,
      handOverFirst: config.tune.handOverFirst,
      multiPipelinedCommit: config.tune.multiPipelinedCommit,
      verifyAtStart: config.verifyAtStart,
      // Only a node that starts as a replica has a healthy peer to copy from.
      onDamage: startsAsReplica(config) ? 'resync' : 'refuse',
      onNoSpace: (state) =>
        state
          ? logger.error('the disk is full: writes fail with NOSPACE until space is freed', {
              dataDir: config.dataDir,
              error: state.message,
            })
          : logger.warn('space was freed: writes resume', { dataDir: config.dataDir }),
      onSyncFailure: (state) =>
        logger.error('an fsync of the data dir failed: writes fail with UNAVAILABLE until the node is restarted', {
          dataDir: config.dataDir,
          error: state.message,
        }),
      onListenerThrew: (err) =>
        logger.error('a commit listener threw; the commit stands', {
          err,
          stack: (err as Error)?.stack?.split('\n').slice(0, 8).join('\n'),
        }),
      mode: config.mode,
      conflict: config.conflict,
      maxSiblings: config.maxSiblings,
      clock,
    })
    const nodeLogger = logger.child({ node: store.nodeId })
    if (config.restore !== undefined) {
      try {
        const restored = await restoreSnapshot(store, config.restore)
        if (restored.skipped) nodeLogger.info('data dir already restored from this snapshot', { file: config.restore })
        else
          nodeLogger.info('restored from snapshot', { file: config.restore, seq: restored.seq, keys: restored.records })
      } catch (err) {
        await store.close()
        throw err
      }
    }
    const node = new TandemNode(config, store, nodeLogger, tls)
    const server = new TandemServer(config, node, nodeLogger, tls)
    if (testClock) server.releaseClock = () => testClock.close()
    try {
      await server.listen()
      // Before init: fail-over members and upstreams are told this address in their handshakes.
      if (server.resp) node.respAddress = await server.resp.listen()
      await node.init()
    } catch (err) {
      clearInterval(server.keepaliveTimer)
      server.frames.close()
      server.http.close()
      await server.resp?.close(0)
      await node.close()
      await store.close()
      server.releaseClock()
      throw err
    }
    server.status = 'open'
    if (beyondLoopback(config.host) && !tls && config.authToken === undefined) {
      nodeLogger.warn(
        `listening on ${config.host}, beyond loopback, with neither TLS (--tls-cert/--tls-key) nor --auth-token: anyone who can reach this port can read and write every key, and replicate or fail over with this node`,
        { host: config.host },
      )
    }
    nodeLogger.info('listening', {
      address: node.address,
      pid: process.pid,
      tls: tls !== undefined,
      respAddress: node.respAddress,
      dataDir: config.dataDir,
      sync: config.sync,
      role: node.role,
      upstream: node.upstream,
      seq: store.lastSeq,
      epoch: store.epoch,
    })
    return server
  }

  private listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(listenError(err, '--port', this.config.host, this.config.port))
      this.http.once('error', onError)
      this.http.listen(this.config.port, this.config.host, () => {
        this.http.off('error', onError)
        const { port } = this.http.address() as AddressInfo
        this.node.address = this.config.advertise ?? formatHostPort(this.config.host, port)
        resolve()
      })
    })
  }

  /** The port actually bound (useful with --port 0). */
  get port(): number {
    return (this.http.address() as AddressInfo).port
  }

  // ---- WebSocket ---------------------------------------------------------

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (TEST_THROW_PATH !== undefined && (req.url ?? '/').split('?')[0] === TEST_THROW_PATH) {
      throw new Error('test-only throw in the upgrade listener (TANDEM_TEST_HTTP_THROW_PATH)')
    }
    if (this.status !== 'open') return rejectUpgrade(socket, 503, 'UNAVAILABLE', 'shutting down')
    // An HTTP server's upgrade socket is a net.Socket (a TLSSocket under
    // https); ws runs over it, and the frame guard and keepalive read its byte counts.
    const tcp = socket as Socket
    // Links between nodes carry no token: each end proves it holds it by a
    // challenge-response inside the link (replication/peer-auth.ts). With
    // --tls-ca they must also come with a certificate that CA signed.
    const url = req.url ?? '/'
    if (
      (url.startsWith('/cluster') || url.startsWith('/replication') || url.startsWith('/peer')) &&
      this.config.tlsCa !== undefined
    ) {
      if (!(socket as TLSSocket).authorized) {
        return rejectUpgrade(
          socket,
          401,
          'UNAUTHORIZED',
          "peer links need a client certificate signed by this node's --tls-ca",
        )
      }
    }
    if ((req.url ?? '/').startsWith('/cluster')) {
      const failover = this.node.failover
      if (!failover) return rejectUpgrade(socket, 404, 'NOTFOUND', 'this node is in no fail-over group')
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        this.frames.watch(ws, tcp)
        failover.cluster.accept(ws)
      })
      return
    }
    if ((req.url ?? '/').startsWith('/peer')) {
      const mesh = this.node.mesh
      if (!mesh) return rejectUpgrade(socket, 404, 'NOTFOUND', 'this node is not multi-master (--mode multi)')
      this.wss.handleUpgrade(req, socket, head, (ws) => mesh.accept(ws))
      return
    }
    if ((req.url ?? '/').startsWith('/replication')) {
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        this.frames.watch(ws, tcp)
        this.node.upstreamSide.accept(ws)
      })
      return
    }
    // Client slots only: peer links are not held up by clients filling them.
    const preAuthenticated = tokenMatches(this.config.authToken, bearerToken(req))
    if (
      this.connections.size + this.node.watchers.count >= this.config.maxConnections &&
      !(preAuthenticated && this.evictUnauthenticated())
    ) {
      this.countError('BUSY')
      return rejectUpgrade(socket, 503, 'BUSY', `connection limit (${this.config.maxConnections}) reached`)
    }
    if (url.startsWith('/snapshot')) {
      if (!preAuthenticated)
        return rejectUpgrade(socket, 401, 'UNAUTHORIZED', 'snapshots need Authorization: Bearer TOKEN')
      const why = this.node.dataUnavailable()
      if (why !== null) return rejectUpgrade(socket, 503, 'UNAVAILABLE', why)
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        this.frames.watch(ws, tcp)
        this.snapshots.accept(ws)
      })
      return
    }
    if (url.startsWith('/watch')) {
      // A watch socket has no auth step of its own: the token comes up front.
      if (!preAuthenticated)
        return rejectUpgrade(socket, 401, 'UNAUTHORIZED', 'watches need Authorization: Bearer TOKEN')
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        this.frames.watch(ws, tcp)
        this.node.watchers.accept(ws)
      })
      return
    }
    // The client API's WebSocket is tandem's own (api/client-socket.ts): the handshake too.
    socket.on('error', () => socket.destroy())
    if (!tcp.readable || !tcp.writable) return void socket.destroy()
    const refused = acceptUpgrade(req, tcp)
    if (refused !== null) return rejectUpgrade(socket, refused.status, 'INVALID', refused.message, refused.headers)
    const ws = new ClientSocket(tcp, head, this.config.maxFrameBytes, this.config.tune.clientCloseGraceMs, this.logger)
    const connection = new ClientConnection(
      ws,
      tcp,
      this.node,
      this.config,
      this.logger,
      {
        onRequest: (op) => this.countRequest(op),
        onError: (code) => this.countError(code),
        latency: this.latency,
        turnFlush: this.turnFlush,
      },
      preAuthenticated,
    )
    this.frames.watch(ws, tcp)
    this.connections.add(connection)
    ws.on('close', () => {
      this.connections.delete(connection)
      this.peakReplyBytesClosed = Math.max(this.peakReplyBytesClosed, connection.peakReplyBytes)
    })
  }

  /**
   * Frees a slot for a client that has shown the token by closing the
   * oldest connection that has not (with --auth-token, sockets that never
   * authenticate must not lock out those that do). False when there is none.
   */
  private evictUnauthenticated(): boolean {
    for (const c of this.connections) {
      if (c.isAuthenticated) continue
      this.connections.delete(c)
      c.close(CLOSE.UNAUTHORIZED, 'connection slot taken by an authenticated client')
      return true
    }
    return false
  }

  /** Client connections and what they hold (status `clients`, and metrics). */
  private clientStatus() {
    let replyBytes = 0
    let peakReplyBytes = this.peakReplyBytesClosed
    let unauthenticated = 0
    for (const c of this.connections) {
      replyBytes += c.replyBytes
      peakReplyBytes = Math.max(peakReplyBytes, c.peakReplyBytes)
      if (!c.isAuthenticated) unauthenticated++
    }
    return {
      connections: this.connections.size,
      unauthenticated,
      replyBytes,
      peakReplyBytes,
      partialFrameBytes: this.frames.partialBytes,
      peakPartialFrameBytes: this.frames.peakPartialBytes,
      closedSlowFrames: this.frames.closed.slow,
      closedOverPartialBudget: this.frames.closed.budget,
    }
  }

  // ---- HTTP --------------------------------------------------------------

  private onHttpRequest(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]
    if (path === TEST_THROW_PATH)
      throw new Error('test-only throw in the request listener (TANDEM_TEST_HTTP_THROW_PATH)')
    if (path === '/ui' || path.startsWith('/ui/')) return this.console.handle(req, res, path)
    if (path === '/health') {
      if (this.status !== 'open') return sendJson(res, 503, { status: this.status })
      const noSpace = this.node.store.noSpace
      if (noSpace) {
        const reason = `NOSPACE: writes fail since ${new Date(noSpace.since).toISOString()}: ${noSpace.message}`
        return sendJson(res, 503, { status: 'degraded', reason })
      }
      const syncFailure = this.node.store.syncFailure
      if (syncFailure) {
        const reason = `an fsync failed at ${new Date(syncFailure.since).toISOString()}: writes fail until restart: ${syncFailure.message}`
        return sendJson(res, 503, { status: 'degraded', reason })
      }
      const damaged = this.node.store.damagedKeys
      if (damaged.size > 0) {
        const [key] = damaged.keys()
        const reason = `CORRUPT: reads found ${damaged.size} damaged record(s), key ${JSON.stringify(key.slice(0, 200))} first; their reads fail until they are written again`
        return sendJson(res, 503, { status: 'degraded', reason })
      }
      return sendJson(res, 200, { status: 'ok' })
    }
    if (path === '/ready') {
      const ready = this.readiness()
      return sendJson(res, ready.ready ? 200 : 503, ready)
    }
    if (path !== '/status' && path !== '/metrics' && path !== '/convergence')
      return sendJson(res, 404, { error: { code: 'NOTFOUND', message: `no endpoint ${path}` } })
    if (!tokenMatches(this.config.authToken, bearerToken(req))) {
      return sendJson(res, 401, { error: { code: 'UNAUTHORIZED', message: 'send Authorization: Bearer TOKEN' } })
    }
    if (path === '/status') return sendJson(res, 200, this.node.status())
    if (path === '/convergence') return sendJson(res, 200, this.node.convergence())
    answerLater(this.logger, res, async () => {
      const text = await this.metrics.render()
      res.writeHead(200, { 'content-type': this.metrics.contentType })
      res.end(text)
    })
  }

  private registerMetrics(): void {
    const m = this.metrics
    m.collectDefaults()
    m.gauge(
      'tandem_build_info',
      'Always 1; the labels name the version of tandem and of Node.js.',
      () => [{ labels: { version: SERVER_VERSION, node: process.version }, value: 1 }],
      ['version', 'node'],
    )
    this.countRequest = m.counter('tandem_requests_total', 'Client requests received, by op.', 'op')
    this.countError = m.counter('tandem_errors_total', 'Error replies sent, by code.', 'code')
    this.latency = m.histogram(
      'tandem_request_duration_seconds',
      'Seconds from reading a request off the socket to sending its reply, by op.',
      'op',
      LATENCY_BUCKETS,
    )
    const store = this.node.store
    const node = this.node
    store.stages = m.histogram(
      'tandem_write_stage_seconds',
      'Seconds writes spend in each stage between arrival and durability (see the README: queue, read, build, write, remote_queue, remote_commit, remote_wait, peer_arrive, peer_inbox, peer_lag, peer_send, watch_send).',
      'stage',
      WRITE_STAGE_BUCKETS,
    )
    m.gauge('tandem_seq', 'Seq of the last committed log entry.', () => store.lastSeq)
    m.gauge('tandem_keys', 'Keys this node holds, kept exactly (tombstones are not keys).', () => store.keyCount)
    m.gauge('tandem_disk_bytes', "Bytes of the data dir's files (walked every 2 s at most).", () => {
      const bytes = node.disk.bytes()
      return bytes === null ? [] : bytes
    })
    m.gauge(
      'tandem_log_oldest_seq',
      'Seq of the oldest entry the log holds (newest + 1 when it holds none).',
      () => node.logRange().oldestSeq,
    )
    m.gauge('tandem_log_newest_seq', 'Seq of the newest entry the log holds.', () => node.logRange().newestSeq)
    m.gauge(
      'tandem_log_entries',
      'Entries the log holds, for partial resync and watches.',
      () => node.logRange().entries,
    )
    m.gauge('tandem_epoch', 'Current fail-over epoch.', () => store.epoch)
    m.gauge('tandem_is_master', '1 when this node takes writes.', () => (node.role === 'master' ? 1 : 0))
    m.gauge('tandem_ready', '1 when /ready answers 200 (the node can serve its role).', () =>
      this.readiness().ready ? 1 : 0,
    )
    m.gauge('tandem_connections', 'Open client connections.', () => this.connections.size)
    m.gauge(
      'tandem_reply_bytes',
      'Reply bytes client connections hold: unsent, waiting to be framed, and reserved for running reads.',
      () => this.clientStatus().replyBytes,
    )
    m.gauge(
      'tandem_reply_bytes_peak',
      'The most reply bytes one client connection has held.',
      () => this.clientStatus().peakReplyBytes,
    )
    m.gauge(
      'tandem_partial_frame_bytes',
      'Bytes of WebSocket frames still arriving, all connections.',
      () => this.frames.partialBytes,
    )
    m.gauge(
      'tandem_partial_frame_bytes_peak',
      'The most bytes of frames still arriving at once.',
      () => this.frames.peakPartialBytes,
    )
    m.gauge('tandem_watches', 'Open watches (change feeds).', () => node.watchers.count)
    m.gauge('tandem_snapshots_running', 'Snapshots (backups) being streamed.', () => this.snapshots.count)
    m.counterOf(
      'tandem_commit_groups_total',
      'Group commits (LevelDB batches) written.',
      () => store.commitStats.groups,
    )
    m.counterOf(
      'tandem_commit_writes_total',
      'Writes committed through the group committer.',
      () => store.commitStats.writes,
    )
    m.counterOf(
      'tandem_damaged_reads_total',
      'Reads (and writes that read) that found a damaged record: its checksum did not match; each failed with CORRUPT.',
      () => store.damagedReads,
    )
    m.gauge(
      'tandem_damaged_keys',
      'Keys whose record a read found damaged and no write has replaced since.',
      () => store.damagedKeys.size,
    )
    m.counterOf(
      'tandem_damaged_skipped_writes_total',
      'Replicated writes (a peer entry’s op, a joined snapshot’s record) left out because their key’s record here is damaged; the key is logged and in tandem_damaged_keys.',
      () => store.damagedSkips,
    )
    m.gauge('tandem_commit_queued', 'Writes waiting for the group committer.', () => store.queuedWrites)
    m.counterOf(
      'tandem_slow_sync_reads_total',
      "Reads made synchronously from LevelDB (gets, a group commit's reads of its keys) that took over 0.5 ms (charged to the slow-read budget).",
      () => store.syncReadStats.slowReads,
    )
    m.counterOf(
      'tandem_sync_read_fallbacks_total',
      'Seconds in which slow synchronous reads spent their budget, so that reads went through the thread pool for the rest of that second.',
      () => store.syncReadStats.fallbacks,
    )
    m.counterOf(
      'tandem_read_cache_hits_total',
      'Local reads (gets, RESP GETs) answered from the read cache, without a LevelDB lookup.',
      () => store.readCacheStats.hits,
    )
    m.gauge('tandem_read_cache_keys', 'Keys whose values the read cache holds.', () => store.readCacheStats.keys)
    m.gauge(
      'tandem_read_cache_bytes',
      'Bytes the read cache counts itself at (readCacheBytes).',
      () => store.readCacheStats.bytes,
    )
    m.gauge('tandem_replicas', 'Downstreams connected to this node.', () => node.upstreamSide.count)
    const perReplica = ['replica', 'addr']
    m.gauge(
      'tandem_replica_lag_entries',
      'Entries each downstream still lacks.',
      () =>
        node.upstreamSide.replicas().map((r) => ({ labels: { replica: r.nodeId, addr: r.addr }, value: r.lagEntries })),
      perReplica,
    )
    m.gauge(
      'tandem_replica_lag_ms',
      'How long each downstream has been behind, in ms.',
      () => node.upstreamSide.replicas().map((r) => ({ labels: { replica: r.nodeId, addr: r.addr }, value: r.lagMs })),
      perReplica,
    )
    m.gauge(
      'tandem_replica_acked_seq',
      'The last seq each downstream acknowledged.',
      () =>
        node.upstreamSide.replicas().map((r) => ({ labels: { replica: r.nodeId, addr: r.addr }, value: r.ackedSeq })),
      perReplica,
    )
    m.gauge(
      'tandem_upstream_lag_entries',
      'Entries this replica lacks behind its upstream.',
      () => node.downstream?.lagEntries ?? 0,
    )
    m.gauge(
      'tandem_upstream_lag_ms',
      'How long this replica has been behind its upstream, in ms.',
      () => node.downstream?.lagMs ?? 0,
    )
    m.gauge('tandem_upstream_link_up', '1 while this replica streams from its upstream.', () =>
      node.downstream?.state === 'streaming' ? 1 : 0,
    )
    m.counterOf(
      'tandem_handler_errors_total',
      'Connections closed because a handler of what their remote end sent threw (a bug, or input no check foresaw), by link: client, resp, replication, peer, cluster, watch.',
      handlerErrors,
      ['link'],
    )
    m.counterOf(
      'tandem_entry_writer_faults_total',
      'Log entries the hand-written entry writer threw on (a bug: logged with its stack); msgpackr wrote each, and the writer started over.',
      writerFaults,
    )
    m.counterOf('tandem_full_syncs_total', 'Full syncs this node took as a downstream.', () => node.counters.fullSyncs)
    m.counterOf(
      'tandem_partial_syncs_total',
      'Partial resyncs this node took as a downstream.',
      () => node.counters.partialSyncs,
    )
    m.counterOf('tandem_served_full_syncs_total', 'Full syncs this node served.', () => node.served.full)
    m.counterOf('tandem_served_partial_syncs_total', 'Partial resyncs this node served.', () => node.served.partial)
    m.counterOf(
      'tandem_rollbacks_total',
      'Divergent tails rolled back to a rollback file.',
      () => node.counters.rollbacks,
    )
    m.counterOf(
      'tandem_rolled_back_entries_total',
      'Entries written to rollback files.',
      () => node.counters.rolledBackEntries,
    )
    m.gauge('tandem_lease_held', '1 while this master holds its fail-over lease.', () =>
      node.failover?.status().lease.held ? 1 : 0,
    )
    m.counterOf(
      'tandem_elections_started_total',
      'Elections this node stood in.',
      () => node.failover?.stats.electionsStarted ?? 0,
    )
    m.counterOf('tandem_elections_won_total', 'Elections this node won.', () => node.failover?.stats.electionsWon ?? 0)
    m.counterOf('tandem_votes_granted_total', 'Votes this node granted.', () => node.failover?.stats.votesGranted ?? 0)
    m.gauge('tandem_console_streams', 'Web console event streams open.', () => this.console.streamCount)
    // One status per scrape for every tandem_mm_* figure that reads it.
    const mesh = m.perScrape(() => node.mesh?.status())
    m.gauge(
      'tandem_mm_peer_lag_entries',
      'Multi-master: entries each peer holds that this node lacks.',
      () =>
        ((mesh()?.peers ?? []) as { addr: string; lagEntries: number }[]).map((p) => ({
          labels: { peer: p.addr },
          value: p.lagEntries,
        })),
      ['peer'],
    )
    m.gauge(
      'tandem_mm_peer_lag_ms',
      'Multi-master: how long this node has been behind each peer, in ms.',
      () =>
        ((mesh()?.peers ?? []) as { addr: string; lagMs: number }[]).map((p) => ({
          labels: { peer: p.addr },
          value: p.lagMs,
        })),
      ['peer'],
    )
    m.gauge(
      'tandem_mm_tombstones',
      'Deleted keys held as tombstones until causally stable.',
      () => store.keys?.counts.tombstones ?? 0,
    )
    m.gauge(
      'tandem_mm_sibling_keys',
      'Keys holding concurrent values (vclock).',
      () => store.keys?.counts.siblingKeys ?? 0,
    )
    m.counterOf(
      'tandem_mm_siblings_dropped_total',
      'Values dropped past --max-siblings (see the conflicts file).',
      () => Number((mesh()?.siblings as { dropped?: number } | undefined)?.dropped ?? 0),
    )
    m.counterOf(
      'tandem_mm_lww_lost_total',
      'Writes that arrived older than what their key held (last-writer-wins).',
      () => Number(mesh()?.lwwLost ?? 0),
    )
    m.counterOf(
      'tandem_mm_received_entries_total',
      'Multi-master: entries received from peers (duplicates included).',
      () => Number(mesh()?.received ?? 0),
    )
    m.counterOf(
      'tandem_mm_duplicate_entries_total',
      'Multi-master: entries received from peers that this node already held (skipped).',
      () => Number(mesh()?.duplicates ?? 0),
    )
    m.gauge(
      'tandem_mm_forgotten_peers',
      'Peer origins this node was told to forget (tandem forget): not awaited, their links refused.',
      () => node.mesh?.forgotten.list().length ?? 0,
    )
    m.gauge('tandem_mm_clock_fenced', '1 while this node refuses writes for its clock.', () =>
      node.mesh?.clockFence() ? 1 : 0,
    )
  }

  /** Whether the node can serve its role now (/ready). */
  readiness(): Readiness {
    return readiness(this.status, this.node, this.config)
  }

  // ---- lifecycle ---------------------------------------------------------

  /** Stops accepting, answers what is in flight, flushes and closes the store. Safe to call twice. */
  close(): Promise<void> {
    if (!this.closing) this.closing = this.doClose()
    return this.closing
  }

  private async doClose(): Promise<void> {
    this.status = 'closing'
    this.logger.info('shutting down', { connections: this.connections.size })
    const httpClosed = new Promise<void>((resolve) => this.http.close(() => resolve()))
    for (const c of this.connections) c.stopReading()
    this.console.close()
    const respClosed = this.resp?.close(this.config.tune.drainTimeoutMs)
    const drained = Promise.all([...this.connections].map((c) => c.drained()))
    await Promise.race([
      drained,
      new Promise((resolve) => setTimeout(resolve, this.config.tune.drainTimeoutMs).unref()),
    ])
    for (const c of this.connections) c.close(CLOSE.GOING_AWAY, 'server shutting down')
    clearInterval(this.keepaliveTimer)
    this.frames.close()
    this.http.closeAllConnections()
    await respClosed
    await this.node.close()
    await httpClosed
    await this.node.store.close()
    this.releaseClock()
    this.status = 'closed'
    this.logger.info('closed')
  }
}

/** Reads the --tls-* files; undefined without TLS. A file that cannot be read stops the start. */
function loadTls(config: Config): PeerTls | undefined {
  if (config.tlsCert === undefined || config.tlsKey === undefined) return undefined
  const read = (flag: string, path: string) => {
    try {
      return readFileSync(path)
    } catch (err) {
      throw new TandemError('INVALID', `${flag} ${path}: ${(err as Error).message}`)
    }
  }
  return {
    cert: read('--tls-cert', config.tlsCert),
    key: read('--tls-key', config.tlsKey),
    ca: config.tlsCa === undefined ? undefined : read('--tls-ca', config.tlsCa),
  }
}

/** Whether anyone who can reach this address reaches the node: not loopback. */
function beyondLoopback(host: string): boolean {
  return !(host === 'localhost' || host === '::1' || host === '[::1]' || /^127\./.test(host))
}

function startsAsReplica(config: Config): boolean {
  return (
    !config.witness && (config.replicaof !== undefined || (config.cluster.length > 0 && config.failover === 'auto'))
  )
}
