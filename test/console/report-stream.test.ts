import { get, type IncomingMessage, request } from 'node:http'
import { afterAll, describe, expect, it } from 'vitest'
import { NodeProcess } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'

/**
 * The stream a node pushes its console report on to other nodes' watchers
 * (/ui/api/reports): behind the token like the rest of /ui/api, bounded in
 * number (consoleMaxStreams), one JSON report a line, the first at once.
 */

const TOKEN = 'report-stream-token'

describe('console report stream', () => {
  const dir = tempDir()
  const node = new NodeProcess(dir.path, ['--tune', 'consoleMaxStreams=1'], { TANDEM_AUTH_TOKEN: TOKEN })
  const open: IncomingMessage[] = []
  afterAll(async () => {
    for (const res of open) res.destroy()
    await node.stop()
    dir.remove()
  })

  const ask = (token?: string) =>
    new Promise<IncomingMessage>((resolve, reject) => {
      const headers = token ? { authorization: `Bearer ${token}` } : undefined
      get(`http://${node.address}/ui/api/reports?every=100`, { headers }, (res) => {
        open.push(res)
        resolve(res)
      }).on('error', reject)
    })
  const body = async (res: IncomingMessage) => {
    let text = ''
    for await (const chunk of res) text += chunk
    return text
  }

  it('pushes reports to a token holder, one a line, and refuses a second stream past the limit', async () => {
    await node.start()
    const refused = await ask()
    expect(refused.statusCode).toBe(401)
    expect(await body(refused)).toContain('UNAUTHORIZED')

    const stream = await ask(TOKEN)
    expect(stream.statusCode).toBe(200)
    expect(stream.headers['content-type']).toBe('application/x-ndjson')
    const lines: string[] = []
    let tail = ''
    stream.setEncoding('utf8')
    stream.on('data', (chunk: string) => {
      const parts = (tail + chunk).split('\n')
      tail = parts.pop() ?? ''
      lines.push(...parts)
    })
    await waitFor(() => lines.length >= 3, { what: 'three reports pushed' })
    const reports = lines.slice(0, 3).map((l) => JSON.parse(l))
    const status = await (
      await fetch(`http://${node.address}/status`, { headers: { authorization: `Bearer ${TOKEN}` } })
    ).json()
    for (const r of reports) expect(r.status.nodeId).toBe(status.nodeId)
    // Each a new report, not the same one again.
    expect(reports[1].at).toBeGreaterThan(reports[0].at)
    expect(reports[2].at).toBeGreaterThan(reports[1].at)

    // consoleMaxStreams=1: the second stream is refused while the first reads.
    const second = await ask(TOKEN)
    expect(second.statusCode).toBe(503)
    expect(await body(second)).toContain('BUSY')
  })
})

describe('console streams asked for with HEAD', () => {
  const dir = tempDir()
  const node = new NodeProcess(dir.path, [])
  afterAll(async () => {
    await node.stop()
    dir.remove()
  })

  it('are answered 405 at once: a HEAD response carries no body, so a stream would run unbounded', async () => {
    // Node drops what is written to a HEAD response (writableLength stays 0):
    // the backlog bound never trips and the reports are made for nobody until
    // the client goes.
    await node.start()
    for (const path of ['/ui/api/reports?every=50', '/ui/api/events']) {
      const res = await new Promise<IncomingMessage>((resolve, reject) => {
        const req = request(`http://${node.address}${path}`, { method: 'HEAD', timeout: 5000 }, resolve)
        req.on('timeout', () => req.destroy(new Error(`HEAD ${path}: no answer`)))
        req.on('error', reject)
        req.end()
      })
      expect(res.statusCode, path).toBe(405)
      expect(res.headers.allow, path).toBe('GET')
      res.resume()
    }
  })
})
