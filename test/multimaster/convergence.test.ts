import type { TandemClient } from '@tandem/client'
import { afterEach, describe, expect, it } from 'vitest'
import {
  firstDifference,
  lwwModel,
  PeerGroup,
  scanNode,
  type Topology,
  unionOfWrites,
  vclockModel,
  writesOffline,
} from './peers.js'

/**
 * Convergence, property-based and replayable: random puts and deletes from
 * clients on every node of a multi-master group, while links are cut and
 * healed at random and one node is killed with SIGKILL and restarted. After
 * healing, every node must report the same version vector and digest, hold
 * the same data, and that data must be the reference model of the writes
 * the nodes' logs hold (lww: per key the greatest (hlc, origin); vclock:
 * exactly the values no write's context covers). A key whose last write in
 * that order is a delete must be missing everywhere: no deleted key comes
 * back.
 *
 * TANDEM_SEED=N replays a run; TANDEM_MM_SECONDS=N lengthens the load
 * (default 6 s per case).
 */
const SECONDS = Number(process.env.TANDEM_MM_SECONDS ?? 6)
const BASE_SEED = Number(process.env.TANDEM_SEED ?? Math.floor(Math.random() * 1e9))

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 0x1_0000_0000
  }
}

const KEYS = 30
/** Longer than any write waits on a loaded machine (see runCase). */
const WRITE_TIMEOUT_MS = 30_000
/** Writes a run must have acknowledged to have tested anything. */
const MIN_ACKNOWLEDGED = 50

interface Outcome {
  acknowledged: number
  failed: number
}

/** One client's loop of random writes (and, under vclock, reads followed by writes with their context). */
async function writeLoop(
  db: TandemClient,
  random: () => number,
  conflict: 'lww' | 'vclock',
  tag: string,
  until: number,
  out: Outcome,
): Promise<void> {
  let n = 0
  // The run's length, or longer on a machine too loaded to have written
  // MIN_ACKNOWLEDGED by then (the faults have stopped by then; bounded).
  while (Date.now() < until || (out.acknowledged <= MIN_ACKNOWLEDGED && Date.now() < until + 60_000)) {
    const key = `k${Math.floor(random() * KEYS)}`
    const r = random()
    n++
    try {
      if (r < 0.2) {
        await db.del(key)
      } else if (conflict === 'vclock' && r < 0.55) {
        const { context } = await db.getAll(key)
        if (random() < 0.3) await db.del(key, { context })
        else await db.put(key, `${tag}-${n}`, { context })
      } else if (r < 0.6) {
        await db.put(key, Buffer.from(`${tag}-${n}`))
      } else {
        await db.put(key, `${tag}-${n}`)
      }
      out.acknowledged++
    } catch {
      // The node was killed or cut off: the write may or may not have been applied.
      out.failed++
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
}

async function runCase(size: number, conflict: 'lww' | 'vclock', topology: Topology, seed: number): Promise<void> {
  const random = rng(seed)
  const group = new PeerGroup()
  groups.push(group)
  await group.start({ size, conflict, topology, args: ['--log-retention', '1000000'] })
  const until = Date.now() + SECONDS * 1000
  const outcome: Outcome = { acknowledged: 0, failed: 0 }
  const clients: Promise<void>[] = []
  for (let i = 0; i < size; i++) {
    for (let c = 0; c < 2; c++) {
      // A write a client gives up on (TIMEOUT) may still be applied after
      // the nodes were compared: on a loaded machine one was, seconds late,
      // on one node between the scans. Each write's outcome is known before
      // its loop goes on (answered, or its node killed under it).
      const db = await group.client(i, { timeoutMs: WRITE_TIMEOUT_MS })
      clients.push(writeLoop(db, rng(seed * 31 + i * 7 + c), conflict, `n${i}c${c}`, until, outcome))
    }
  }
  // Faults: links cut and healed at random; one node killed and restarted half way.
  const victim = Math.floor(random() * size)
  const faults = (async () => {
    let killed = false
    while (Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 300 + random() * 700))
      if (!killed && Date.now() > until - (SECONDS * 1000) / 2) {
        killed = true
        await group.nodes[victim].kill('SIGKILL')
        await new Promise((resolve) => setTimeout(resolve, 300 + random() * 700))
        await group.nodes[victim].start()
        continue
      }
      if (random() < 0.4) group.healAll()
      else {
        const i = Math.floor(random() * size)
        const j = (i + 1 + Math.floor(random() * (size - 1))) % size
        group.cut(i, j)
      }
    }
  })()
  await Promise.all([...clients, faults])
  group.healAll()
  const statuses = await group.waitConverged(90_000)
  expect(statuses.every((s) => s.multi?.digestAlarm === null)).toBe(true)
  const scans = await Promise.all(group.nodes.map((n) => scanNode(n)))
  // Nothing was applied while the nodes were scanned: the scans are of the state whose digests matched.
  const after = await Promise.all(group.nodes.map((_, i) => group.status(i)))
  for (let i = 0; i < size; i++) expect(after[i].vv, `node ${i}'s writes after the scans`).toEqual(statuses[i].vv)
  for (let i = 1; i < size; i++) expect(firstDifference(scans[i], scans[0]), `node ${i} vs node 0`).toBeNull()

  await group.stopAll()
  const logs = await Promise.all(group.dirs.slice(0, size).map((d) => writesOffline(d.path, conflict)))
  const writes = unionOfWrites(logs)
  // Every node applied every write, once.
  for (const log of logs) expect(log.length).toBe(writes.length)
  const model = conflict === 'lww' ? lwwModel(writes) : vclockModel(writes)
  expect(firstDifference(scans[0], model), 'node 0 vs the reference model').toBeNull()
  // The run did what it meant to: writes on every side, some while links were down.
  expect(outcome.acknowledged).toBeGreaterThan(MIN_ACKNOWLEDGED)
  console.info(
    `convergence ${conflict} ${size} nodes (${topology}), seed ${seed}: ${outcome.acknowledged} acknowledged, ${outcome.failed} failed, ${writes.length} writes, ${model.size} keys at the end`,
  )
}

const groups: PeerGroup[] = []
afterEach(async () => {
  await Promise.all(groups.splice(0).map((g) => g.teardown()))
})

describe(`multi-master convergence (seed ${BASE_SEED})`, () => {
  it('two masters, lww', () => runCase(2, 'lww', 'mesh', BASE_SEED))
  it('three masters in a mesh, lww', () => runCase(3, 'lww', 'mesh', BASE_SEED + 1))
  it('three masters in a line (the ends reach each other only through the middle), vclock', () =>
    runCase(3, 'vclock', 'line', BASE_SEED + 2))
  it('two masters, vclock', () => runCase(2, 'vclock', 'mesh', BASE_SEED + 3))
})
