import type { TandemClient, WatchEvent } from '@tandem/client'
import { afterAll, describe, expect, it } from 'vitest'
import { FailoverGroup, statusOf } from '../failover/group.js'
import { readOffline } from '../helpers/offline-store.js'
import { waitFor } from '../helpers/wait.js'

/** Write loops putting fresh keys with values used once; errors (a fail-over under way) are counted, not thrown. */
function writeLoops(db: TandemClient, loops: number) {
  let stopped = false
  let acked = 0
  let next = 0
  const done = Promise.all(
    Array.from({ length: loops }, async () => {
      while (!stopped) {
        const n = next++
        try {
          await db.put(`w:${n}`, `v${n}`, { timeoutMs: 3000 })
          acked++
        } catch {
          // UNCERTAIN, NOMASTER, TIMEOUT while the group elects: the log is the truth.
          // A timer turn before the next: a call that fails at once must not
          // starve the event loop (the client could then never find the new master).
          await new Promise((resolve) => setTimeout(resolve, 20))
        }
      }
    }),
  )
  return {
    get acked() {
      return acked
    },
    stop: async () => {
      stopped = true
      await done
    },
  }
}

describe('a watch across a fail-over', () => {
  const group = new FailoverGroup()
  afterAll(() => group.teardown())

  it('resumes on the new master after the master is killed, with no gap and no duplicate against its log', async () => {
    // Rule: on the master of a fail-over group a watch delivers only what a
    // majority holds, so everything it delivered is on whichever member is
    // elected; the SDK resumes there from the last seq it received.
    await group.start({ size: 3 })
    const master = await group.waitForMaster()
    // Links to the master run 100 ms late each way, so its log is well ahead of
    // what the others hold when it dies: a watch shown its tail would be
    // shown writes the new master never had.
    const m = group.index(master)
    for (let i = 0; i < group.nodes.length; i++) if (i !== m) group.proxies[i][m].delay(100)
    const db = await group.client()
    // Both replicas stream before the first write, so the new master's log holds every entry from seq 1.
    await waitFor(async () => (await statusOf(master)).replicas.filter((r) => r.link === 'streaming').length === 2, {
      what: 'both replicas to stream from the master',
    })
    const events: WatchEvent[] = []
    let failure: unknown = null
    const watch = db.watch({ fromSeq: 1 })
    const watching = (async () => {
      try {
        for await (const event of watch) events.push(event)
      } catch (err) {
        failure = err
      }
    })()
    const writer = await group.client()
    const load = writeLoops(writer, 4)
    await waitFor(() => events.length >= 300, { what: '300 events watched from the first master' })

    await master.kill('SIGKILL')
    const killedAt = load.acked
    const others = group.nodes.filter((n) => n !== master)
    const newMaster = await group.waitForMaster(others, 'a new master among the survivors')
    await waitFor(() => load.acked >= killedAt + 300, { what: '300 writes acknowledged after the kill' })
    await load.stop()
    const status = await writer.status()
    const head = status.seq
    const history = status.history as { epoch: number; startSeq: number }[]
    const newEpochStart = history[history.length - 1].startSeq
    await waitFor(() => (watch.seq ?? 0) >= head, { what: `the watch to reach the new master's seq ${head}` })
    watch.close()
    await watching
    expect(failure).toBeNull()

    await newMaster.stop()
    const log = await readOffline(newMaster.dataDir)
    expect(log.entries[0]?.seq).toBe(1)
    const expected = log.entries
      .filter((e) => e.seq <= head)
      .flatMap((e) => e.ops.map((op) => [e.seq, op[0] === 0 ? 'put' : 'del', op[1], op[0] === 0 ? op[2] : null]))
    const watched = events.map((e) => [e.seq, e.type, e.key, e.value ?? null])
    expect(watched.length).toBe(expected.length)
    expect(watched).toEqual(expected)
    // The watch carried on past the kill: it holds the new master's own writes.
    expect(events.filter((e) => e.seq >= newEpochStart).length).toBeGreaterThanOrEqual(250)
  })
})
