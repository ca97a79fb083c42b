import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { nonZero, PeerGroup, type PeerStatus } from '../multimaster/peers.js'
import { ARTIFACTS, type Browser, CHROMIUM, launchChromium } from './browser.js'
import { EventStream } from './event-stream.js'

// The console on a multi-master group (--mode multi): the watcher learns
// the peers from each node's status, the feed carries one peer edge per
// direction with its link state and lag, and whether the mesh has
// converged (equal cursors and digests on every peer, as `tandem
// converged` decides); a peer SIGKILLed is still drawn, unreachable.

interface NodeView {
  key: string
  address: string
  role: string | null
  reachable: boolean
  lastSeenAt: number | null
  multi: { vv: Record<string, number>; digest: string | null } | null
}
interface EdgeView {
  from: string
  to: string
  kind: string
  state: string
  lagEntries: number | null
  lagMs: number | null
}
interface View {
  nodes: NodeView[]
  edges: EdgeView[]
  mesh: { converged: boolean; digest: string | null; peers: string[]; reason: string | null } | null
}

/** Every peer link as the nodes' statuses give it: `puller-from>puller state`. */
function linksFromStatus(statuses: PeerStatus[]): string[] {
  return statuses.flatMap((s) => (s.multi?.peers ?? []).map((p) => `${p.nodeId}>${s.nodeId} ${p.link}`)).sort()
}

function peerLinks(view: View): string[] {
  return view.edges
    .filter((e) => e.kind === 'peer')
    .map((e) => `${e.from}>${e.to} ${e.state}`)
    .sort()
}

/** What the page draws of the mesh. */
async function drawn(page: Page) {
  return page.evaluate(() => ({
    nodes: [...document.querySelectorAll('#topology .node')].map((g) => ({
      key: g.getAttribute('data-key'),
      role: g.getAttribute('data-role'),
      reachable: g.getAttribute('data-reachable') === 'true',
      text: g.textContent ?? '',
    })),
    arcs: [...document.querySelectorAll('#topology path.edge.peer')].map((p) => ({
      pair: [p.getAttribute('data-from'), p.getAttribute('data-to')].sort().join('|'),
      state: p.getAttribute('data-state'),
    })),
    mesh: document.getElementById('mesh-state')?.getAttribute('data-converged') ?? null,
    meshText: document.getElementById('mesh-state')?.textContent ?? '',
  }))
}

describe('web console on a multi-master mesh', () => {
  const group = new PeerGroup()
  const stream = new EventStream()
  let browser: Browser | undefined
  let ids: string[] = []

  beforeAll(async () => {
    await group.start({ size: 3, conflict: 'lww' })
    for (let i = 0; i < 3; i++) await (await group.client(i)).put(`k${i}`, `v${i}`)
    ids = (await group.waitConverged()).map((s) => s.nodeId)
    await stream.open(group.nodes[0].address)
  })
  afterAll(async () => {
    stream.close()
    await browser?.close()
    await group.teardown()
  })

  const last = () => stream.views().at(-1) as View | undefined

  it('pushes the peers, one edge per direction with the state and lag each node reports, and the convergence', async () => {
    const statuses = await group.waitConverged()
    const expected = linksFromStatus(statuses)
    expect(expected).toHaveLength(6)
    expect(expected.every((l) => l.endsWith(' streaming'))).toBe(true)
    const view = await waitFor(
      () => {
        const v = last()
        return v?.mesh?.converged && JSON.stringify(peerLinks(v)) === JSON.stringify(expected) ? v : null
      },
      { what: 'a view of the converged mesh with the six links status reports', timeoutMs: 20_000 },
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\nlast view: ${JSON.stringify(last())}\nstatus: ${expected}`)
    })
    expect(view.nodes.map((n) => `${n.key}@${n.address} ${n.role} ${n.reachable}`).sort()).toEqual(
      statuses.map((s, i) => `${s.nodeId}@${group.nodes[i].address} peer true`).sort(),
    )
    for (const s of statuses) {
      const n = view.nodes.find((x) => x.key === s.nodeId)!
      expect(n.multi?.digest).toBe(s.digest)
      expect(nonZero(n.multi?.vv ?? {})).toEqual(nonZero(s.vv))
    }
    expect(view.mesh).toMatchObject({ converged: true, digest: statuses[0].digest, reason: null })
    expect([...(view.mesh?.peers ?? [])].sort()).toEqual([...ids].sort())
    for (const e of view.edges) {
      expect(e.lagEntries, `${e.from}>${e.to}`).toEqual(expect.any(Number))
      expect(e.lagMs, `${e.from}>${e.to}`).toEqual(expect.any(Number))
    }
  })

  it('shows the mesh not converged while a peer is cut off and writes, and converged again once healed', async () => {
    group.isolate(2)
    await (await group.client(2)).put('only-on-2', 'x')
    const cut = await waitFor(
      () => {
        const v = last()
        const links = v ? peerLinks(v).filter((l) => l.includes(ids[2])) : []
        return v?.mesh && !v.mesh.converged && links.length === 4 && links.every((l) => !l.endsWith(' streaming'))
          ? v
          : null
      },
      { what: 'a view with node 2 cut off and the mesh not converged', timeoutMs: 20_000 },
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\nlast view: ${JSON.stringify(last())}`)
    })
    // Node 2 still answers the console: it is not converged because it holds a write the others lack.
    const s2 = await group.status(2)
    const n2 = cut.nodes.find((n) => n.key === ids[2])!
    expect(n2.reachable).toBe(true)
    expect(nonZero(n2.multi?.vv ?? {})).toEqual(nonZero(s2.vv))
    expect(cut.mesh?.reason).toMatch(/cursors/)
    expect(cut.mesh?.digest).toBeNull()

    group.healAll()
    const healed = await group.waitConverged()
    await waitFor(
      () => {
        const v = last()
        return v?.mesh?.converged && v.mesh.digest === healed[0].digest ? v : null
      },
      { what: 'the mesh converged again, at the digest status reports', timeoutMs: 20_000 },
    )
  })

  it.skipIf(!CHROMIUM)(
    'draws the mesh in the browser, then a SIGKILLed peer greyed with when it was last seen',
    async () => {
      browser = await launchChromium()
      const page = await browser.context.newPage()
      const errors: string[] = []
      page.on('pageerror', (e) => errors.push(e.message))
      await page.goto(`http://${group.nodes[0].address}/ui/`)
      const digest = (await group.status(0)).digest as string
      const before = await waitFor(
        async () => {
          const d = await drawn(page)
          return d.nodes.length === 3 && d.arcs.length === 3 && d.mesh === 'true' ? d : null
        },
        { what: 'three peers, three arcs and the mesh converged on the page', timeoutMs: 20_000, intervalMs: 100 },
      )
      expect(before.nodes.map((n) => `${n.key} ${n.role} ${n.reachable}`).sort()).toEqual(
        ids.map((id) => `${id} peer true`).sort(),
      )
      expect(before.arcs.map((a) => a.state)).toEqual([
        'streaming streaming',
        'streaming streaming',
        'streaming streaming',
      ])
      expect(before.meshText).toContain(digest.slice(0, 12))
      await page.screenshot({ path: join(ARTIFACTS, 'mesh-1280x800.png'), fullPage: true })

      await group.nodes[2].kill('SIGKILL')
      const after = await waitFor(
        async () => {
          const d = await drawn(page)
          const dead = d.nodes.find((n) => n.key === ids[2])
          return dead && !dead.reachable && d.mesh === 'false' ? d : null
        },
        { what: 'the killed peer drawn unreachable and the mesh not converged', timeoutMs: 20_000, intervalMs: 100 },
      )
      expect(after.nodes.find((n) => n.key === ids[2])?.text).toMatch(/not answering · seen/)
      expect(after.meshText).toContain(group.nodes[2].address)
      await page.screenshot({ path: join(ARTIFACTS, 'mesh-peer-down-1280x800.png'), fullPage: true })
      // The feed says the same: still drawn, with its last-seen time, and the others' links to it down.
      // (The page reads a stream of its own: this one's views may come a moment later.)
      const v = await waitFor(
        () => {
          const view = last() as View | undefined
          const peer = view?.nodes.find((n) => n.key === ids[2])
          return view && peer && !peer.reachable && view.mesh?.converged === false ? view : null
        },
        { what: 'the feed to show the killed peer unreachable', timeoutMs: 20_000 },
      )
      const dead = v.nodes.find((n) => n.key === ids[2])!
      expect(dead.reachable).toBe(false)
      expect(dead.lastSeenAt).toEqual(expect.any(Number))
      expect(v.mesh).toMatchObject({ converged: false, digest: null })
      await waitFor(
        () => {
          const links = peerLinks(last() as View).filter((l) => l.startsWith(`${ids[2]}>`))
          return links.length === 2 && links.every((l) => !l.endsWith(' streaming'))
        },
        { what: 'the live peers to report their links to the dead one down', timeoutMs: 20_000 },
      )
      expect(errors).toEqual([])
    },
  )
})
