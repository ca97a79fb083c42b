import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, get, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { NodeStatus } from '@tandem/protocol'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { DataDirSize } from '../storage/data-dir-size.js'
import { DEFAULT_TUNING } from '../tuning.js'
import { handlerErrors } from '../util/handler-guard.js'
import { createLogger } from '../util/logger.js'
import { WebConsole } from './console.js'
import type { GroupView } from './group-view.js'

// The console pushes from timers (a report stream's interval, the
// watcher's tick), with nothing above them to catch: a throw while making
// or writing a push must close the streams it was for, logged and
// counted, and leave the node serving. An in-process console on a real
// HTTP server on port 0; the throws come from its status source and from
// a view that cannot be encoded.

describe('web console pushes that throw', () => {
  let dir = ''
  let server: Server
  let webConsole: WebConsole
  let port = 0
  let statusFails = false
  const lines: string[] = []
  const responses: IncomingMessage[] = []

  let statusCalls = 0
  const makeConsole = (consoleTickMs: number) => {
    const tuning = { ...DEFAULT_TUNING, consoleTickMs }
    return new WebConsole({
      logger: createLogger({ level: 'error', format: 'json', write: (line) => lines.push(line) }),
      tuning,
      dataDir: dir,
      disk: new DataDirSize(dir, tuning),
      status: () => {
        statusCalls++
        if (statusFails) throw new Error('status failed for the test')
        return {
          nodeId: 'n1',
          address: '127.0.0.1:1',
          role: 'master',
          epoch: 1,
          seq: 7,
          upstream: null,
          readOnly: false,
          replicas: [],
        } as unknown as NodeStatus
      },
      requests: () => new Map(),
      groupAddresses: () => new Set(),
    })
  }

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tandem-console-guard-'))
    statusFails = false
    statusCalls = 0
    lines.length = 0
    webConsole = makeConsole(60_000)
    server = createServer((req, res) => webConsole.handle(req, res, new URL(req.url ?? '/', 'http://x').pathname))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as AddressInfo).port
  })
  afterEach(async () => {
    for (const res of responses.splice(0)) res.destroy()
    webConsole.close()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    rmSync(dir, { recursive: true, force: true })
  })

  /** Opens a stream at `path`; `text` fills as it arrives, `ended` once the node closed it. */
  function open(path: string): Promise<{ text: string; ended: boolean }> {
    return new Promise((resolve, reject) => {
      const stream = { text: '', ended: false }
      get({ host: '127.0.0.1', port, path }, (res) => {
        responses.push(res)
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          stream.text += chunk
        })
        res.on('close', () => {
          stream.ended = true
        })
        res.on('error', () => {})
        resolve(stream)
      }).on('error', reject)
    })
  }

  async function until(what: string, ok: () => boolean): Promise<void> {
    const deadline = Date.now() + 20_000
    while (!ok()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }

  const httpErrors = () => handlerErrors().find((e) => e.labels.link === 'http')?.value ?? 0

  it('a report push that throws closes that report stream; the others and new ones go on', async () => {
    const errorsBefore = httpErrors()
    const first = await open('/ui/api/reports?every=50')
    await until('a first report', () => first.text.includes('\n'))
    expect(JSON.parse(first.text.split('\n')[0]).status.nodeId).toBe('n1')

    // The next timer push throws while making the report.
    statusFails = true
    await until('the report stream to be closed', () => first.ended)
    expect(httpErrors() - errorsBefore).toBe(1)
    expect(lines.join('')).toContain('status failed for the test')

    // The node goes on serving: a new report stream gets reports.
    statusFails = false
    const second = await open('/ui/api/reports?every=50')
    await until('three reports on a new stream', () => second.text.split('\n').length > 3)
    expect(second.ended).toBe(false)
  })

  it('a view that cannot be encoded closes the event streams, which get views again on reconnecting', async () => {
    const deliver = webConsole.watcher.onView
    let poisoned = false
    webConsole.watcher.onView = (view: GroupView) => {
      if (poisoned) {
        Object.defineProperty(view, 'nodes', {
          enumerable: true,
          get: () => {
            throw new Error('this view cannot be encoded')
          },
        })
      }
      deliver(view)
    }
    // Two consoles get the first view, as a snapshot.
    const streams = await Promise.all([open('/ui/api/events'), open('/ui/api/events')])
    await until('a snapshot on both streams', () => streams.every((s) => s.text.includes('event: snapshot')))
    const errorsBefore = httpErrors()

    // The next tick's view throws while encoded.
    poisoned = true
    await webConsole.watcher.refresh()
    await until('both event streams to be closed', () => streams.every((s) => s.ended))
    expect(httpErrors() - errorsBefore).toBe(1)
    expect(lines.join('')).toContain('this view cannot be encoded')
    for (const s of streams) expect(s.text).not.toContain('event: view')

    // A console reconnecting once views encode again gets one.
    poisoned = false
    const again = await open('/ui/api/events')
    await until('an event on the new stream', () => again.text.includes('event: '))
    expect(again.ended).toBe(false)
  })

  it('a watcher tick that fails is logged and counted once while it keeps failing, and views come once it works', async () => {
    webConsole.close()
    webConsole = makeConsole(50)
    const errorsBefore = httpErrors()
    statusFails = true
    const stream = await open('/ui/api/events')
    // Several ticks, each failing on this node's own report.
    await until('five failing ticks', () => statusCalls >= 5)
    expect(httpErrors() - errorsBefore).toBe(1)
    expect(lines.filter((l) => l.includes('status failed for the test'))).toHaveLength(1)
    expect(stream.text).not.toContain('event: ')

    statusFails = false
    await until('a view once the ticks work', () => stream.text.includes('event: '))
    expect(stream.ended).toBe(false)
  })
})
