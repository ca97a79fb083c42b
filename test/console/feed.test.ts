import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { TandemClient } from '@tandem/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { REPO_ROOT } from '../helpers/node-process.js'
import { waitFor } from '../helpers/wait.js'
import { Cluster, metricSum, statusOf } from '../replication/cluster.js'
import { EventStream } from './event-stream.js'

// The console's server side without a browser: the files under /ui, the
// event stream's views against the nodes' own status, and the cost of
// many open consoles counted in requests (one poll per node per tick,
// whatever the number of streams).

interface NodeView {
  key: string
  address: string
  role: string
  seq: number
  upstream: string | null
  reachable: boolean
  writesPerSec: number | null
  readsPerSec: number | null
  diskBytes: number | null
  version: string | null
}
interface View {
  tick: number
  self: string
  master: string | null
  nodes: NodeView[]
  edges: { from: string; to: string; kind: string; lagEntries: number | null; lagMs: number | null }[]
  history: { epoch: number; by: string; at: number | null; why: string | null }[]
}

describe('web console feed', () => {
  const cluster = new Cluster()
  const streams: EventStream[] = []
  let masterAddr = ''
  let startedBefore = 0
  let startedAfter = 0

  beforeAll(async () => {
    startedBefore = Date.now()
    const master = await cluster.start()
    startedAfter = Date.now()
    masterAddr = master.address
    await cluster.start(['--replicaof', master.address])
  })
  afterAll(async () => {
    for (const s of streams) s.close()
    await cluster.teardown()
  })

  it('serves the page and its modules from the package, and nothing else under /ui', async () => {
    const [master] = cluster.nodes
    const redirect = await fetch(`http://${master.address}/ui`, { redirect: 'manual' })
    expect(redirect.status).toBe(301)
    expect(redirect.headers.get('location')).toBe('/ui/')
    const page = await fetch(`http://${master.address}/ui/`)
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toContain('text/html')
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'")
    expect(await page.text()).toBe(readFileSync(join(REPO_ROOT, 'packages/server/ui/index.html'), 'utf8'))
    const app = await fetch(`http://${master.address}/ui/app.js`)
    expect(app.headers.get('content-type')).toContain('text/javascript')
    // Every module the page imports is served.
    for (const m of (await app.text()).matchAll(/from '\.\/([\w-]+\.js)'/g)) {
      expect((await fetch(`http://${master.address}/ui/${m[1]}`)).status, m[1]).toBe(200)
    }
    expect((await fetch(`http://${master.address}/ui/%2e%2e/package.json`)).status).toBe(404)
    expect((await fetch(`http://${master.address}/ui/nope.js`)).status).toBe(404)
    expect((await fetch(`http://${master.address}/ui/api/nope`)).status).toBe(404)
    expect((await fetch(`http://${master.address}/ui/`, { method: 'POST' })).status).toBe(405)
  })

  it('pushes views that match status: roles, the link with its lag, rates, the epoch with when and why', async () => {
    const [master, replica] = cluster.nodes
    const [ms, rs] = await Promise.all([statusOf(master), statusOf(replica)])
    // The stream is opened on the replica: the master is found through it.
    const stream = new EventStream()
    streams.push(stream)
    await stream.open(replica.address)
    expect(stream.status).toBe(200)
    const db = await cluster.client({ servers: [master.address] })
    let writing = true
    const load = (async () => {
      for (let i = 0; writing; i++) {
        await db.put(`k${i % 100}`, `v${i}`)
        await db.get(`k${i % 100}`)
      }
    })()
    const view = await waitFor(
      () => {
        const v = stream.views().at(-1) as View | undefined
        const m = v?.nodes.find((n) => n.key === ms.nodeId)
        const r = v?.nodes.find((n) => n.key === rs.nodeId)
        return v && m && r && (m.writesPerSec ?? 0) > 0 && (m.readsPerSec ?? 0) > 0 && (r.writesPerSec ?? 0) > 0
          ? v
          : null
      },
      { what: 'a view with both nodes writing (applying) and the master reading', timeoutMs: 20_000 },
    ).finally(async () => {
      writing = false
      await load
    })
    expect(view.self).toBe(rs.nodeId)
    expect(view.master).toBe(ms.nodeId)
    const m = view.nodes.find((n) => n.key === ms.nodeId)!
    const r = view.nodes.find((n) => n.key === rs.nodeId)!
    expect([m.address, m.role, m.reachable]).toEqual([master.address, 'master', true])
    expect([r.address, r.role, r.reachable, r.upstream]).toEqual([replica.address, 'replica', true, ms.nodeId])
    expect(r.readsPerSec).toBe(0)
    expect(m.diskBytes).toBeGreaterThan(0)
    expect(m.version).toBe(JSON.parse(readFileSync(join(REPO_ROOT, 'packages/server/package.json'), 'utf8')).version)
    expect(view.edges).toHaveLength(1)
    expect(view.edges[0]).toMatchObject({ from: ms.nodeId, to: rs.nodeId, kind: 'stream' })
    expect(view.edges[0].lagEntries).toEqual(expect.any(Number))
    expect(view.edges[0].lagMs).toEqual(expect.any(Number))
    // A node started as master begins epoch 1, recorded with its time and reason.
    expect(view.history).toHaveLength(1)
    expect(view.history[0]).toMatchObject({ epoch: 1, by: ms.nodeId, why: 'start' })
    expect(view.history[0].at).toBeGreaterThanOrEqual(startedBefore)
    expect(view.history[0].at).toBeLessThanOrEqual(startedAfter)
    // Seqs in views follow the nodes: once writes stop, both reach the master's seq.
    const final = (await statusOf(master)).seq
    await waitFor(
      () => {
        const v = stream.views().at(-1) as View
        return v.nodes.every((n) => n.seq === final)
      },
      { what: `a view with both nodes at seq ${final}`, timeoutMs: 10_000 },
    )
  })

  it('twenty consoles poll each node once a tick, like one', async () => {
    const [master, replica] = cluster.nodes
    for (const s of streams) s.close()
    await waitFor(async () => (await metricSum(replica, 'tandem_console_streams')) === 0, {
      what: 'the earlier stream to close',
    })
    const twenty = Array.from({ length: 20 }, () => new EventStream())
    streams.push(...twenty)
    await Promise.all(twenty.map((s) => s.open(replica.address)))
    await waitFor(() => twenty.every((s) => s.views().length > 0), { what: 'a first view on each of the 20 streams' })
    const counts = () =>
      Promise.all([
        metricSum(master, 'tandem_console_reports_served_total'),
        metricSum(replica, 'tandem_console_reports_served_total'),
        metricSum(replica, 'tandem_console_views_encoded_total'),
      ])
    const [servedBefore, selfServedBefore, encodedBefore] = await counts()
    const firstTick = Math.max(...twenty.map((s) => s.views().at(-1)?.tick ?? 0))
    // Every stream gets every tick's view.
    await waitFor(() => twenty.every((s) => (s.views().at(-1)?.tick ?? 0) >= firstTick + 5), {
      what: 'five more views on each of the 20 streams',
      timeoutMs: 20_000,
    })
    const [servedAfter, selfServedAfter, encodedAfter] = await counts()
    const ticks = Math.max(...twenty.map((s) => s.views().at(-1)!.tick)) - firstTick
    expect(await metricSum(replica, 'tandem_console_streams')).toBe(20)
    // One report a tick (a tick may start before the first count was read).
    const polls = servedAfter - servedBefore
    expect(polls).toBeGreaterThanOrEqual(ticks - 1)
    expect(polls).toBeLessThanOrEqual(ticks + 1)
    // One encoding a tick for the 20 streams, not one per stream.
    const encoded = encodedAfter - encodedBefore
    expect(encoded).toBeGreaterThanOrEqual(ticks - 1)
    expect(encoded).toBeLessThanOrEqual(ticks + 1)
    // The watching node reads its own status in-process: it polls every node but itself.
    expect(selfServedAfter - selfServedBefore).toBe(0)
    for (const s of twenty) {
      const ticksSeen = s.views().map((v) => v.tick)
      expect(new Set(ticksSeen).size, 'no view sent twice').toBe(ticksSeen.length)
    }
  })

  it('twenty consoles joining a running watcher share one encoded snapshot a tick', async () => {
    const [, replica] = cluster.nodes
    // The twenty streams of the test before keep the watcher running.
    const watching = streams[streams.length - 1]
    const tickBefore = watching.views().at(-1)?.tick ?? 0
    const encodedBefore = await metricSum(replica, 'tandem_console_views_encoded_total')
    const joiners = Array.from({ length: 20 }, () => new EventStream())
    streams.push(...joiners)
    await Promise.all(joiners.map((s) => s.open(replica.address)))
    await waitFor(() => joiners.every((s) => s.events.length > 0), { what: 'a first event on each of the 20 joiners' })
    const encodedAfter = await metricSum(replica, 'tandem_console_views_encoded_total')
    // Any view encoded before that count was read reaches the watching stream before the next one does.
    const lastTick = watching.views().at(-1)?.tick ?? 0
    await waitFor(() => (watching.views().at(-1)?.tick ?? 0) > lastTick, { what: 'one more view', timeoutMs: 10_000 })
    const tickAfter = (watching.views().at(-1)?.tick ?? 0) - 1
    for (const s of joiners) expect(s.events[0].event).toBe('snapshot')
    const snapshotViews = new Set(joiners.map((s) => s.views()[0].tick))
    // A view a tick, and a snapshot for each view some stream joined at: not one per stream.
    expect(encodedAfter - encodedBefore).toBeLessThanOrEqual(tickAfter - tickBefore + snapshotViews.size)
    expect(snapshotViews.size).toBeLessThan(20)
  })

  it('refuses streams past the limit with BUSY, and a closed stream frees its place', async () => {
    const [, replica] = cluster.nodes
    const open = await metricSum(replica, 'tandem_console_streams')
    const more = Array.from({ length: 64 - open }, () => new EventStream())
    streams.push(...more)
    await Promise.all(more.map((s) => s.open(replica.address)))
    expect(more.every((s) => s.status === 200)).toBe(true)
    const refused = await fetch(`http://${replica.address}/ui/api/events`)
    expect(refused.status).toBe(503)
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('BUSY')
    more[0].close()
    await waitFor(async () => (await metricSum(replica, 'tandem_console_streams')) === 63, {
      what: 'the closed stream to be let go',
    })
    const again = new EventStream()
    streams.push(again)
    await again.open(replica.address)
    expect(again.status).toBe(200)
    // The node still serves clients.
    const db = await TandemClient.connect({ servers: [masterAddr] })
    await db.put('after-streams', 'ok')
    await db.close()
  })
})
