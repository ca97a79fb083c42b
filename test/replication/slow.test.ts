import { afterAll, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { Cluster, firstDifference, scanAll, statusOf, WriteLoad, waitCaughtUp } from './cluster.js'

const MiB = 1024 * 1024
const VALUE_BYTES = 50_000

describe('a replica too slow to keep up', () => {
  const cluster = new Cluster()
  afterAll(() => cluster.teardown())

  it('is disconnected with a warning naming it, the master’s memory stays bounded, and it catches up after', async () => {
    // Rule: a downstream that cannot take the stream within a bounded buffer
    // is disconnected with a warning; the upstream never buffers without bound.
    const master = await cluster.start(['--repl-timeout', '2000', '--sync', 'none'])
    const replica = await cluster.start(['--replicaof', master.address])
    const replicaId = (await statusOf(replica)).nodeId
    const load = await new WriteLoad([master.address], {
      clients: 4,
      inFlight: 2,
      keySpace: 400,
      valueBytes: VALUE_BYTES,
    }).start()

    // Warm up under the same load so the master's baseline includes its
    // in-memory log tail (one 32 MiB ring, resident from the moment the
    // replica connected).
    // (On a busy machine the 2 s timeout may drop and re-admit it meanwhile.)
    await waitFor(async () => (await statusOf(replica)).seq > 3000, {
      timeoutMs: 60_000,
      what: 'the replica to follow 3,000 writes',
    })
    let baseline = 0
    for (let i = 0; i < 5; i++) baseline = Math.max(baseline, await master.rss())

    const pausedSince = new Date().toISOString()
    await replica.kill('SIGSTOP')
    const pausedAt = (await statusOf(master)).seq
    const samples: number[] = []
    let sampling = true
    const sampler = (async () => {
      while (sampling) {
        samples.push(await master.rss())
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    })()

    const warning = await master.waitForLog(
      (l) => l.level === 'warn' && l.replica === replicaId && String(l.time) >= pausedSince,
      30_000,
    )
    expect(String(warning.msg)).toContain(replicaId)
    expect(String(warning.msg)).toMatch(/too slow|sent nothing/)
    // It is dropped from the master's replicas, and the master keeps taking
    // writes: 4,000 more after the warning, with the replica still paused.
    await waitFor(async () => (await statusOf(master)).replicas.length === 0, { what: 'the replica to be dropped' })
    const warnedAt = (await statusOf(master)).seq
    await waitFor(async () => (await statusOf(master)).seq > warnedAt + 4000, {
      what: '4,000 writes after the warning',
    })
    sampling = false
    await sampler
    const writtenWhilePaused = ((await statusOf(master)).seq - pausedAt) * VALUE_BYTES
    const peak = Math.max(...samples)

    // Bound: what the master may hold for this replica is its high-water
    // mark (4 MiB unflushed) plus one entries frame (1 MiB); its log tail
    // (32 MiB) was already in the baseline. The rest is the collector's
    // timing: with 50 KB values arriving at this rate, RSS samples of an
    // unchanged workload spread over ~40 MiB on a busy 2-core machine
    // (runs on 2026-11-26: +31 to +45 MiB over the baseline). 64 MiB keeps
    // that apart from buffering, which would have grown RSS by
    // writtenWhilePaused: the test makes sure that is over 3x the bound.
    const bound = baseline + 64 * MiB
    console.info(
      `slow replica: baseline ${(baseline / MiB).toFixed(0)} MiB, peak ${(peak / MiB).toFixed(0)} MiB over ${samples.length} samples, ` +
        `${(writtenWhilePaused / MiB).toFixed(0)} MiB written while paused`,
    )
    expect(writtenWhilePaused).toBeGreaterThan(3 * 64 * MiB)
    expect(peak).toBeLessThan(bound)
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
