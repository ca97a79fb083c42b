import { existsSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Consistency, TandemClient } from '@tandem/client'
import { afterAll, describe, expect, it } from 'vitest'
import { FailoverGroup } from '../failover/group.js'
import { waitFor } from '../helpers/wait.js'
import { HistoryRecorder, type Op } from './checker/history.js'
import { checkHistory } from './checker/linearizable.js'
import { registerModel } from './checker/model.js'
import { meshTopology } from './mesh.js'
import type { FaultEvent } from './nemesis.js'
import { writeLinearizabilityReport } from './report.js'
import { FAST_FAILOVER, type RunOptions, runOnce, summarize } from './run.js'
import { Timeline } from './timeline.js'

/**
 * The fault suite's bounded pass (a few minutes on 2 cores; every run is
 * seeded and printed with the command that replays it):
 * - a directed partition: the master cut off from its group while clients
 *   still reach it. With consistency 'local' the checker must find the
 *   register going back in time (the anomaly of issue 13) and write a
 *   report; with 'linearizable' the same steps are linearizable;
 * - one register run and one set run under random faults.
 *
 * TANDEM_JEPSEN_SEED=<n> replays a run's seed. The long runs are in
 * soak.test.ts, behind TANDEM_JEPSEN_SOAK=1.
 */
const SEED = Number(process.env.TANDEM_JEPSEN_SEED ?? 20_250_601)
const OUT = process.env.TANDEM_JEPSEN_OUT ?? join(tmpdir(), 'tandem-jepsen-reports')

/** Runs `call`, recording it in `history` as an op of client `process`. */
async function record(
  history: HistoryRecorder,
  process: number,
  key: string,
  f: 'get' | 'put',
  value: string | null,
  call: () => Promise<unknown>,
): Promise<Op> {
  const op = history.invoke(process, key, f, value)
  try {
    const out = await call()
    history.ok(op, f === 'get' ? (out === undefined ? null : String(out)) : null)
  } catch (err) {
    const code = (err as { code?: string }).code ?? 'ERROR'
    if (f === 'get' || ['READONLY', 'NOMASTER', 'FENCED', 'NOREPLICAS'].includes(code)) history.fail(op, code)
    else history.unknown(op, code)
  }
  return op
}

describe('fault suite: a master cut off from its group while clients still reach it', () => {
  it.each([
    ['local', false],
    ['linearizable', true],
  ] as [Consistency, boolean][])(
    'with consistency %s the history is linearizable: %s',
    async (consistency, linearizable) => {
      const group = await new FailoverGroup().start({
        size: 3,
        args: ['--failover-timeout', '2000', '--heartbeat-interval', '100'],
      })
      const clients: TandemClient[] = []
      const t0 = performance.now()
      const now = () => performance.now() - t0
      const timeline = new Timeline(group, now, 100).start()
      try {
        // The master the timeline sees too: under load a first election can be followed by a second
        // before the timeline's samples settle, so the master is taken once both agree.
        const { master, m } = await waitFor(
          async () => {
            const current = await group.waitForMaster()
            const i = group.index(current)
            return timeline.master() === i ? { master: current, m: i } : null
          },
          { what: 'the timeline to see the master', timeoutMs: 60_000 },
        )
        const viaGroup = await group.client({ timeoutMs: 15_000, consistency })
        const direct = await TandemClient.connect({ servers: [master.address], direct: true, timeoutMs: 10_000 })
        clients.push(viaGroup, direct)
        const history = new HistoryRecorder(now)
        const faults: FaultEvent[] = []

        const before = await record(history, 0, 'k', 'put', '1-381', () =>
          viaGroup.put('k', '1-381', { w: 'majority' }),
        )
        expect(before.status).toBe('ok')
        group.isolate(m, 'stall')
        faults.push({
          time: now(),
          phase: 'start',
          fault: 'isolate-master',
          nodes: [m],
          detail: `isolate master n${m} (stall)`,
        })
        // Taken by the cut-off master while its lease holds; no majority will ever ack it.
        const dirty = record(history, 1, 'k', 'put', '1-382', () =>
          direct.put('k', '1-382', { w: 'majority', timeoutMs: 1000 }),
        )
        // Reads of the cut-off master, until it shows the write or refuses.
        await waitFor(
          async () => {
            const read = await record(history, 2, 'k', 'get', null, () => direct.get('k', { consistency }))
            return read.status === 'fail' || read.output === '1-382'
          },
          { what: 'the cut-off master to show its write or refuse', timeoutMs: 10_000 },
        )
        expect((await dirty).status).not.toBe('ok')
        const elected = await group.waitForMaster(
          group.nodes.filter((_, i) => i !== m),
          'the majority side to elect a master',
        )
        // A client reads from the new master.
        const fresh = await TandemClient.connect({ servers: [elected.address], direct: true, timeoutMs: 10_000 })
        clients.push(fresh)
        const after = await record(history, 3, 'k', 'get', null, () => fresh.get('k', { consistency }))
        expect(after.status).toBe('ok')
        faults.push({
          time: now(),
          phase: 'end',
          fault: 'isolate-master',
          nodes: [m],
          detail: `isolate master n${m} (stall)`,
        })
        group.healAll()
        await group.waitConverged()

        const verdict = checkHistory(history.ops, registerModel)
        expect(verdict.valid).toBe(linearizable)
        if (!linearizable) {
          const file = join(OUT, `directed-${consistency}-${process.pid}.txt`)
          writeLinearizabilityReport(
            file,
            {
              title: 'linearizability violation',
              seed: 0,
              replay: 'the directed partition test',
              settings: { consistency },
            },
            verdict.failures,
            faults,
            timeline,
            group.nodes.length,
          )
          const report = readFileSync(file, 'utf8')
          console.log(`fault suite: the directed partition with consistency ${consistency}:\n${report}`)
          // The report names the ops, the fault around them and what the nodes were.
          expect(report).toContain('"1-382"')
          expect(report).toContain(`isolate master n${m}`)
          expect(report).toMatch(new RegExp(`n${m} at [0-9.]+ s: master epoch`))
          rmSync(file)
        }
      } finally {
        timeline.stop()
        await Promise.all(clients.map((c) => c.close()))
        await group.teardown()
      }
    },
  )
})

describe('fault suite: random faults (bounded pass)', () => {
  const results: string[] = []
  afterAll(() => {
    for (const line of results) console.log(line)
  })

  const base: Omit<RunOptions, 'seed' | 'workload' | 'replay'> = {
    durationMs: 20_000,
    nodes: 3,
    clients: 8,
    keys: 6,
    w: 'majority',
    consistency: 'linearizable',
    faults: ['kill', 'pause', 'isolate-master', 'split', 'one-way', 'flap', 'clock'],
    faultEveryMs: [1000, 2000],
    maxActiveFaults: 2,
    serverArgs: FAST_FAILOVER,
    outDir: OUT,
  }

  it(`register, w: 'majority', linearizable reads: every history linearizable (seed ${SEED})`, async () => {
    const result = await runOnce({
      ...base,
      seed: SEED,
      workload: 'register',
      replay: `TANDEM_JEPSEN_SEED=${SEED} npx vitest run test/jepsen/jepsen.test.ts`,
    })
    results.push(summarize(result))
    expect(result.faults).toBeGreaterThanOrEqual(2)
    expect(result.counts.ok).toBeGreaterThan(100)
    expect(result.problems).toEqual([])
    expect(result.verdict?.valid).toBe(true)
  })

  it(`set, w: 'majority' and w: 0 mixed: no acknowledged majority add lost, lost w: 0 adds all in rollback files (seed ${SEED + 1})`, async () => {
    const result = await runOnce({
      ...base,
      seed: SEED + 1,
      workload: 'set',
      w: 'mixed',
      durationMs: 15_000,
      faults: ['kill', 'pause', 'isolate-master', 'split', 'clock', 'disk-full'],
      replay: `TANDEM_JEPSEN_SEED=${SEED} npx vitest run test/jepsen/jepsen.test.ts`,
    })
    results.push(summarize(result))
    if (result.diskFull.startsWith('skipped')) console.log(`fault suite: disk-full ${result.diskFull}`)
    expect(result.faults).toBeGreaterThanOrEqual(1)
    expect(result.setVerdict?.acknowledgedAdds).toBeGreaterThan(50)
    expect(result.problems).toEqual([])
  })
})

describe('fault suite: a multi-master mesh under random faults (bounded pass)', () => {
  // Every node takes writes, clients move between nodes when theirs is
  // unreachable, nothing is rolled back: every acknowledged add must be on
  // every node at the end, and no acknowledged removal may come back, whose
  // add another node may still have been forwarding when it was removed.
  it(`set, lww, w: 1: converges with no acknowledged add lost and no removal undone (seed ${SEED + 2})`, async () => {
    const result = await runOnce({
      seed: SEED + 2,
      workload: 'set',
      topology: meshTopology,
      durationMs: 15_000,
      nodes: 3,
      clients: 8,
      keys: 0,
      w: 1,
      consistency: undefined,
      faults: ['kill', 'pause', 'isolate', 'split', 'one-way', 'flap', 'delay', 'clock'],
      faultEveryMs: [800, 1600],
      maxActiveFaults: 2,
      serverArgs: [],
      outDir: OUT,
      replay: `TANDEM_JEPSEN_SEED=${SEED} npx vitest run test/jepsen/jepsen.test.ts -t mesh`,
    })
    console.log(summarize(result))
    expect(result.faults).toBeGreaterThanOrEqual(2)
    expect(result.setVerdict?.acknowledgedAdds).toBeGreaterThan(50)
    expect(result.setVerdict?.acknowledgedRemoves).toBeGreaterThan(5)
    expect(result.problems).toEqual([])
  })
})

// Keep reports of failures; the directory is only created when one is written.
afterAll(() => {
  if (existsSync(OUT)) console.log(`fault suite: reports in ${OUT}`)
})
