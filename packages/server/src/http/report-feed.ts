import { type ClientRequest, request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { bearerHeaders } from '@tandem/protocol'
import { type ReportFetchOptions, reportFetcher, TokenWithheld, trustsWithToken } from './report-fetch.js'
import type { SelfReport } from './self-report.js'

/**
 * Reports pushed rather than polled: the watcher asks each node it follows
 * once for a stream of its reports (GET /ui/api/reports?every=MS: one JSON
 * report a line, the first at once, then one every MS), instead of one
 * request per node per tick. A request cost both ends a whole HTTP exchange
 * (headers built and parsed, a write each way, the client agent's
 * bookkeeping), most of what a tick cost; a pushed report costs the node a
 * report and one write, and the watcher one read.
 *
 * `next(address, timeoutMs)` gives the watcher the report that arrived in
 * the last half tick, or waits for the next one: a tick draws reports at
 * most half a tick old, as fresh as a poll's. A node that does not serve
 * the stream (an older version answers 404) is polled as before.
 *
 * The token goes where a poll's would (see report-fetch.ts). A stream whose
 * node sends nothing within the timeout is dropped (a paused node) and
 * asked for again at the next tick; so is one the watcher stops asking for
 * (a node it forgot). close() drops them all: a node pushes only while a
 * console watches.
 */

interface Waiter {
  timeoutMs: number
  resolve: (r: SelfReport) => void
  reject: (err: Error) => void
  timer: NodeJS.Timeout
}

interface Feed {
  req: ClientRequest
  /** The newest report and when it arrived (local monotonic-enough wall ms). */
  latest: { report: SelfReport; at: number } | null
  waiters: Waiter[]
  askedAt: number
  closed: boolean
}

/** Most addresses remembered as serving no stream (older nodes). */
const MAX_POLL_ONLY = 1024

/** A report that did not arrive within the timeout. */
class FeedTimeout extends Error {
  override name = 'TimeoutError'
}

interface ReportFeedOptions extends ReportFetchOptions {
  /** How often each node pushes its report (the watcher's tick). */
  everyMs: number
  maxReportBytes: number
  now: () => number
}

export class ReportFeed {
  private readonly feeds = new Map<string, Feed>()
  /** Nodes that do not serve the stream: polled. */
  private readonly pollOnly = new Set<string>()
  private readonly poll: (address: string, timeoutMs: number) => Promise<SelfReport>
  private lastSweep = 0

  constructor(private readonly options: ReportFeedOptions) {
    this.poll = reportFetcher(options, options.maxReportBytes)
  }

  /** Open streams (tests and metrics). */
  get size(): number {
    return this.feeds.size
  }

  /** The report of the node at `address` that arrived in the last half tick, or the next one. */
  next(address: string, timeoutMs: number): Promise<SelfReport> {
    if (this.pollOnly.has(address)) return this.poll(address, timeoutMs)
    const now = this.options.now()
    this.sweep(now)
    let feed = this.feeds.get(address)
    if (!feed) feed = this.open(address)
    feed.askedAt = now
    const latest = feed.latest
    if (latest && now - latest.at <= this.options.everyMs / 2) {
      feed.latest = null
      return Promise.resolve(latest.report)
    }
    const f = feed
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        timeoutMs,
        resolve,
        reject,
        timer: setTimeout(() => {
          // A node that pushes nothing for this long is paused or cut off: drop its stream, ask again next tick.
          this.drop(address, f, new FeedTimeout(`no answer in ${timeoutMs} ms`))
        }, timeoutMs),
      }
      waiter.timer.unref()
      f.waiters.push(waiter)
    })
  }

  /** Drops every stream: the nodes stop pushing. Safe to call twice. */
  close(): void {
    for (const [address, feed] of this.feeds) this.drop(address, feed, new Error('console watcher stopped'))
  }

  private open(address: string): Feed {
    const { authToken, tls, everyMs } = this.options
    const trusted = trustsWithToken(this.options, address)
    const headers = { accept: 'application/x-ndjson', ...bearerHeaders(trusted ? authToken : undefined) }
    const url = `${tls ? 'https' : 'http'}://${address}/ui/api/reports?every=${everyMs}`
    const onResponse = (res: IncomingMessage) => this.onResponse(address, feed, res, trusted)
    const req = tls
      ? httpsRequest(url, { headers, ca: tls.ca, cert: tls.cert, key: tls.key, agent: false }, onResponse)
      : httpRequest(url, { headers, agent: false }, onResponse)
    const feed: Feed = { req, latest: null, waiters: [], askedAt: this.options.now(), closed: false }
    req.on('error', (err) => this.drop(address, feed, err))
    req.on('close', () => this.drop(address, feed, new Error('report stream closed')))
    req.end()
    this.feeds.set(address, feed)
    return feed
  }

  private onResponse(address: string, feed: Feed, res: IncomingMessage, trusted: boolean): void {
    if (res.statusCode === 404 || res.statusCode === 503) {
      // 404: a node of an older version, polled now and from now on. 503: a
      // node with every report stream taken (consoleMaxStreams) or closing,
      // polled for these asks only (a poll has no such limit): it is up, and
      // a stream may be free at the next tick.
      if (res.statusCode === 404) {
        // Addresses come from other nodes' reports: bounded, and forgetting
        // one costs it only a stream asked for again.
        if (this.pollOnly.size >= MAX_POLL_ONLY) this.pollOnly.clear()
        this.pollOnly.add(address)
      }
      res.resume()
      const waiters = feed.waiters.splice(0)
      for (const w of waiters) {
        clearTimeout(w.timer)
        this.poll(address, w.timeoutMs).then(w.resolve, w.reject)
      }
      this.drop(address, feed, new Error('report stream not served'))
      return
    }
    if (res.statusCode !== 200) {
      res.resume()
      const err =
        res.statusCode === 401 && this.options.authToken && !trusted
          ? new TokenWithheld('wants the token; not sent to a node outside this node’s group')
          : new Error(`HTTP ${res.statusCode}`)
      this.drop(address, feed, err)
      return
    }
    let pending: Buffer[] = []
    let bytes = 0
    res.on('data', (chunk: Buffer) => {
      let start = 0
      for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
        pending.push(chunk.subarray(start, nl))
        const line = pending.length === 1 ? pending[0] : Buffer.concat(pending)
        pending = []
        bytes = 0
        start = nl + 1
        try {
          this.onReport(feed, JSON.parse(line.toString('utf8')) as SelfReport)
        } catch (err) {
          this.drop(address, feed, err as Error)
          return
        }
      }
      if (start < chunk.length) {
        bytes += chunk.length - start
        if (bytes > this.options.maxReportBytes) {
          this.drop(address, feed, new Error(`report larger than ${this.options.maxReportBytes} bytes`))
          return
        }
        pending.push(chunk.subarray(start))
      }
    })
    res.on('error', (err) => this.drop(address, feed, err))
  }

  private onReport(feed: Feed, report: SelfReport): void {
    const waiters = feed.waiters.splice(0)
    if (waiters.length === 0) {
      feed.latest = { report, at: this.options.now() }
      return
    }
    feed.latest = null
    for (const w of waiters) {
      clearTimeout(w.timer)
      w.resolve(report)
    }
  }

  /** Ends one stream and fails whoever waits on it; the next ask opens a new one. */
  private drop(address: string, feed: Feed, err: Error): void {
    if (this.feeds.get(address) === feed) this.feeds.delete(address)
    if (!feed.closed) {
      feed.closed = true
      feed.req.destroy()
    }
    for (const w of feed.waiters.splice(0)) {
      clearTimeout(w.timer)
      w.reject(err)
    }
  }

  /** Streams of nodes the watcher no longer asks for (forgotten, or named no more) are dropped. */
  private sweep(now: number): void {
    if (now - this.lastSweep < this.options.everyMs) return
    this.lastSweep = now
    const idle = 3 * this.options.everyMs
    for (const [address, feed] of this.feeds) {
      if (now - feed.askedAt > idle && feed.waiters.length === 0) this.drop(address, feed, new Error('not watched'))
    }
  }
}
