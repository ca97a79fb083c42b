import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, get, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { NodeStatus } from '@tandem/protocol'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { DataDirSize } from '../storage/data-dir-size.js'
import { DEFAULT_TUNING } from '../tuning.js'
import { silentLogger } from '../util/logger.js'
import { WebConsole } from './console.js'
import type { GroupView } from './group-view.js'

// What a tick costs the node when consoles join, counted in encodings of
// the view: streams that join an idle watcher get the first view as a
// snapshot (the view and the lag series), and that snapshot reuses the
// view's text the same tick encoded for the streams already open.

describe('web console encoding', () => {
  let dir = ''
  let server: Server
  let webConsole: WebConsole
  let port = 0
  const responses: IncomingMessage[] = []

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tandem-console-'))
    const tuning = { ...DEFAULT_TUNING, consoleTickMs: 60_000 }
    webConsole = new WebConsole({
      logger: silentLogger,
      tuning,
      dataDir: dir,
      disk: new DataDirSize(dir, tuning),
      status: () =>
        ({
          nodeId: 'n1',
          address: '127.0.0.1:1',
          role: 'master',
          epoch: 1,
          seq: 7,
          upstream: null,
          readOnly: false,
          replicas: [],
        }) as unknown as NodeStatus,
      requests: () => new Map(),
      groupAddresses: () => new Set(),
    })
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

  /** Opens an event stream; `events` fills as they arrive. */
  function open(): Promise<{ events: { event: string; data: string }[] }> {
    return new Promise((resolve, reject) => {
      const events: { event: string; data: string }[] = []
      let buffer = ''
      get({ host: '127.0.0.1', port, path: '/ui/api/events' }, (res) => {
        responses.push(res)
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          buffer += chunk
          for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
            const lines = buffer.slice(0, end).split('\n')
            buffer = buffer.slice(end + 2)
            const event = lines.find((l) => l.startsWith('event: '))?.slice(7)
            const data = lines.find((l) => l.startsWith('data: '))?.slice(6)
            if (event && data) events.push({ event, data })
          }
        })
        resolve({ events })
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

  it('a tick with joining streams serializes its view once, and the snapshot holds what JSON.stringify({ view, series }) gives', async () => {
    // Count the serializations of each view: JSON.stringify reads `nodes` once per pass.
    const reads = new Map<number, number>()
    const deliver = webConsole.watcher.onView
    webConsole.watcher.onView = (view: GroupView) => {
      const nodes = view.nodes
      Object.defineProperty(view, 'nodes', {
        enumerable: true,
        get: () => {
          reads.set(view.tick, (reads.get(view.tick) ?? 0) + 1)
          return nodes
        },
      })
      deliver(view)
    }
    // Three consoles opened on an idle watcher wait for its first view, as a snapshot.
    const joiners = await Promise.all([open(), open(), open()])
    await until('a snapshot on each stream', () => joiners.every((s) => s.events.length > 0))
    for (const s of joiners) expect(s.events[0].event).toBe('snapshot')
    expect(new Set(joiners.map((s) => s.events[0].data)).size).toBe(1)
    const snapshot = JSON.parse(joiners[0].events[0].data) as { view: GroupView; series: unknown }
    expect(reads.get(snapshot.view.tick)).toBe(1)
    expect(snapshot.view.nodes.map((n) => n.nodeId)).toEqual(['n1'])
    expect(joiners[0].events[0].data).toBe(JSON.stringify(webConsole.watcher.snapshot()))
    reads.clear()

    // A tick with a stream open and another joining while it runs: the view once for both.
    const tick = snapshot.view.tick
    const refreshed = webConsole.watcher.refresh()
    const late = await open()
    await refreshed
    await until('the next view on the first stream', () => joiners[0].events.length > 1)
    expect(joiners[0].events[1].event).toBe('view')
    expect(JSON.parse(joiners[0].events[1].data).tick).toBe(tick + 1)
    await until('a first event on the late stream', () => late.events.length > 0)
    expect(late.events[0].event).toBe('snapshot')
    expect([...reads.values()]).toEqual([1])
  })
})
