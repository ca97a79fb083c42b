import { TandemClient } from '@tandem/client'
import { afterEach, describe, expect, it } from 'vitest'
import { type NodeProcess, startNode } from '../helpers/node-process.js'
import { expectLogMatchesData, readOffline, typed } from '../helpers/offline-store.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'
import { readAll, type SentWrite, uniqueKeyWrites, WriteLoad } from './load.js'

/**
 * Crash durability, with real kill -9 of a real tandem-server while 32
 * writers, each on its own connection, keep writing.
 */
describe('durability across SIGKILL', () => {
  const cleanups: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })

  async function setup(sync: string): Promise<{ dir: string; node: NodeProcess }> {
    const dir = tempDir()
    cleanups.push(() => dir.remove())
    const node = await startNode(dir.path, ['--sync', sync])
    cleanups.push(() => node.stop())
    return { dir: dir.path, node }
  }

  /** Runs 32 writers until `acks` writes are acknowledged, then SIGKILLs the node mid-load. */
  async function killMidLoad(node: NodeProcess, acks: number, prefix = ''): Promise<WriteLoad> {
    const load = await new WriteLoad(node.address, 32, uniqueKeyWrites(prefix)).start()
    cleanups.push(() => load.stop())
    await waitFor(() => load.acked >= acks, { timeoutMs: 30_000, what: `${acks} acknowledged writes` })
    const inFlight = load.inFlight.length
    await node.kill('SIGKILL')
    expect(node.exitSignal).toBe('SIGKILL')
    await load.stop()
    // The kill landed while writes were outstanding, not after the load ended.
    expect(inFlight).toBeGreaterThan(0)
    expect(load.unacknowledged.length).toBeGreaterThan(0)
    return load
  }

  /** Keys of the given writes, each with the value the write put. */
  function expectedValues(writes: SentWrite[]): Map<string, string> {
    const out = new Map<string, string>()
    for (const w of writes) for (const op of w.ops) if (op.type === 'put') out.set(op.key, typed(op.value)!)
    return out
  }

  /**
   * Rule: with --sync always a write is acknowledged only after the group
   * commit holding it is fsynced, so a crash loses no acknowledged write, and
   * a batch is all-or-nothing even when the crash catches it in flight.
   */
  it('keeps every acknowledged write, with its value, across two kill -9s under 32 writers (--sync always)', async () => {
    const { dir, node } = await setup('always')
    const acked: SentWrite[] = []
    // Two rounds: the second crash hits a node that itself recovered from one.
    for (const round of ['r1:', 'r2:']) {
      const load = await killMidLoad(node, 4000, round)
      acked.push(...load.acknowledged)
      const maxAckedSeq = Math.max(...acked.map((w) => w.seq!))

      await node.start()
      const db = await TandemClient.connect({ servers: [node.address] })
      const want = expectedValues(acked)
      const got = await readAll(db, [...want.keys()])
      const lost = [...want].filter(([key, value]) => typed(got.get(key)) !== value)
      expect(lost, `acknowledged writes missing or wrong after crash ${round}`).toEqual([])

      // A write the crash caught in flight may or may not have committed, but
      // never in part and never with another value.
      for (const w of load.unacknowledged) {
        const values = await readAll(
          db,
          w.ops.map((op) => op.key),
        )
        const present = w.ops.filter((op) => values.get(op.key) !== undefined)
        expect(present.length === 0 || present.length === w.ops.length, `${w.ops[0].key} applied in part`).toBe(true)
        for (const op of present) if (op.type === 'put') expect(typed(values.get(op.key))).toBe(typed(op.value))
      }

      // The log resumes after everything acknowledged: no seq is handed out twice.
      const status = await db.status()
      expect(status.seq).toBeGreaterThanOrEqual(maxAckedSeq)
      const after = await db.put(`${round}after-restart`, 'x')
      expect(after.seq).toBe(status.seq + 1)
      await db.close()
    }

    await node.stop()
    expect(node.exitCode).toBe(0)
    const offline = await readOffline(dir)
    expectLogMatchesData(offline)
    // Each acknowledged seq is the entry that carries that write.
    const bySeq = new Map(offline.entries.map((e) => [e.seq, e]))
    for (const w of acked) {
      expect(bySeq.get(w.seq!)?.ops.map((op) => op[1])).toEqual(w.ops.map((op) => op.key))
    }
  })

  /**
   * Rule: --sync none gives up durability on power loss, not integrity:
   * after kill -9 the data dir is self-consistent (lastSeq, log and data
   * agree, because each group is one atomic LevelDB batch) and the node
   * restarts and serves. A process crash (the OS survives) still keeps every
   * acknowledged write, since LevelDB has handed each batch to the OS before
   * it returns.
   */
  it('says in status when a --sync periodic fsync last covered the writes', async () => {
    const dir = tempDir()
    cleanups.push(() => dir.remove())
    const node = await startNode(dir.path, ['--sync', 'periodic', '--tune', 'periodicSyncMs=100'])
    cleanups.push(() => node.stop())
    const db = await TandemClient.connect({ servers: [node.address] })
    cleanups.push(() => db.close())
    const first = (await db.status()) as unknown as { syncMode: string; syncedAt: number | null; syncFailure: unknown }
    expect(first.syncMode).toBe('periodic')
    expect(first.syncFailure).toBeNull()
    const ackedAt = Date.now()
    await db.put('synced', 'yes')
    // A later fsync began after the put was acknowledged: it covers it.
    await waitFor(
      async () => (((await db.status()) as unknown as { syncedAt: number | null }).syncedAt ?? 0) >= ackedAt,
      { timeoutMs: 30_000, what: 'a periodic fsync after the put' },
    )
  })

  it('restarts cleanly and consistently after kill -9 with --sync none', async () => {
    const { dir, node } = await setup('none')
    const load = await killMidLoad(node, 3000)

    const offline = await readOffline(dir)
    expectLogMatchesData(offline)
    expect(offline.lastSeq).toBeGreaterThanOrEqual(Math.max(...load.acknowledged.map((w) => w.seq!)))
    const want = expectedValues(load.acknowledged)
    const lost = [...want].filter(([key, value]) => typed(offline.data.get(key)) !== value)
    expect(lost, 'acknowledged writes lost by a process crash').toEqual([])

    await node.start()
    const db = await TandemClient.connect({ servers: [node.address] })
    cleanups.push(() => db.close())
    const status = await db.status()
    expect(status.seq).toBe(offline.lastSeq)
    const [someKey, someValue] = [...want][0]
    expect(typed(await db.get(someKey))).toBe(someValue)
    const put = await db.put('after-restart', 'fresh')
    expect(put.seq).toBe(offline.lastSeq + 1)
    expect(await db.get('after-restart')).toBe('fresh')
    await db.del(someKey)
    expect(await db.get(someKey)).toBeUndefined()
  })
})
