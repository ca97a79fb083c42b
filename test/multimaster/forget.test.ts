import { TandemClient } from '@tandem/client'
import { afterEach, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { NodeProcess } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'
import { nonZero, PeerGroup } from './peers.js'

/**
 * Rule 2 of the multi-master notes, its last sentence: "A dead peer blocks
 * collection: provide 'forget peer'; it rejoins only wiped, under a new id"
 * (and rule 3: one node id is one incarnation). A peer gone for good holds
 * every tombstone pending on every node until the operator forgets it;
 * from then on its origin never links again, and a node with a fresh data
 * dir takes its place under a new origin.
 */
const groups: PeerGroup[] = []
afterEach(async () => {
  await Promise.all(groups.splice(0).map((g) => g.teardown()))
})

/** Waits long on a loaded machine: every wait is for a condition. */
const LONG = { timeoutMs: 60_000, intervalMs: 200 }

describe('forget a peer', () => {
  it('a dead peer holds tombstones until forgotten; back on its old data dir it is refused; a wiped one joins', async () => {
    const group = new PeerGroup()
    groups.push(group)
    // A refused link asks again after 1 s (5 s by default): the refusals below come sooner.
    await group.start({ size: 3, conflict: 'lww', args: ['--tune', 'peerRefusedBackoffMs=1000'] })
    const a = await group.client(0)
    const b = await group.client(1)
    for (let i = 0; i < 10; i++) await a.put(`k${i}`, `v${i}`)
    await (await group.client(2)).put('from-2', 'z')
    await group.waitConverged()
    const origins = await Promise.all([0, 1, 2].map(async (i) => (await group.status(i)).multi!.origin))
    const dead = origins[2]

    // Node 2 dies for good; the others delete keys it will never hear of.
    await group.nodes[2].kill('SIGKILL')
    for (let i = 0; i < 5; i++) await a.del(`k${i}`)
    for (let i = 5; i < 8; i++) await b.del(`k${i}`)
    const survivors = group.nodes.slice(0, 2)
    await group.waitConverged(60_000, survivors)
    await waitFor(
      async () => {
        for (const i of [0, 1]) {
          const t = (await group.status(i)).multi!.tombstones
          if (t.count !== 8 || !t.blockedBy?.includes(dead)) return false
        }
        return true
      },
      { ...LONG, what: 'both survivors to hold the 8 tombstones, waiting for the dead origin' },
    )
    const before = (await group.status(0)).multi!.tombstones.passes
    await waitFor(async () => (await group.status(0)).multi!.tombstones.passes >= before + 3, {
      ...LONG,
      what: 'three collection passes',
    })
    for (const i of [0, 1]) {
      const t = (await group.status(i)).multi!.tombstones
      expect(t.count, `node ${i}`).toBe(8)
      expect(t.collected, `node ${i}`).toBe(0)
    }

    // Bad input: clear errors (exit 2), nothing forgotten.
    const server0 = ['--server', group.nodes[0].address]
    const noYes = await runCli([...server0, 'forget', dead])
    expect(noYes.code).toBe(2)
    expect(noYes.stderr).toContain('add --yes')
    const self = await runCli([...server0, 'forget', origins[0], '--yes'])
    expect(self.code).toBe(2)
    expect(self.stderr).toContain('error INVALID')
    expect(self.stderr).toContain('cannot forget itself')
    const refusal = (p: Promise<unknown>) =>
      p.then(
        () => ({ code: 'none', message: '' }),
        (err) => err,
      )
    const unknown = await refusal(a.forget('ab'.repeat(16)))
    expect(unknown.code).toBe('INVALID')
    expect(unknown.message).toContain('unknown origin')
    expect((await refusal(a.forget('not-an-origin'))).code).toBe('INVALID')
    const live = await refusal(a.forget(origins[1]))
    expect(live.code).toBe('INVALID')
    expect(live.message).toContain('has a link up right now')
    const single = await group.startExtra([])
    const singleClient = await TandemClient.connect({ servers: [single.address], direct: true })
    const notMulti = await refusal(singleClient.forget(dead))
    await singleClient.close()
    expect(notMulti.code).toBe('INVALID')
    expect(notMulti.message).toContain('multi-master')
    expect((await group.status(0)).multi!.forgotten).toEqual([])

    // Forget it on every node reachable through the peers (the dead address does not answer).
    const forgot = await runCli([...server0, 'forget', dead, '--yes', '--all'])
    expect(forgot.code, forgot.stderr).toBe(0)
    expect(forgot.stdout.match(/ forgotten /g)?.length, forgot.stdout).toBe(2)
    await waitFor(
      async () => {
        for (const i of [0, 1]) if ((await group.status(i)).multi!.tombstones.count !== 0) return false
        return true
      },
      { ...LONG, what: 'the survivors to collect the tombstones' },
    )
    const collected = await group.waitConverged(60_000, survivors)
    expect(collected[0].digest).toBe(collected[1].digest)
    for (const s of collected) {
      expect(s.multi!.forgotten).toEqual([dead])
      expect(s.multi!.members).not.toContain(dead)
      expect(s.multi!.tombstones.collected).toBe(8)
      // Its column stays: the writes of it the survivors hold are still theirs.
      expect(s.vv[dead]).toBeGreaterThan(0)
    }
    const metrics = await (await fetch(`http://${group.nodes[0].address}/metrics`)).text()
    expect(metrics).toMatch(/^tandem_mm_forgotten_peers 1$/m)

    // Forgetting is kept in the data dir: node 1 restarted still has it.
    await group.nodes[1].stop()
    await group.nodes[1].start()
    expect((await group.status(1)).multi!.forgotten).toEqual([dead])

    // Node 2 comes back on its old data dir: refused both ways, no entry crosses.
    const heldBefore = collected.map((s) => nonZero(s.vv))
    await group.nodes[2].start()
    const c = await group.client(2)
    const mark = group.nodes.map((n) => n.logs.length)
    await a.put('after-forget', 'x')
    await waitFor(
      () =>
        c.put('from-forgotten', 'y').then(
          () => true,
          () => false,
        ),
      {
        ...LONG,
        what: 'the forgotten node to take a write',
      },
    )
    const since = (i: number, match: (l: Record<string, unknown>) => boolean) =>
      group.nodes[i].logs.slice(mark[i]).filter((l) => match(l)).length
    // After both writes, each side has refused the other on a new attempt, and said so.
    await waitFor(
      () =>
        since(0, (l) => l.msg === 'refusing a peer whose origin this node forgot') >= 1 &&
        since(0, (l) => l.msg === 'refusing peer' && l.reason === 'forgotten') >= 1 &&
        since(2, (l) => l.msg === 'peer refused this node; will retry' && l.reason === 'forgotten') >= 1,
      { ...LONG, what: 'links refused both ways after the writes' },
    )
    await waitFor(
      async () =>
        (await group.status(1)).multi!.peers.some((p) => p.origin === dead && p.reason?.startsWith('forgotten:')),
      { ...LONG, what: 'node 1, restarted, to refuse node 2 too' },
    )
    const now0 = await group.status(0)
    const linkTo2 = now0.multi!.peers.find((p) => p.origin === dead)
    expect(linkTo2?.link).toBe('refused')
    expect(linkTo2?.reason).toContain('forgotten')
    const now2 = await group.status(2)
    expect(now2.multi!.peers.some((p) => p.reason?.startsWith('forgotten:'))).toBe(true)
    expect(await a.get('from-forgotten')).toBeUndefined()
    expect(await c.get('after-forget')).toBeUndefined()
    expect(await c.get('k0')).toBe('v0') // it never heard of the deletes
    for (const i of [0, 1]) {
      const vv = nonZero((await group.status(i)).vv)
      expect(vv[dead], `node ${i}`).toBe(heldBefore[i][dead])
    }

    // A wiped data dir in its place joins under a new origin; no deleted key comes back.
    await group.nodes[2].kill('SIGKILL')
    const fresh = tempDir('tandem-mm-fresh-')
    group.dirs.push(fresh)
    const replacement = new NodeProcess(fresh.path, group.nodes[2].args, group.nodes[2].env)
    replacement.port = group.nodes[2].port
    group.nodes[2] = replacement
    await replacement.start()
    const joined = await group.waitConverged(90_000)
    const newOrigin = joined[2].multi!.origin
    expect(newOrigin).not.toBe(dead)
    expect(new Set(joined.map((s) => s.digest)).size).toBe(1)
    for (let i = 0; i < 3; i++) {
      const db = await group.client(i)
      for (let k = 0; k < 8; k++) expect(await db.get(`k${k}`), `node ${i} k${k}`).toBeUndefined()
      expect(await db.get('k9'), `node ${i}`).toBe('v9')
      expect(await db.get('after-forget'), `node ${i}`).toBe('x')
      expect(await db.get('from-forgotten'), `node ${i}`).toBeUndefined()
      expect(await db.get('from-2'), `node ${i}: a write of the forgotten origin the others held`).toBe('z')
    }

    // The newcomer holds the dead origin's writes too: it forgets it as well (--all again,
    // idempotent where done), and a new delete is collected on all three.
    const again = await runCli([...server0, 'forget', dead, '--yes', '--all'])
    expect(again.code, again.stderr).toBe(0)
    expect((await group.status(2)).multi!.forgotten).toEqual([dead])
    const collectedBefore = await Promise.all(
      [0, 1, 2].map(async (i) => (await group.status(i)).multi!.tombstones.collected),
    )
    const del9 = await a.del('k9')
    await waitFor(
      async () => {
        for (let i = 0; i < 3; i++) {
          const s = await group.status(i)
          const t = s.multi!.tombstones
          // It holds the delete, holds no tombstone, and collected one since.
          if ((s.vv[del9.origin!] ?? 0) < del9.originSeq!) return false
          if (t.count !== 0 || t.collected <= collectedBefore[i]) return false
        }
        return true
      },
      { ...LONG, what: 'the new delete to be collected on every node' },
    )
    await group.waitConverged(60_000)
  }, 300_000)

  it('a peer with a live link is forgotten only with --force, and its links are then closed and refused', async () => {
    const group = new PeerGroup()
    groups.push(group)
    await group.start({ size: 2, conflict: 'lww', args: ['--tune', 'peerRefusedBackoffMs=1000'] })
    const origin1 = (await group.status(1)).multi!.origin
    const server0 = ['--server', group.nodes[0].address]
    const refused = await runCli([...server0, 'forget', origin1, '--yes'])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain('--force')
    const forced = await runCli([...server0, 'forget', origin1, '--yes', '--force', '--json'])
    expect(forced.code, forced.stderr).toBe(0)
    const result = JSON.parse(forced.stdout) as { forgotten: string[]; closedLinks: number }
    expect(result.forgotten).toEqual([origin1])
    expect(result.closedLinks).toBeGreaterThanOrEqual(1)
    await waitFor(
      async () => {
        const peer = (await group.status(0)).multi!.peers[0]
        return peer.link === 'refused' && peer.reason?.startsWith('forgotten:')
      },
      { ...LONG, what: "node 0's link to node 1 to be refused" },
    )
    const b = await group.client(1)
    const mark = group.nodes[0].logs.length
    await b.put('from-1', 'x')
    await waitFor(
      () => group.nodes[0].logs.slice(mark).some((l) => l.msg === 'refusing a peer whose origin this node forgot'),
      { ...LONG, what: 'node 0 to refuse node 1 again after the write' },
    )
    const a = await group.client(0)
    expect(await a.get('from-1')).toBeUndefined()
  })
})
