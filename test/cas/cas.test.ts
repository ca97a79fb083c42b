import { join } from 'node:path'
import { TandemClient, TandemError } from '@tandem/client'
import { afterAll, describe, expect, it } from 'vitest'
import { FailoverGroup, statusOf } from '../failover/group.js'
import { runCli } from '../helpers/cli.js'
import { type NodeProcess, startNode } from '../helpers/node-process.js'
import { readOffline } from '../helpers/offline-store.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'

/** The CONFLICT a call failed with (fails the test on anything else, or on success). */
async function conflict(call: Promise<unknown>): Promise<TandemError> {
  const err = await call.then(
    () => null,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(TandemError)
  expect((err as TandemError).code).toBe('CONFLICT')
  return err as TandemError
}

/** One ifSeq increment, retried on CONFLICT until it lands; returns how many times it was refused. */
async function increment(db: TandemClient, key: string, firstTry: { seq: number; value: number }): Promise<number> {
  let refused = 0
  let seen = firstTry
  for (;;) {
    try {
      await db.put(key, String(seen.value + 1), { ifSeq: seen.seq })
      return refused
    } catch (err) {
      if (!(err instanceof TandemError && err.code === 'CONFLICT')) throw err
      refused++
      const now = await db.get(key, { meta: true })
      seen = now === undefined ? { seq: 0, value: 0 } : { seq: now.seq, value: Number(now.value) }
    }
  }
}

describe('compare-and-set', () => {
  const dir = tempDir('tandem-cas-')
  const nodes: NodeProcess[] = []
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()))
    dir.remove()
  })

  it('50 concurrent ifSeq increments of one counter end at exactly 50, the refused ones written nowhere', async () => {
    const node = await startNode(join(dir.path, 'counter'))
    nodes.push(node)
    const clients = await Promise.all(
      Array.from({ length: 5 }, () => TandemClient.connect({ servers: [node.address] })),
    )
    // Every increment starts from "absent" (ifSeq 0): exactly one of the 50 first tries can hold.
    const refusals = await Promise.all(
      Array.from({ length: 50 }, (_, i) => increment(clients[i % 5], 'counter', { seq: 0, value: 0 })),
    )
    const refused = refusals.reduce((a, b) => a + b, 0)
    expect(refused).toBeGreaterThanOrEqual(49)
    const final = await clients[0].get('counter', { meta: true })
    expect(final?.value).toBe('50')
    await Promise.all(clients.map((c) => c.close()))
    // The log holds exactly the 50 accepted writes, 1 to 50 in order; the final seq is the key's.
    await node.stop()
    const log = await readOffline(node.dataDir)
    const writes = log.entries.filter((e) => e.ops.some((op) => op[1] === 'counter'))
    expect(writes.map((e) => e.ops[0][2])).toEqual(Array.from({ length: 50 }, (_, i) => String(i + 1)))
    expect(log.lastSeq).toBe(50)
    expect(final?.seq).toBe(50)
  })

  it('ifSeq, ifAbsent and ifPresent on put, del and batch; CONFLICT names the key and its seq; the CLI exits 4', async () => {
    const node = await startNode(join(dir.path, 'rules'))
    nodes.push(node)
    const db = await TandemClient.connect({ servers: [node.address] })
    const first = await db.put('k', 'v1', { ifAbsent: true })
    expect(await db.get('k', { meta: true })).toEqual({ value: 'v1', seq: first.seq })
    const taken = await conflict(db.put('k', 'v2', { ifAbsent: true }))
    expect(taken.details).toMatchObject({ key: 'k', seq: first.seq })
    expect((await conflict(db.put('k', 'v2', { ifSeq: 0 }))).details.seq).toBe(first.seq)
    expect((await conflict(db.put('k', 'v2', { ifSeq: first.seq + 1 }))).details.seq).toBe(first.seq)
    const second = await db.put('k', 'v2', { ifSeq: first.seq })
    expect(await db.get('k')).toBe('v2')
    await conflict(db.del('k', { ifSeq: first.seq }))
    await conflict(db.put('nothing', 'x', { ifPresent: true }))
    await conflict(db.del('nothing', { ifPresent: true }))
    expect(await db.get('nothing')).toBeUndefined()
    // A batch is all or nothing: one condition that fails leaves every key as it was, and no log entry.
    const before = (await statusOf(node)).seq
    await conflict(
      db.batch([
        { type: 'put', key: 'other', value: 'x' },
        { type: 'del', key: 'k', ifSeq: first.seq },
      ]),
    )
    expect(await db.get('other')).toBeUndefined()
    expect(await db.get('k')).toBe('v2')
    expect((await statusOf(node)).seq).toBe(before)
    const batched = await db.batch([
      { type: 'put', key: 'other', value: 'x', ifAbsent: true },
      { type: 'del', key: 'k', ifSeq: second.seq },
    ])
    expect(await db.get('k')).toBeUndefined()
    expect(await db.get('other', { meta: true })).toEqual({ value: 'x', seq: batched.seq })
    // A deleted key is absent again: ifSeq 0 holds.
    await db.put('k', 'v3', { ifSeq: 0 })
    // Conditions see the writes committed in the same group before them: of two ifAbsent puts sent together, one lands.
    const race = await Promise.allSettled([db.put('r', 'a', { ifAbsent: true }), db.put('r', 'b', { ifAbsent: true })])
    expect(race.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
    await expect(db.put('k', 'x', { ifSeq: -1 })).rejects.toThrow(TypeError)
    await db.close()

    const server = ['--server', node.address]
    const meta = await runCli([...server, 'get', 'other', '--meta'])
    expect(meta).toMatchObject({ code: 0, stdout: `${batched.seq}\tx\n` })
    const refused = await runCli([...server, 'put', 'other', 'y', '--if-absent'])
    expect(refused.code).toBe(4)
    expect(refused.stderr).toMatch(/^error CONFLICT: key "other" exists/)
    expect((await runCli([...server, 'put', 'other', 'y', '--if-seq', String(batched.seq), '--json'])).code).toBe(0)
    expect((await runCli([...server, 'del', 'other', '--if-seq', String(batched.seq)])).code).toBe(4)
    expect((await runCli([...server, 'get', 'other'])).stdout).toBe('y\n')
    expect((await runCli([...server, 'get', 'other', '--if-absent'])).code).toBe(2)
  })
})

describe('compare-and-set across a fail-over', () => {
  const group = new FailoverGroup()
  afterAll(() => group.teardown())

  it('keys keep their modification seqs on the replicas and on the new master after the master is killed', async () => {
    await group.start({ size: 3 })
    const master = await group.waitForMaster()
    const db = await group.client()
    const writes = []
    for (let i = 0; i < 20; i++) writes.push(await db.put(`c${i}`, `v${i}`, { ifAbsent: true, w: 'majority' }))
    const bumped = await db.put('c0', 'bumped', { ifSeq: writes[0].seq, w: 'majority' })
    // Every replica stores the same modification seq as the master.
    for (const node of group.nodes.filter((n) => n !== master)) {
      const direct = await TandemClient.connect({ servers: [node.address], direct: true })
      await waitFor(async () => (await statusOf(node)).seq >= bumped.seq, { what: 'the replica to catch up' })
      expect(await direct.get('c0', { meta: true })).toEqual({ value: 'bumped', seq: bumped.seq })
      expect(await direct.get('c5', { meta: true })).toEqual({ value: 'v5', seq: writes[5].seq })
      await direct.close()
    }
    await master.kill('SIGKILL')
    await group.waitForMaster(
      group.nodes.filter((n) => n !== master),
      'a new master',
    )
    // The new master holds the same seqs, so conditions written against the old master still hold (or not).
    await waitFor(
      () =>
        db.put('c5', 'after', { ifSeq: writes[5].seq }).then(
          () => true,
          (err) => {
            if (err instanceof TandemError && err.code === 'CONFLICT') throw err
            return false
          },
        ),
      { what: 'a conditional write on the new master' },
    )
    expect(await db.get('c5')).toBe('after')
    const stale = await conflict(db.put('c0', 'stale', { ifSeq: writes[0].seq }))
    expect(stale.details.seq).toBe(bumped.seq)
    await conflict(db.put('c1', 'again', { ifAbsent: true }))
  })
})
