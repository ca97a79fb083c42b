import { afterAll, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import type { NodeProcess } from '../helpers/node-process.js'
import { waitFor } from '../helpers/wait.js'
import { Cluster, errorOf, metricSum, statusOf, waitCaughtUp } from './cluster.js'

describe('read-only replicas, routing and run-time re-pointing', () => {
  const cluster = new Cluster()
  afterAll(() => cluster.teardown())
  let master: NodeProcess
  let r1: NodeProcess
  let r2: NodeProcess
  let sub: NodeProcess

  it('a write to a replica, or to a replica of a replica, gets READONLY naming the master', async () => {
    // Rule: replicas are read-only; READONLY carries the master's address
    // (as the upstream reported it, also two levels down).
    ;({ master, r1, r2, sub } = await cluster.startTree())
    for (const node of [r1, sub]) {
      const direct = await cluster.client({ servers: [node.address], direct: true })
      const err = await errorOf(direct.put('k', 'v'))
      expect(err?.code).toBe('READONLY')
      expect(err?.details.master).toBe(master.address)
      expect(err?.message).toContain(master.address)
      expect(await errorOf(direct.del('k'))).toMatchObject({ code: 'READONLY' })
      expect(await errorOf(direct.batch([{ type: 'put', key: 'a', value: '1' }]))).toMatchObject({ code: 'READONLY' })
    }
    const m = await cluster.client({ servers: [master.address], direct: true })
    expect(await m.get('k')).toBeUndefined()
  })

  it('the CLI pointed at a replica prints `error READONLY: ...` naming the master and exits 3', async () => {
    const result = await runCli(['--server', r1.address, '--direct', 'put', 'k', 'v'])
    expect(result.stdout).toBe('')
    expect(result.stderr).toMatch(/^error READONLY: /)
    expect(result.stderr).toContain(master.address)
    expect(result.code).toBe(3)
  })

  it('the SDK given only a replica follows to the master and the write succeeds', async () => {
    const db = await cluster.client({ servers: [r1.address] })
    const { seq } = await db.put('routed', 'yes')
    expect(seq).toBeGreaterThan(0)
    const m = await cluster.client({ servers: [master.address], direct: true })
    expect(await m.get('routed')).toBe('yes')
    // The CLI without --direct routes the same way.
    const cli = await runCli(['--server', r1.address, 'put', 'routed-cli', 'yes'])
    expect(cli.stdout.trim()).toBe('OK')
    expect(await m.get('routed-cli')).toBe('yes')
  })

  it("readFrom: 'replica' reads are served by the replicas, not the master", async () => {
    const writer = await cluster.client({ servers: [master.address] })
    await writer.put('shared', 'value', { w: 2 })
    const reader = await cluster.client({ servers: [master.address], readFrom: 'replica' })
    const gets = async (n: NodeProcess) => metricSum(n, 'tandem_requests_total', 'op="get"')
    const before = await Promise.all([master, r1, r2].map(gets))
    for (let i = 0; i < 20; i++) expect(await reader.get('shared')).toBe('value')
    const after = await Promise.all([master, r1, r2].map(gets))
    expect(after[0]).toBe(before[0])
    expect(after[1] - before[1] + (after[2] - before[2])).toBe(20)
    // Writes from the same client still go to the master.
    await reader.put('from-reader', 'x')
    expect(await writer.get('from-reader')).toBe('x')
  })

  it('`tandem replicaof no one` makes a replica a master in a new epoch', async () => {
    // Rule: a promotion starts epoch + 1 at seq + 1.
    await waitCaughtUp(master, [r1, r2, sub])
    const before = await statusOf(r2)
    const result = await runCli(['--server', r2.address, 'replicaof', 'no', 'one'])
    expect(result.stdout.trim()).toBe('OK')
    expect(result.code).toBe(0)
    const after = await statusOf(r2)
    expect(after.role).toBe('master')
    expect(after.readOnly).toBe(false)
    expect(after.upstream).toBeNull()
    expect(after.epoch).toBe(before.epoch + 1)
    expect(after.history.at(-1)).toMatchObject({ epoch: before.epoch + 1, startSeq: before.seq + 1, by: before.nodeId })
    const direct = await cluster.client({ servers: [r2.address], direct: true })
    expect((await direct.put('on-r2', 'promoted')).seq).toBe(before.seq + 1)
  })

  it('`tandem replicaof HOST:PORT` re-points a node at run time', async () => {
    // Rule: a node re-pointed at an upstream whose history extends its own
    // resumes from its log (partial resync) and follows the new stream.
    const before = await statusOf(sub)
    const result = await runCli(['--server', sub.address, 'replicaof', r2.address])
    expect(result.stdout.trim()).toBe('OK')
    await waitFor(async () => (await statusOf(sub)).link?.state === 'streaming', { what: 'the re-pointed link' })
    const db = await cluster.client({ servers: [r2.address], direct: true })
    await db.put('after-repoint', 'followed')
    const direct = await cluster.client({ servers: [sub.address], direct: true })
    await waitFor(async () => (await direct.get('after-repoint')) === 'followed', { what: 'the write to reach sub' })
    const after = await statusOf(sub)
    expect(after.upstream).toBe(r2.address)
    expect(after.epoch).toBe((await statusOf(r2)).epoch)
    expect(after.sync.fullSyncs).toBe(before.sync.fullSyncs)
    expect(after.sync.partialSyncs).toBe(before.sync.partialSyncs + 1)
    expect(await direct.get('on-r2')).toBe('promoted')
    // Its READONLY now names its new master.
    const err = await errorOf(direct.put('x', 'y'))
    expect(err?.details.master).toBe(r2.address)
    // r1, which fed it, lets it go and still follows the old master.
    await waitFor(async () => (await statusOf(r1)).replicas.length === 0, { what: 'r1 to drop sub' })
    expect((await statusOf(r1)).upstream).toBe(master.address)
  })
})
