import { createServer, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { reportFetcher } from './report-fetch.js'

// The console's poll of another node: one deadline for the whole exchange.
// A node that accepts the connection and never answers (a process paused
// with SIGSTOP still has its kernel accept connections) fails the poll with
// a TimeoutError, and its connection is let go rather than kept waiting.

describe('console report fetch', () => {
  let server: Server | null = null
  afterEach(async () => {
    server?.closeAllConnections()
    await new Promise((resolve) => server?.close(resolve))
    server = null
  })

  const listen = async (onRequest: Parameters<typeof createServer>[1]) => {
    server = createServer(onRequest)
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve))
    return `127.0.0.1:${(server.address() as AddressInfo).port}`
  }
  const fetchReport = reportFetcher({ groupAddresses: () => new Set() }, 1024 * 1024)

  it('returns the report a node answers', async () => {
    const address = await listen((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ at: 1, status: { nodeId: 'n1' } }))
    })
    const report = await fetchReport(address, 2000)
    expect(report.status.nodeId).toBe('n1')
  })

  it('fails with a TimeoutError when the node does not answer in time, and closes the connection', async () => {
    const closed: Promise<void>[] = []
    const address = await listen((req) => {
      // Never answers; records when the poller lets the connection go.
      closed.push(new Promise((resolve) => (req.socket as Socket).once('close', () => resolve())))
    })
    const err = await fetchReport(address, 300).then(
      () => null,
      (e: Error) => e,
    )
    expect(err?.name).toBe('TimeoutError')
    expect(err?.message).toBe('no answer in 300 ms')
    expect(closed).toHaveLength(1)
    await closed[0]
  })
})
