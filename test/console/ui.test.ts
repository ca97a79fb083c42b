import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { afterAll, describe, expect, it } from 'vitest'
import { FailoverGroup, statusOf } from '../failover/group.js'
import type { NodeProcess } from '../helpers/node-process.js'
import { startNode } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'
import { ARTIFACTS, type Browser, CHROMIUM, launchChromium, NO_CHROMIUM_MESSAGE } from './browser.js'

// The web console at /ui in a real headless Chromium, against real
// tandem-server processes: what the page shows is checked from its DOM
// against each node's own /status.

if (!CHROMIUM) console.warn(`console UI tests skipped: ${NO_CHROMIUM_MESSAGE}`)

interface History {
  epoch: number
  startSeq: number
  by: string
  at?: number
  why?: string
}

/** What the page draws: its nodes and its (non-stale) replication edges. */
async function drawn(page: Page) {
  return page.evaluate(() => {
    const nodes = [...document.querySelectorAll('#topology .node')].map((g) => ({
      key: g.getAttribute('data-key'),
      address: g.getAttribute('data-address'),
      role: g.getAttribute('data-role'),
      reachable: g.getAttribute('data-reachable') === 'true',
      master: g.classList.contains('master'),
    }))
    const edges = [...document.querySelectorAll('#topology path.edge:not(.stale)')].map(
      (p) => `${p.getAttribute('data-from')}>${p.getAttribute('data-to')}`,
    )
    const lags = [...document.querySelectorAll('#links tbody tr')].map((tr) => ({
      edge: `${tr.getAttribute('data-from')}>${tr.getAttribute('data-to')}`,
      entries: tr.querySelector('.lag-entries')?.textContent ?? '',
      ms: tr.querySelector('.lag-ms')?.textContent ?? '',
    }))
    return {
      nodes,
      edges: edges.sort(),
      lags,
      master: document.getElementById('master-address')?.textContent ?? '',
      epoch: document.getElementById('master-epoch')?.textContent ?? '',
    }
  })
}

/** Every replication edge as the nodes' own statuses give it: upstream node id > downstream node id. */
async function edgesFromStatus(nodes: NodeProcess[]): Promise<string[]> {
  const statuses = await Promise.all(nodes.map((n) => statusOf(n)))
  return statuses.flatMap((s) => s.replicas.map((r) => `${s.nodeId}>${r.nodeId}`)).sort()
}

describe.skipIf(!CHROMIUM)('web console in headless Chromium', () => {
  const group = new FailoverGroup()
  let browser: Browser | undefined
  const cleanups: (() => Promise<void> | void)[] = []
  afterAll(async () => {
    await browser?.close()
    await group.teardown()
    for (const c of cleanups) await c()
  })

  it('draws the group from a leaf replica, then shows the new master within 3 s of the election', async () => {
    await group.start({ size: 3 })
    const master = await group.waitForMaster()
    const standby = group.nodes.find((n) => n !== master)!
    // A replica of a replica, outside the group: the console is loaded from
    // it, so everything beyond its own upstream is found by following names.
    const leaf = await group.extraReplica(standby.address)
    const db = await group.client()
    for (let i = 0; i < 50; i++) await db.put(`k${i}`, `v${i}`, { w: 'majority' })
    const all = [...group.nodes, leaf]
    const ids = new Map(await Promise.all(all.map(async (n) => [n.address, (await statusOf(n)).nodeId] as const)))
    // Wait until every replica streams, so the edges below are settled.
    await waitFor(async () => (await edgesFromStatus(all)).length === 3, { what: 'three replication links' })

    browser = await launchChromium()
    const page = await browser.context.newPage()
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    await page.goto(`http://${leaf.address}/ui/`)

    const expected = await edgesFromStatus(all)
    const first = await waitFor(
      async () => {
        const d = await drawn(page)
        const ok =
          d.nodes.length === 4 &&
          d.nodes.every((n) => n.reachable) &&
          JSON.stringify(d.edges) === JSON.stringify(expected) &&
          d.lags.length === 3
        return ok ? d : null
      },
      { what: 'the page to draw 4 nodes and the 3 links that status reports', timeoutMs: 20_000, intervalMs: 100 },
    ).catch(async (err) => {
      throw new Error(`${(err as Error).message}\npage: ${JSON.stringify(await drawn(page))}\nstatus: ${expected}`)
    })
    // The master is the real master, by address and by node id.
    expect(first.master).toBe(master.address)
    const drawnMaster = first.nodes.filter((n) => n.master)
    expect(drawnMaster.map((n) => n.address)).toEqual([master.address])
    expect(drawnMaster[0].key).toBe(ids.get(master.address))
    // Every node is drawn under its own id, at its own address.
    expect(first.nodes.map((n) => `${n.key}@${n.address}`).sort()).toEqual(
      all.map((n) => `${ids.get(n.address)}@${n.address}`).sort(),
    )
    // Lag numbers for every link, in entries and ms.
    for (const lag of first.lags) {
      expect(lag.entries, lag.edge).toMatch(/^\d[\d,]*$/)
      expect(lag.ms, lag.edge).toMatch(/^\d[\d,]*$/)
    }
    // The master's epoch began at a recorded time, for a recorded reason.
    const before = await statusOf(master)
    const firstEpoch = (before.history as History[]).at(-1)!
    expect(firstEpoch.why).toBe('election')
    expect(firstEpoch.at).toEqual(expect.any(Number))
    expect(first.epoch).toBe(String(before.epoch))
    await page.locator('#epochs tbody tr').first().waitFor()
    expect(await page.locator(`#epochs tr[data-epoch="${before.epoch}"]`).textContent()).toContain('election')

    await page.screenshot({ path: join(ARTIFACTS, 'group-1280x800.png'), fullPage: true })
    await page.setViewportSize({ width: 390, height: 844 })
    await page.screenshot({ path: join(ARTIFACTS, 'group-phone.png'), fullPage: true })
    await page.setViewportSize({ width: 1280, height: 800 })

    // Keyboard: the nodes of the picture are reachable with Tab and selected with Enter.
    const focusable = await page.locator('#topology .node[tabindex="0"]').count()
    expect(focusable).toBe(4)
    await page.locator(`#topology .node[data-key="${ids.get(leaf.address)}"]`).focus()
    await page.keyboard.press('Enter')
    await waitFor(() => page.locator(`#nodes tr.selected[data-key="${ids.get(leaf.address)}"]`).count(), {
      what: 'Enter on a node to select its row',
      timeoutMs: 5000,
    })

    // SIGKILL the master; the survivors elect one.
    await master.kill('SIGKILL')
    const survivors = group.nodes.filter((n) => n !== master)
    await group.waitForMaster(survivors, 'a new master among the survivors')
    // The page must show the master the group has now, and its epoch, at the
    // latest 3 s after that master began the epoch (its history records when,
    // on this same machine's clock). The target is read again on every pass:
    // a contested election can be followed by another one.
    let target: { node: NodeProcess; epoch: number; at: number } | undefined
    let shown: Awaited<ReturnType<typeof drawn>> | undefined
    for (const giveUp = Date.now() + 20_000; Date.now() < giveUp; await new Promise((r) => setTimeout(r, 50))) {
      const current = await group.writableMaster(survivors)
      const s = current ? await statusOf(current).catch(() => null) : null
      const began = (s?.history as History[] | undefined)?.at(-1)
      if (current && s && began?.epoch === s.epoch) {
        expect(began.why).toBe('election')
        expect(began.at).toEqual(expect.any(Number))
        target = { node: current, epoch: s.epoch, at: began.at as number }
      }
      if (!target) continue
      const d = await drawn(page)
      if (d.master === target.node.address && d.epoch === String(target.epoch)) {
        shown = d
        break
      }
      if (Date.now() > target.at + 3000) {
        throw new Error(
          `the page did not show ${target.node.address}, master of epoch ${target.epoch} since ${target.at}, within 3 s (now ${Date.now()})\npage: ${JSON.stringify(d)}\n${await group.describe()}`,
        )
      }
    }
    if (!shown || !target) throw new Error(`no new master shown within 20 s\n${await group.describe()}`)
    const next = target.node
    console.log(`console: new master shown ${Date.now() - target.at} ms after it began epoch ${target.epoch}`)
    expect(shown.nodes.filter((n) => n.master).map((n) => n.address)).toEqual([next.address])
    // The dead master is still drawn, greyed, with when it was last seen.
    const dead = await waitFor(
      async () => (await drawn(page)).nodes.find((n) => n.address === master.address && !n.reachable),
      { what: 'the killed master drawn as not answering', timeoutMs: 10_000 },
    )
    expect(dead.key).toBe(ids.get(master.address))
    await expect(page.locator(`#topology .node[data-key="${dead.key}"]`).textContent()).resolves.toMatch(
      /not answering/,
    )
    await expect(page.locator(`#epochs tr[data-epoch="${target.epoch}"]`).textContent()).resolves.toContain('election')
    await page.screenshot({ path: join(ARTIFACTS, 'after-failover-1280x800.png'), fullPage: true })
    await page.emulateMedia({ colorScheme: 'dark' })
    await page.screenshot({ path: join(ARTIFACTS, 'after-failover-dark.png'), fullPage: true })
    expect(errors).toEqual([])
  })

  it('with --auth-token shows nothing of the group without the token', async () => {
    const token = 'console-secret-token'
    const dir = tempDir('tandem-console-auth-')
    const node = await startNode(dir.path, ['--auth-token', token])
    cleanups.push(
      () => node.stop(),
      () => dir.remove(),
    )
    const nodeId = await fetch(`http://${node.address}/status`, { headers: { authorization: `Bearer ${token}` } })
      .then((r) => r.json())
      .then((s: { nodeId: string }) => s.nodeId)
    // The API refuses without the token; the static page itself holds no data.
    expect((await fetch(`http://${node.address}/ui/api/events`)).status).toBe(401)
    expect((await fetch(`http://${node.address}/ui/api/self`)).status).toBe(401)
    expect(
      (await fetch(`http://${node.address}/ui/api/self`, { headers: { authorization: 'Bearer wrong' } })).status,
    ).toBe(401)

    browser ??= await launchChromium()
    const page = await browser.context.newPage()
    await page.goto(`http://${node.address}/ui/`)
    await page.locator('#login').waitFor({ state: 'visible', timeout: 10_000 })
    const hidden = async () => {
      expect(await page.locator('#dashboard').isVisible()).toBe(false)
      const text = await page.evaluate(() => document.body.textContent ?? '')
      expect(text).not.toContain(node.address)
      expect(text).not.toContain(nodeId)
      expect(await page.locator('#topology .node').count()).toBe(0)
    }
    await hidden()
    await page.screenshot({ path: join(ARTIFACTS, 'login.png') })

    // A wrong token: refused, still nothing.
    await page.locator('#token').fill('not-the-token')
    await page.keyboard.press('Enter')
    await waitFor(async () => (await page.locator('#login-error').textContent())?.includes('refused'), {
      what: 'the page to say the token was refused',
      timeoutMs: 10_000,
    })
    await hidden()

    // The right token: the node appears, as master.
    await page.locator('#token').fill(token)
    await page.keyboard.press('Enter')
    await waitFor(async () => (await page.locator('#master-address').textContent()) === node.address, {
      what: 'the page to show the node once signed in',
      timeoutMs: 10_000,
    })
    expect(await page.evaluate(() => sessionStorage.getItem('tandem.token'))).toBe(token)
    // Signing out clears the page again.
    await page.locator('#sign-out').click()
    await page.locator('#login').waitFor({ state: 'visible', timeout: 5000 })
    await hidden()
  })
})
