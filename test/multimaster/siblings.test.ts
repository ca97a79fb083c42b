import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { TandemError } from '@tandem/client'
import { afterEach, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { waitFor } from '../helpers/wait.js'
import { PeerGroup } from './peers.js'

/**
 * vclock: concurrent writes are kept as siblings, read together with one
 * opaque context, replaced together by a write with that context; capped
 * by --max-siblings, the oldest going to the conflicts file (rule 10).
 */
const groups: PeerGroup[] = []
afterEach(async () => {
  await Promise.all(groups.splice(0).map((g) => g.teardown()))
})

function conflictsFile(dir: string): { key: string; dropped: { value: string }[] }[] {
  const file = join(dir, 'conflicts', 'conflicts.jsonl')
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line))
}

describe('vclock siblings', () => {
  it('100 concurrent writers on one key leave at most --max-siblings values; the dropped ones are in the conflicts file', async () => {
    const group = new PeerGroup()
    groups.push(group)
    await group.start({ size: 2, conflict: 'vclock', args: ['--max-siblings', '5'] })
    const clients = await Promise.all([...Array(10).keys()].map((i) => group.client(i % 2)))
    // 100 writers, none of which has read the key: every write is concurrent with the others.
    const writers = [...Array(100).keys()]
    await Promise.all(writers.map((w) => clients[w % 10].put('hot', `writer-${w}`)))
    await group.waitConverged()
    // Past the cap through peers' writes, a node trims with a write of its own: wait for that to settle.
    await waitFor(
      async () => {
        const all = await Promise.all([0, 1].map(async (i) => (await group.client(i)).getAll('hot')))
        return all.every((r) => r.values.length <= 5 && r.values.length > 0)
      },
      { what: 'both nodes to hold at most 5 values' },
    )
    const statuses = await group.waitConverged()
    const kept = (await clients[0].getAll('hot')).values.map(String)
    expect(kept.length).toBeLessThanOrEqual(5)
    expect(kept.length).toBeGreaterThan(0)
    const dropped = () =>
      group.dirs
        .slice(0, 2)
        .flatMap((d) => conflictsFile(d.path))
        .filter((line) => line.key === 'hot')
        .flatMap((line) => line.dropped.map((s) => s.value))
    // Every writer's value is kept or was written to a conflicts file (appended as the drops
    // happen, so wait for the last lines): nothing vanished silently.
    const missing = () => writers.filter((w) => !kept.includes(`writer-${w}`) && !dropped().includes(`writer-${w}`))
    await waitFor(() => missing().length === 0, { what: 'every dropped value in a conflicts file' }).catch(() => {
      throw new Error(`values neither kept nor in a conflicts file: ${missing().join(', ')}`)
    })
    const droppedCount = statuses.reduce((n, s) => n + s.multi!.siblings.dropped, 0)
    expect(droppedCount).toBeGreaterThanOrEqual(100 - kept.length)
  })

  it('getAll gives the values and a context; get fails with SIBLINGS; a write with the context replaces them', async () => {
    const group = new PeerGroup()
    groups.push(group)
    await group.start({ size: 2, conflict: 'vclock' })
    const a = await group.client(0)
    const b = await group.client(1)
    group.isolate(0)
    await a.put('cart', 'apples')
    await b.put('cart', 'pears')
    group.healAll()
    await group.waitConverged()
    const read = await a.getAll('cart')
    expect([...read.values].sort()).toEqual(['apples', 'pears'])
    const err = await a.get('cart').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TandemError)
    expect((err as TandemError).code).toBe('SIBLINGS')
    expect([...((err as TandemError).details.values ?? [])].sort()).toEqual(['apples', 'pears'])
    expect((err as TandemError).details.context).toBe(read.context)
    // A write with the context replaces both; one without adds a sibling.
    await b.put('cart', 'apples+pears', { context: read.context })
    await group.waitConverged()
    expect(await a.get('cart')).toBe('apples+pears')
    await a.put('cart', 'blind')
    expect([...(await a.getAll('cart')).values].sort()).toEqual(['apples+pears', 'blind'])
    // A delete with the context leaves nothing, everywhere.
    await a.del('cart', { context: (await a.getAll('cart')).context })
    await group.waitConverged()
    expect(await b.getAll('cart')).toEqual({ values: [], context: expect.any(String) })
    // A context that no read made is refused.
    await expect(a.put('cart', 'x', { context: 'not a context' })).rejects.toMatchObject({ code: 'INVALID' })
  })

  it('the CLI prints siblings one per line, gives {values, context} with --json, and puts with --context; converged checks every node in one command', async () => {
    const group = new PeerGroup()
    groups.push(group)
    await group.start({ size: 2, conflict: 'vclock' })
    group.isolate(0)
    await (await group.client(0)).put('k', 'left')
    await (await group.client(1)).put('k', 'right')
    const both = ['--server', group.nodes.map((n) => n.address).join(',')]
    // Cut apart, each holds a write the other lacks: not converged, exit 1, each node's digest shown.
    const apart = await runCli([...both, 'converged'])
    expect(apart.code).toBe(1)
    expect(apart.stdout).toMatch(/NOT converged\n$/)
    expect(apart.stdout.split('\n').filter((l) => l.includes(' digest ')).length).toBe(2)
    group.healAll()
    const together = await runCli([...both, '--json', 'converged', '--timeout', '60000'])
    expect(together.code).toBe(0)
    const report = JSON.parse(together.stdout)
    expect(report.converged).toBe(true)
    expect(report.nodes.map((n: { digest: string }) => n.digest)).toEqual([
      report.nodes[0].digest,
      report.nodes[0].digest,
    ])
    await group.waitConverged()
    const server = ['--server', group.nodes[0].address, '--direct']
    const plain = await runCli([...server, 'get', 'k'])
    expect(plain.code).toBe(0)
    expect(plain.stdout.split('\n').filter(Boolean).sort()).toEqual(['left', 'right'])
    const json = await runCli([...server, '--json', 'get', 'k'])
    const parsed = JSON.parse(json.stdout)
    expect([...parsed.values].sort()).toEqual(['left', 'right'])
    expect(typeof parsed.context).toBe('string')
    // A key counts once however many values it holds, and mget prints each
    // value as scan does (the key repeated) next to a key holding one.
    expect((await runCli([...server, 'put', 'one', 'v'])).code).toBe(0)
    const count = await runCli([...server, 'count'])
    expect(count).toMatchObject({ code: 0, stdout: '2\n' })
    expect((await runCli([...server, 'scan'])).stdout.split('\n').filter(Boolean)).toHaveLength(3)
    const mget = await runCli([...server, 'mget', 'k', 'one', 'none'])
    expect(mget.code, mget.stderr).toBe(0)
    expect(mget.stdout.split('\n').filter(Boolean).sort()).toEqual(['k\tleft', 'k\tright', 'none', 'one\tv'])
    const mgetJson = await runCli([...server, '--json', 'mget', 'k', 'one'])
    const rows = mgetJson.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(rows[0]).toMatchObject({ key: 'k', value: null, context: parsed.context })
    expect([...rows[0].values].sort()).toEqual(['left', 'right'])
    expect(rows[1]).toEqual({ key: 'one', value: 'v' })
    // The modification seq is for compare-and-set, which multi-master refuses: --meta says so.
    const meta = await runCli([...server, 'get', 'one', '--meta'])
    expect(meta.code).toBe(2)
    expect(meta.stderr).toMatch(
      /^error INVALID: get with meta .* is not kept under multi-master \(conflict policy vclock\)/,
    )

    const put = await runCli([...server, 'put', 'k', 'merged', '--context', parsed.context])
    expect(put).toMatchObject({ code: 0, stdout: 'OK\n' })
    expect((await runCli([...server, 'get', 'k'])).stdout).toBe('merged\n')

    // status: mode, policy and digest, each peer with its link and lag, cursors, tombstones and siblings.
    await group.waitConverged()
    const status = await runCli([...server, 'status'])
    expect(status.code).toBe(0)
    const digest = (await group.status(0)).digest as string
    expect(status.stdout).toMatch(new RegExp(`^mode multi {2}conflict vclock {2}origin \\S+ {2}digest ${digest}$`, 'm'))
    expect(status.stdout).toMatch(/^peer \S+ \S+ {2}streaming {2}lag 0 entries \/ \d+ ms/m)
    expect(status.stdout.match(/^cursor \S+ \d+$/gm)?.length).toBe(2)
    expect(status.stdout).toMatch(/^tombstones \d+ pending/m)
    expect(status.stdout).toMatch(/^siblings 0 keys \(most \d+\), \d+ dropped {2}lww lost \d+$/m)
  })
})
