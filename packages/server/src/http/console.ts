import { readdirSync, readFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { bearerToken, tokenMatches } from '../api/auth.js'
import type { Tuning } from '../tuning.js'
import { handlerThrew } from '../util/handler-guard.js'
import type { Logger } from '../util/logger.js'
import type { GroupView } from './group-view.js'
import { GroupWatcher } from './group-watcher.js'
import { ReportFeed } from './report-feed.js'
import type { ReportFetchOptions } from './report-fetch.js'
import { SelfReporter, type SelfReporterSource } from './self-report.js'

/**
 * The web console at /ui: static files shipped in the package's ui/
 * folder, and two endpoints behind the node's token:
 *
 *   GET /ui/api/self    this node's report (status plus counters, disk,
 *                       version), once
 *   GET /ui/api/reports this node's report pushed every `every` ms
 *                       (query), one JSON line each: what other nodes'
 *                       console watchers read (see report-feed.ts)
 *   GET /ui/api/events  server-sent events: `snapshot` (the view and the
 *                       lag series so far) on connect, then `view` once a
 *                       tick, for as long as the client reads
 *
 * The static files carry no data, so they are served without the token;
 * the page asks for it and sends it as `Authorization: Bearer` on the API
 * calls. Streams share one GroupWatcher, and each view is encoded once for
 * all of them; so is the snapshot that streams joining during one tick get
 * (a page reconnecting after a restart comes with its neighbours, and the
 * snapshot, carrying every lag series, is the largest thing sent).
 *
 * Pushes run from timers (a report stream's interval, the watcher's tick),
 * where nothing above them catches: a throw while making or writing what
 * they push (a report, a view's JSON) is logged and counted like a throw
 * in a connection's handler (util/handler-guard.ts) and closes the streams
 * it was for; a page's EventSource, a watcher's feed, reconnect.
 */

/** dist/http/console.js -> the package's ui/ folder. */
const UI_DIR = new URL('../../ui/', import.meta.url)

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
}

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
}

type ConsoleStatus = 'open' | 'closed'

interface ConsoleOptions extends SelfReporterSource, ReportFetchOptions {
  logger: Logger
  /** The node's tunables (see tuning.ts): the console's, and the watcher's and reporter's. */
  tuning: Tuning
  /** Counts reports served to other nodes' consoles (metrics). */
  onSelfServed?: () => void
  /** Counts views and snapshots encoded for the streams (metrics: at most one of each a tick). */
  onEncoded?: () => void
}

export class WebConsole {
  status: ConsoleStatus = 'open'
  readonly reporter: SelfReporter
  readonly watcher: GroupWatcher
  /** Other nodes' reports, pushed to this node's watcher. */
  readonly feed: ReportFeed
  private readonly streams = new Set<ServerResponse>()
  /** Streams pushing this node's report to other nodes' watchers. */
  private readonly reportStreams = new Set<ServerResponse>()
  /** Streams that get the next view as a snapshot (they opened while the watcher was idle). */
  private readonly awaitingSnapshot = new Set<ServerResponse>()
  private readonly assets: Map<string, { type: string; body: Buffer }>
  /** The snapshot event of the watcher's last view, encoded for the first stream that needed it. */
  private snapshotEvent: { view: GroupView; bytes: Buffer } | null = null
  /** The watcher's last view as JSON text, kept for the snapshot of streams that join before the next. */
  private viewText: { view: GroupView; json: string } | null = null
  /** Why the watcher's last tick failed (null: it made a view), so that a failure repeated every tick is logged once. */
  private tickFailure: string | null = null

  constructor(private readonly options: ConsoleOptions) {
    this.reporter = new SelfReporter(options)
    this.feed = new ReportFeed({
      authToken: options.authToken,
      tls: options.tls,
      groupAddresses: () => options.groupAddresses(),
      everyMs: options.tuning.consoleTickMs,
      maxReportBytes: options.tuning.consoleMaxReportBytes,
      now: options.now ?? Date.now,
    })
    this.watcher = new GroupWatcher({
      selfReport: () => this.reporter.report(),
      fetchReport: (address, timeoutMs) => this.feed.next(address, timeoutMs),
      now: options.now,
      tuning: options.tuning,
    })
    this.watcher.onView = (view) => this.onView(view)
    this.watcher.onTickFailed = (err) => this.onTickFailed(err)
    this.assets = loadAssets()
    if (!this.assets.has('index.html')) {
      options.logger.warn('web console files not found; /ui answers 404', { dir: fileURLToPath(UI_DIR) })
    }
  }

  get streamCount(): number {
    return this.streams.size
  }

  /** Answers a request under /ui. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return sendJson(
        res,
        405,
        { error: { code: 'INVALID', message: `${req.method} ${path}: only GET and HEAD` } },
        {
          allow: 'GET, HEAD',
        },
      )
    }
    if (path === '/ui') {
      res.writeHead(301, { location: '/ui/' })
      return void res.end()
    }
    if (path.startsWith('/ui/api/')) {
      if (!tokenMatches(this.options.authToken, bearerToken(req))) {
        return sendJson(res, 401, { error: { code: 'UNAUTHORIZED', message: 'send Authorization: Bearer TOKEN' } })
      }
      if (path === '/ui/api/self') {
        this.options.onSelfServed?.()
        return sendJson(res, 200, this.reporter.report())
      }
      if ((path === '/ui/api/events' || path === '/ui/api/reports') && req.method === 'HEAD') {
        // Writes to a HEAD response are dropped: the backlog bound would never
        // trip, and the stream would run for nobody until the client goes.
        return sendJson(
          res,
          405,
          { error: { code: 'INVALID', message: `HEAD ${path}: a stream is GET only` } },
          {
            allow: 'GET',
          },
        )
      }
      if (path === '/ui/api/events') return this.openStream(req, res)
      if (path === '/ui/api/reports') return this.openReportStream(req, res)
      return sendJson(res, 404, { error: { code: 'NOTFOUND', message: `no console endpoint ${path}` } })
    }
    const name = path === '/ui/' ? 'index.html' : path.slice('/ui/'.length)
    const asset = this.assets.get(name)
    if (!asset) return sendJson(res, 404, { error: { code: 'NOTFOUND', message: `no console file ${name}` } })
    res.writeHead(200, { 'content-type': asset.type, 'content-length': asset.body.length, ...SECURITY_HEADERS })
    res.end(req.method === 'HEAD' ? undefined : asset.body)
  }

  private openStream(req: IncomingMessage, res: ServerResponse): void {
    if (this.status !== 'open') return sendJson(res, 503, { error: { code: 'UNAVAILABLE', message: 'shutting down' } })
    const maxStreams = this.options.tuning.consoleMaxStreams
    if (this.streams.size >= maxStreams) {
      return sendJson(res, 503, {
        error: { code: 'BUSY', message: `console stream limit (${maxStreams}) reached` },
      })
    }
    // No chunked framing: an event stream ends only with its connection, and
    // each view then goes out in one write per stream rather than a writev
    // of three buffers (the per-stream share of a tick with many consoles).
    res.useChunkedEncodingByDefault = false
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
      connection: 'keep-alive',
    })
    req.socket.setNoDelay(true)
    this.streams.add(res)
    res.on('close', () => {
      this.streams.delete(res)
      this.awaitingSnapshot.delete(res)
      if (this.streams.size === 0) {
        this.watcher.stop()
        // The nodes it watched stop pushing.
        this.feed.close()
      }
    })
    // While the watcher runs its last view is at most a tick old; after a pause it may be stale.
    let snapshot: Buffer | null = null
    try {
      snapshot = this.watcher.status === 'watching' ? this.encodedSnapshot() : null
    } catch (err) {
      return this.pushFailed(res, err)
    }
    if (snapshot) res.write(snapshot)
    else {
      res.write(': waiting for the first view\n\n')
      this.awaitingSnapshot.add(res)
    }
    this.watcher.start()
  }

  /**
   * Pushes this node's report to another node's watcher every `every` ms
   * (clamped to [REPORT_MIN_EVERY_MS, REPORT_MAX_EVERY_MS]; the node's own
   * tick without it), the first at once, for as long as it reads.
   */
  private openReportStream(req: IncomingMessage, res: ServerResponse): void {
    if (this.status !== 'open') return sendJson(res, 503, { error: { code: 'UNAVAILABLE', message: 'shutting down' } })
    const { consoleMaxStreams, consoleStreamBacklogBytes, consoleTickMs } = this.options.tuning
    if (this.reportStreams.size >= consoleMaxStreams) {
      return sendJson(res, 503, {
        error: { code: 'BUSY', message: `console report stream limit (${consoleMaxStreams}) reached` },
      })
    }
    const asked = Number(new URL(req.url ?? '/', 'http://node').searchParams.get('every'))
    const everyMs =
      Number.isFinite(asked) && asked > 0
        ? Math.min(Math.max(asked, REPORT_MIN_EVERY_MS), REPORT_MAX_EVERY_MS)
        : consoleTickMs
    // One write per report, as for the event streams (see openStream).
    res.useChunkedEncodingByDefault = false
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' })
    req.socket.setNoDelay(true)
    this.reportStreams.add(res)
    const push = () => {
      // A watcher that does not read is let go; it asks again.
      if (res.writableLength > consoleStreamBacklogBytes) return void res.destroy()
      try {
        const line = `${JSON.stringify(this.reporter.report())}\n`
        this.options.onSelfServed?.()
        res.write(line)
      } catch (err) {
        this.pushFailed(res, err)
      }
    }
    const timer = setInterval(push, everyMs)
    timer.unref()
    res.on('close', () => {
      clearInterval(timer)
      this.reportStreams.delete(res)
    })
    push()
  }

  /**
   * The snapshot of the watcher's last view as an event, encoded once for
   * every stream that joins before the next view. It reuses the view's
   * text its tick encoded for the open streams (a snapshot is that and the
   * lag series), so a view is encoded once however many streams join.
   */
  private encodedSnapshot(): Buffer | null {
    const view = this.watcher.lastView
    if (!view) return null
    if (this.snapshotEvent?.view !== view) {
      this.options.onEncoded?.()
      const series = JSON.stringify(this.watcher.lagSeries())
      const viewJson = this.viewText?.view === view ? this.viewText.json : JSON.stringify(view)
      // The text JSON.stringify({ view, series }) gives, without the view encoded twice.
      const data = `{"view":${viewJson},"series":${series}}`
      this.snapshotEvent = { view, bytes: Buffer.from(sseEvent('snapshot', data)) }
    }
    return this.snapshotEvent.bytes
  }

  /**
   * A watcher's tick failed before making a view (this node's own report
   * threw): the consoles get no view until one succeeds. Logged and counted
   * when it starts failing or fails otherwise, not at every tick.
   */
  private onTickFailed(err: unknown): void {
    const why = err instanceof Error ? `${err.name}: ${err.message}` : typeof err
    if (why === this.tickFailure) return
    this.tickFailure = why
    handlerThrew('http', this.options.logger, err)
  }

  private onView(view: GroupView): void {
    this.tickFailure = null
    this.options.onEncoded?.()
    let chunk: Buffer
    let snapshot: Buffer | null
    try {
      // Written as they are to every stream, rather than each stream encoding the text again.
      const json = JSON.stringify(view)
      this.viewText = { view, json }
      chunk = Buffer.from(sseEvent('view', json))
      snapshot = this.awaitingSnapshot.size > 0 ? this.encodedSnapshot() : null
    } catch (err) {
      // No stream can have this view: each is closed, and reconnects.
      this.viewText = null
      this.snapshotEvent = null
      handlerThrew('http', this.options.logger, err)
      for (const res of this.streams) res.destroy()
      return
    }
    // A stream whose client reads slower than this is closed (it reconnects and gets a snapshot).
    const maxBacklog = this.options.tuning.consoleStreamBacklogBytes
    for (const res of this.streams) {
      if (res.writableLength > maxBacklog) {
        this.options.logger.warn('closing a console stream that does not keep up', { backlog: res.writableLength })
        res.destroy()
        continue
      }
      try {
        res.write(this.awaitingSnapshot.delete(res) && snapshot ? snapshot : chunk)
      } catch (err) {
        this.pushFailed(res, err)
      }
    }
  }

  /** A push to `res` threw: logged and counted, and that stream closed. */
  private pushFailed(res: ServerResponse, err: unknown): void {
    handlerThrew('http', this.options.logger, err)
    res.destroy()
  }

  /** Ends every stream and stops the watcher. Safe to call twice. */
  close(): void {
    if (this.status === 'closed') return
    this.status = 'closed'
    this.watcher.close()
    this.feed.close()
    for (const res of this.streams) res.end()
    this.streams.clear()
    for (const res of this.reportStreams) res.end()
    this.reportStreams.clear()
  }
}

/**
 * Bounds on how often a node pushes its report to a watcher that asks: at
 * most 20 a second (a token holder cannot make a node report in a loop), at
 * least one a minute (a watcher's poll timeout must see one).
 */
const REPORT_MIN_EVERY_MS = 50
const REPORT_MAX_EVERY_MS = 60_000

function sseEvent(event: string, data: string): string {
  // JSON has no raw newlines, so the data fits on one line.
  return `event: ${event}\ndata: ${data}\n\n`
}

/** The ui/ folder, read once: a few small files. */
function loadAssets(): Map<string, { type: string; body: Buffer }> {
  const assets = new Map<string, { type: string; body: Buffer }>()
  let names: string[] = []
  try {
    names = readdirSync(UI_DIR)
  } catch {
    return assets
  }
  for (const name of names) {
    const type = TYPES[extname(name)]
    if (type) assets.set(name, { type, body: readFileSync(new URL(name, UI_DIR)) })
  }
  return assets
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
  res.end(text)
}
