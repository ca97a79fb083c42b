import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { ReportFeed } from './report-feed.js'

// The console watcher's reports from other nodes, pushed: one stream per
// node for as long as the watcher asks, rather than a request per node per
// tick; a node that does not serve the stream is polled; a silent stream
// fails the ask and is dropped; close() lets every node stop pushing.
// Real sockets; the other node is a plain HTTP server that plays its part.

const report = (n: number) => ({ at: n, status: { nodeId: 'n1', seq: n } })

describe('console report feed', () => {
  let server: Server | null = null
  let feed: ReportFeed | null = null
  afterEach(async () => {
    feed?.close()
    server?.closeAllConnections()
    await new Promise((resolve) => server?.close(resolve))
    server = null
  })

  const listen = async (onRequest: (req: IncomingMessage, res: ServerResponse) => void) => {
    server = createServer(onRequest)
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve))
    return `127.0.0.1:${(server.address() as AddressInfo).port}`
  }
  const newFeed = (everyMs = 100) =>
    (feed = new ReportFeed({ groupAddresses: () => new Set(), everyMs, maxReportBytes: 1 << 20, now: Date.now }))

  it('reads every report from one stream, as many asks as it takes', async () => {
    const asked: string[] = []
    const closed: Promise<void>[] = []
    const address = await listen((req, res) => {
      asked.push(req.url ?? '')
      res.writeHead(200, { 'content-type': 'application/x-ndjson' })
      let n = 0
      const push = () => res.write(`${JSON.stringify(report(++n))}\n`)
      push()
      const timer = setInterval(push, 100)
      closed.push(new Promise((resolve) => res.on('close', () => resolve(clearInterval(timer)))))
    })
    const f = newFeed()
    const seqs: number[] = []
    for (let i = 0; i < 5; i++) seqs.push((await f.next(address, 2000)).status.seq)
    // Each ask got a newer report than the one before, all over the one stream the first ask opened.
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1])
    expect(asked).toEqual(['/ui/api/reports?every=100'])
    expect(f.size).toBe(1)
    // Closing the feed ends the stream: the node stops pushing.
    f.close()
    expect(f.size).toBe(0)
    await closed[0]
  })

  it('polls a node that does not serve the stream (404), and keeps polling it', async () => {
    const asked: string[] = []
    const address = await listen((req, res) => {
      asked.push(req.url ?? '')
      if (req.url?.startsWith('/ui/api/reports')) {
        res.writeHead(404)
        return void res.end()
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(report(asked.length)))
    })
    const f = newFeed()
    expect((await f.next(address, 2000)).status.nodeId).toBe('n1')
    expect((await f.next(address, 2000)).status.nodeId).toBe('n1')
    expect(asked).toEqual(['/ui/api/reports?every=100', '/ui/api/self', '/ui/api/self'])
  })

  it('polls a node that has no report stream to spare (503 BUSY) for that ask, and asks for a stream again next time', async () => {
    // A node at consoleMaxStreams answers 503 BUSY; its report is still served
    // at /ui/api/self, and the node is up: it must not be drawn unreachable.
    const asked: string[] = []
    const address = await listen((req, res) => {
      asked.push(req.url ?? '')
      if (req.url?.startsWith('/ui/api/reports')) {
        res.writeHead(503, { 'content-type': 'application/json' })
        return void res.end(JSON.stringify({ error: { code: 'BUSY', message: 'console report stream limit' } }))
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(report(asked.length)))
    })
    const f = newFeed()
    expect((await f.next(address, 2000)).status.nodeId).toBe('n1')
    expect((await f.next(address, 2000)).status.nodeId).toBe('n1')
    // A busy node is not an old one: each ask tries the stream first.
    expect(asked).toEqual(['/ui/api/reports?every=100', '/ui/api/self', '/ui/api/reports?every=100', '/ui/api/self'])
    expect(f.size).toBe(0)
  })

  it('fails an ask with a TimeoutError when the node pushes nothing, and drops its stream', async () => {
    const closed: Promise<void>[] = []
    const address = await listen((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' })
      res.flushHeaders()
      // Pushes nothing, as a paused node would; records when the watcher lets go.
      closed.push(new Promise((resolve) => res.on('close', () => resolve())))
    })
    const f = newFeed()
    const err = await f.next(address, 300).then(
      () => null,
      (e: Error) => e,
    )
    expect(err?.name).toBe('TimeoutError')
    expect(err?.message).toBe('no answer in 300 ms')
    expect(f.size).toBe(0)
    await closed[0]
  })
})
