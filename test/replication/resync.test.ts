import { createRequire } from 'node:module'
import { join } from 'node:path'
import { TandemClient } from '@tandem/client'
import { afterAll, describe, expect, it } from 'vitest'
import { REPO_ROOT } from '../helpers/node-process.js'
import { waitFor } from '../helpers/wait.js'
import { Cluster, firstDifference, metricSum, scanAll, statusOf, WriteLoad, waitCaughtUp } from './cluster.js'

// `level` is the server package's dependency, not the repo root's.
const { Level } = createRequire(join(REPO_ROOT, 'packages/server/package.json'))('level') as typeof import('level')

describe('resync after a replica crash', () => {
  const cluster = new Cluster()
  afterAll(() => cluster.teardown())

  it('a replica killed with SIGKILL mid-stream resumes by partial resync and converges', async () => {
    // Rule: a downstream whose position is still in the upstream's log, with
    // the same history, gets CONTINUE, never a full sync.
    const master = await cluster.start()
    const replica = await cluster.start(['--replicaof', master.address])
    const load = await new WriteLoad([master.address], { clients: 4, inFlight: 4, keySpace: 2000 }).start()
    // Progress deadlines are generous: a loaded machine may write slowly.
    await waitFor(async () => (await statusOf(replica)).seq > 3000, {
      what: 'the replica to apply 3,000 entries',
      timeoutMs: 60_000,
    })
    const servedBefore = (await statusOf(master)).sync
    await replica.kill('SIGKILL')
    const seqAtKill = (await statusOf(master)).seq
    // Writes go on while it is down, so it restarts behind.
    await waitFor(async () => (await statusOf(master)).seq > seqAtKill + 2000, {
      what: '2,000 more writes',
      timeoutMs: 60_000,
    })
    await replica.start()
    await waitFor(async () => (await statusOf(replica)).link?.state === 'streaming', { what: 'the link to stream' })
    await waitFor(async () => (await statusOf(master)).replicas.some((r) => r.lagEntries < 1000), {
      what: 'the replica to catch up while writes continue',
      timeoutMs: 60_000,
    })
    await load.stop()
    expect(load.failed).toBe(0)

    const head = await waitCaughtUp(master, [replica])
    const after = await statusOf(replica)
    expect(after.sync.fullSyncs).toBe(0)
    expect(after.sync.partialSyncs).toBeGreaterThanOrEqual(1)
    expect(await metricSum(replica, 'tandem_full_syncs_total')).toBe(0)
    expect(await metricSum(replica, 'tandem_partial_syncs_total')).toBeGreaterThanOrEqual(1)
    const served = (await statusOf(master)).sync
    expect(served.servedFull).toBe(servedBefore.servedFull)
    expect(served.servedPartial).toBeGreaterThan(servedBefore.servedPartial)
    const resumed = master.logs.find((l) => l.msg === 'replica resumes by partial resync' && l.replica === after.nodeId)
    expect(resumed).toBeDefined()
    expect(Number(resumed?.fromSeq)).toBeGreaterThan(3000)
    expect(head).toBeGreaterThan(seqAtKill + 2000)
    expect(firstDifference(await scanAll(replica.address), await scanAll(master.address))).toBeNull()
  })
})

describe('resync from outside the retained log', () => {
  const cluster = new Cluster()
  afterAll(() => cluster.teardown())

  it('a replica whose position was trimmed from the log gets a full sync and converges', async () => {
    // Rule: a downstream whose next seq the upstream no longer holds gets FULLSYNC.
    const master = await cluster.start(['--log-retention', '1000', '--log-trim-interval', '100'])
    const replica = await cluster.start(['--replicaof', master.address])
    const db = await cluster.client({ servers: [master.address] })
    for (let i = 0; i < 500; i++) await db.put(`early:${i}`, `v${i}`)
    const stoppedAt = await waitCaughtUp(master, [replica])
    await replica.stop()

    const load = new WriteLoad([master.address], { clients: 4, inFlight: 8, keySpace: 3000, total: 5000 })
    await (await load.start()).done()
    await load.stop()
    await waitFor(async () => (await statusOf(master)).logStart > stoppedAt + 1, {
      what: `the master to trim seq ${stoppedAt + 1} from its log`,
    })

    await replica.start()
    const head = await waitCaughtUp(master, [replica])
    const after = await statusOf(replica)
    expect(after.sync.fullSyncs).toBe(1)
    expect(after.sync.partialSyncs).toBe(0)
    const why = master.logs.findLast((l) => l.msg === 'replica needs a full sync' && l.replica === after.nodeId)
    expect(String(why?.reason)).toContain('no longer in the log')
    expect(head).toBe(stoppedAt + 5000)
    expect(firstDifference(await scanAll(replica.address), await scanAll(master.address))).toBeNull()
  })
})

describe('full sync of a large data set under writes', () => {
  const cluster = new Cluster()
  afterAll(() => cluster.teardown())

  it('a replica started empty against 200,000 keys full-syncs while writes continue, and converges', async () => {
    // Rule: a full sync streams one consistent snapshot with its seq, then
    // the log from that seq on, so writes during the sync are not lost.
    const master = await cluster.start(['--sync', 'none'])
    const db = await cluster.client({ servers: [master.address] })
    const value = 'v'.repeat(100)
    const pending: Promise<unknown>[] = []
    for (let i = 0; i < 200_000; i += 1000) {
      const ops = Array.from({ length: 1000 }, (_, j) => ({
        type: 'put' as const,
        key: `bulk:${String(i + j).padStart(7, '0')}`,
        value,
      }))
      pending.push(db.batch(ops))
      if (pending.length >= 8) await pending.shift()
    }
    await Promise.all(pending)
    const loadedSeq = (await statusOf(master)).seq

    // Writes overwrite bulk keys too, so the snapshot and the log must line up.
    const load = await new WriteLoad([master.address], {
      clients: 3,
      inFlight: 2,
      keySpace: 200_000,
      prefix: 'bulk:0',
    }).start()
    await waitFor(async () => (await statusOf(master)).seq > loadedSeq + 200, {
      what: 'writes to be flowing',
      timeoutMs: 60_000,
    })
    const replica = await cluster.start(['--replicaof', master.address])
    const sent = await master.waitForLog((l) => l.msg === 'full sync sent', 60_000)
    await waitFor(async () => (await statusOf(replica)).link?.state === 'streaming', {
      what: 'the replica to stream',
      timeoutMs: 60_000,
    })
    await waitFor(async () => (await statusOf(master)).seq > Number(sent.seq) + 500, {
      what: 'writes after the snapshot',
      timeoutMs: 60_000,
    })
    await load.stop()
    expect(load.failed).toBe(0)
    const head = await waitCaughtUp(master, [replica], 60_000)

    expect(Number(sent.keys)).toBeGreaterThan(190_000)
    // Entries after the snapshot reached the replica through the log.
    expect(head).toBeGreaterThan(Number(sent.seq))
    const status = await statusOf(replica)
    expect(status.sync.fullSyncs).toBe(1)
    const [r, m] = await Promise.all([scanAll(replica.address), scanAll(master.address)])
    expect(m.size).toBeGreaterThan(150_000)
    expect(firstDifference(r, m)).toBeNull()
    const direct = await TandemClient.connect({ servers: [replica.address], direct: true })
    expect(await direct.get('bulk:0199999')).toBe(await db.get('bulk:0199999'))
    await direct.close()
  }, 240_000) // 200,000 keys written, then a full sync: minutes on a loaded machine
})

describe('a damaged log record on the upstream', () => {
  const cluster = new Cluster()
  afterAll(() => cluster.teardown())

  it('ends the replica’s link, not the upstream, and the replica gets a full sync and converges', async () => {
    // Rule: entries the upstream cannot read are not in its log; a replica
    // that needs them gets FULLSYNC, and the upstream keeps serving.
    const master = await cluster.start()
    const replica = await cluster.start(['--replicaof', master.address])
    const db = await cluster.client({ servers: [master.address] })
    for (let i = 0; i < 50; i++) await db.put(`a${i}`, 'v')
    const at = await waitCaughtUp(master, [replica])
    await replica.stop()
    for (let i = 0; i < 20; i++) await db.put(`b${i}`, `v${i}`) // awaited one by one: a block each
    await master.stop()

    // Cut the last byte of the record holding at + 1, as a torn write would.
    const level = new Level<Buffer, Buffer>(join(master.dataDir, 'db'), {
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
    })
    await level.open()
    const key = Buffer.concat([Buffer.from('!log!'), Buffer.alloc(8)])
    key.writeUInt32BE(at + 1, key.length - 4)
    const record = await level.get(key)
    expect(record).toBeDefined()
    await level.put(key, (record as Buffer).subarray(0, (record as Buffer).length - 1))
    await level.close()

    await master.start()
    await replica.start()
    await waitFor(() => master.logs.some((l) => String(l.msg).includes(`the log record at seq ${at + 1} is damaged`)), {
      what: 'the master to report the damaged record',
    })
    const head = await waitCaughtUp(master, [replica])
    expect(master.running).toBe(true)
    expect(head).toBe(at + 20)
    expect((await statusOf(replica)).sync.fullSyncs).toBe(1)
    expect(firstDifference(await scanAll(replica.address), await scanAll(master.address))).toBeNull()
    // The master still takes writes and streams them.
    await db.put('after', 'damage')
    expect(await waitCaughtUp(master, [replica])).toBe(at + 21)
  })
})
