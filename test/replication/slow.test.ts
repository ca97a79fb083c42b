import { afterAll, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { Cluster, firstDifference, scanAll, statusOf, WriteLoad, waitCaughtUp } from './cluster.js'

const VALUE_BYTES = 50_000

describe('a replica too slow to keep up', () => {
  const cluster = new Cluster()
  afterAll(() => cluster.teardown())

  it('is disconnected with a warning naming it while the master takes writes, and it catches up after', async () => {
    // Rule: a downstream that cannot take the stream within a bounded buffer
    // is disconnected with a warning; the upstream never buffers without
    // bound. (The bound itself, the high-water mark plus one frame, is
    // checked byte for byte in packages/server/src/replication/upstream.test.ts.)
    const master = await cluster.start(['--repl-timeout', '2000', '--sync', 'none'])
    const replica = await cluster.start(['--replicaof', master.address])
    const replicaId = (await statusOf(replica)).nodeId
    const load = await new WriteLoad([master.address], {
      clients: 4,
      inFlight: 2,
      keySpace: 400,
      valueBytes: VALUE_BYTES,
    }).start()

    await waitFor(async () => (await statusOf(replica)).seq > 500, {
      timeoutMs: 60_000,
      what: 'the replica to follow 500 writes',
    })

    const pausedSince = new Date().toISOString()
    await replica.kill('SIGSTOP')
    const warning = await master.waitForLog(
      (l) => l.level === 'warn' && l.replica === replicaId && String(l.time) >= pausedSince,
      30_000,
    )
    expect(String(warning.msg)).toContain(replicaId)
    expect(String(warning.msg)).toMatch(/too slow|sent nothing/)
    // It is dropped from the master's replicas, and the master keeps taking
    // writes: 1,000 more after the warning, with the replica still paused.
    await waitFor(async () => (await statusOf(master)).replicas.length === 0, { what: 'the replica to be dropped' })
    const warnedAt = (await statusOf(master)).seq
    await waitFor(async () => (await statusOf(master)).seq > warnedAt + 1000, {
      timeoutMs: 60_000,
      what: '1,000 writes after the warning',
    })
    expect(load.failed).toBe(0)

    await replica.kill('SIGCONT')
    await waitFor(async () => (await statusOf(master)).replicas.some((r) => r.nodeId === replicaId), {
      what: 'the replica to reconnect',
    })
    await load.stop()
    expect(load.failed).toBe(0)
    await waitCaughtUp(master, [replica], 60_000)
    // A 2 s timeout may drop it again while it catches up on a busy machine; it comes back.
    await waitFor(async () => (await statusOf(replica)).link?.state === 'streaming', { what: 'the link to stream' })
    // The link was re-established by partial resync (the log still holds its position).
    expect((await statusOf(replica)).sync.partialSyncs).toBeGreaterThanOrEqual(1)
    expect(replica.logs.some((l) => l.msg === 'could not apply replicated entries; reconnecting')).toBe(false)
    expect(firstDifference(await scanAll(replica.address), await scanAll(master.address))).toBeNull()
  })
})
