import { appendFileSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Consistency, TandemClient, type WriteConcern } from '@tandem/client'
import { describe, expect, it } from 'vitest'
import { FailoverGroup, statusOf } from '../failover/group.js'
import { waitFor } from '../helpers/wait.js'
import { meshTopology } from './mesh.js'
import type { FaultKind } from './nemesis.js'
import { FAST_FAILOVER, type RunResult, runOnce, summarize } from './run.js'

/**
 * The fault suite's long runs, off unless asked for:
 *
 *   TANDEM_JEPSEN_SOAK=1 npx vitest run test/jepsen/soak.test.ts
 *
 * runs TANDEM_JEPSEN_RUNS runs (default 30) of TANDEM_JEPSEN_DURATION_S
 * seconds (default 60) each, seeds TANDEM_JEPSEN_SEED, +1, ..., cycling
 * through TANDEM_JEPSEN_WORKLOAD (register,set; default register), with
 * TANDEM_JEPSEN_W for the register (majority | N | mixed: even clients
 * majority, odd ones 0; default majority) and TANDEM_JEPSEN_SET_W for the
 * set (default mixed),
 * TANDEM_JEPSEN_CONSISTENCY (linearizable | lease | local | default),
 * TANDEM_JEPSEN_FAULTS (a comma list of nemesis.ts's faults) and a fault
 * move every TANDEM_JEPSEN_FAULT_EVERY_MS (min,max; default 1500,3000).
 * TANDEM_JEPSEN_TOPOLOGY=mesh runs a multi-master mesh (lww) instead of a
 * fail-over group: set runs only, w 1, no consistency (see mesh.ts).
 * One JSON line per run goes to TANDEM_JEPSEN_OUT/summary.jsonl, reports of
 * violations beside it. It fails if any run found a problem.
 *
 *   TANDEM_JEPSEN_WINDOW=N npx vitest run test/jepsen/soak.test.ts
 *
 * measures, N times per setting, how long a master cut off from its
 * replicas goes on acknowledging w: 0 writes, with and without
 * --min-replicas/--max-lag.
 */
const env = process.env
const SOAK = env.TANDEM_JEPSEN_SOAK === '1'
const WINDOW = Number(env.TANDEM_JEPSEN_WINDOW ?? 0)
const OUT = env.TANDEM_JEPSEN_OUT ?? join(tmpdir(), 'tandem-jepsen-reports')
const SEED = Number(env.TANDEM_JEPSEN_SEED ?? 1)
const RUNS = Number(env.TANDEM_JEPSEN_RUNS ?? 30)
const DURATION_MS = Number(env.TANDEM_JEPSEN_DURATION_S ?? 60) * 1000
const WORKLOADS = (env.TANDEM_JEPSEN_WORKLOAD ?? 'register').split(',') as ('register' | 'set')[]
const writeConcern = (name: string): WriteConcern | 'mixed' =>
  name === 'majority' ? 'majority' : name === 'mixed' ? 'mixed' : Number(name)
const W = writeConcern(env.TANDEM_JEPSEN_W ?? 'majority')
const SET_W = writeConcern(env.TANDEM_JEPSEN_SET_W ?? 'mixed')
const CONSISTENCY = (env.TANDEM_JEPSEN_CONSISTENCY ?? 'linearizable') as Consistency | 'default'
const FAULTS = (env.TANDEM_JEPSEN_FAULTS ?? 'kill,pause,isolate-master,split,one-way,flap,clock,delay').split(
  ',',
) as FaultKind[]
const EVERY = (env.TANDEM_JEPSEN_FAULT_EVERY_MS ?? '1500,3000').split(',').map(Number) as [number, number]
const MESH = env.TANDEM_JEPSEN_TOPOLOGY === 'mesh'

describe.skipIf(!SOAK)('fault suite: soak', () => {
  it(
    `${RUNS} runs of ${DURATION_MS / 1000} s (${WORKLOADS.join(', ')}; w ${W}, set w ${SET_W}; ${CONSISTENCY}; faults ${FAULTS.join(', ')})`,
    async () => {
      mkdirSync(OUT, { recursive: true })
      const summary = join(OUT, 'summary.jsonl')
      const started = Date.now()
      const results: RunResult[] = []
      for (let r = 0; r < RUNS; r++) {
        const seed = SEED + r
        const workload = MESH ? 'set' : WORKLOADS[r % WORKLOADS.length]
        const result = await runOnce({
          seed,
          workload,
          ...(MESH ? { topology: meshTopology } : {}),
          durationMs: DURATION_MS,
          nodes: 3,
          clients: 10,
          keys: 8,
          w: MESH ? 1 : workload === 'set' ? SET_W : W,
          consistency: MESH || CONSISTENCY === 'default' ? undefined : CONSISTENCY,
          faults: FAULTS,
          faultEveryMs: EVERY,
          maxActiveFaults: 2,
          serverArgs: MESH ? [] : FAST_FAILOVER,
          outDir: OUT,
          replay: `${MESH ? 'TANDEM_JEPSEN_TOPOLOGY=mesh ' : ''}TANDEM_JEPSEN_SOAK=1 TANDEM_JEPSEN_RUNS=1 TANDEM_JEPSEN_SEED=${seed} TANDEM_JEPSEN_WORKLOAD=${workload} TANDEM_JEPSEN_DURATION_S=${DURATION_MS / 1000} TANDEM_JEPSEN_W=${W} TANDEM_JEPSEN_SET_W=${SET_W} TANDEM_JEPSEN_CONSISTENCY=${CONSISTENCY} TANDEM_JEPSEN_FAULTS=${FAULTS.join(',')} TANDEM_JEPSEN_FAULT_EVERY_MS=${EVERY.join(',')} npx vitest run test/jepsen/soak.test.ts`,
        })
        results.push(result)
        console.log(`[${r + 1}/${RUNS}] ${summarize(result)}`)
        appendFileSync(
          summary,
          `${JSON.stringify({
            seed,
            workload,
            w: workload === 'set' ? SET_W : W,
            consistency: CONSISTENCY,
            ok: result.ok,
            problems: result.problems,
            ops: result.ops,
            counts: result.counts,
            faults: result.faults,
            faultCounts: result.faultCounts,
            linearizable: result.verdict?.valid,
            violatingKeys: result.verdict?.failures.map((f) => f.key),
            checkMs: result.verdict?.ms,
            set: result.setVerdict && {
              acknowledgedAdds: result.setVerdict.acknowledgedAdds,
              lost: result.setVerdict.lost.length,
              resurrected: result.setVerdict.resurrected.length,
              w0Lost: result.setVerdict.lostAllowed.length,
              w0Undone: result.setVerdict.resurrectedAllowed.length,
            },
            rolledBack: result.rolledBack,
            rollbackGaps: result.rollbackGaps,
            notInRollback: result.lostNotInRollback.length,
            diskFull: result.diskFull,
            report: result.reportFile,
            wallMs: result.wallMs,
          })}\n`,
        )
      }
      const faults = results.reduce((n, r) => n + r.faults, 0)
      const bad = results.filter((r) => !r.ok)
      console.log(
        `soak: ${results.length} runs, ${faults} faults, ${results.reduce((n, r) => n + r.ops, 0)} ops, ${bad.length} with problems, ${((Date.now() - started) / 60_000).toFixed(1)} min; summary ${summary}`,
      )
      expect(bad.map((r) => `seed ${r.options.seed}: ${r.problems.join('; ')}`)).toEqual([])
    },
    RUNS * (DURATION_MS + 180_000),
  )
})

/** One cut: how long the cut-off master went on acknowledging w: 0 writes. */
interface Window {
  setting: string
  ackedAfterCut: number
  lastAckMs: number
  lost: number
  lostInRollback: number
  firstRefusal: string
}

async function measureWindow(setting: string, args: string[]): Promise<Window> {
  const group = await new FailoverGroup().start({ size: 3, args })
  const writers: TandemClient[] = []
  try {
    const master = await group.waitForMaster()
    const m = group.index(master)
    await waitFor(async () => (await statusOf(master)).replicas.filter((r) => r.link === 'streaming').length === 2, {
      what: 'both replicas to stream',
    })
    for (let i = 0; i < 4; i++) {
      writers.push(await TandemClient.connect({ servers: [master.address], direct: true, timeoutMs: 3000 }))
    }
    const t0 = performance.now()
    const now = () => performance.now() - t0
    const acked: { key: string; value: string; at: number }[] = []
    let refusal = ''
    let stop = false
    let cutAt = Number.POSITIVE_INFINITY
    const loops = writers.map(async (db, c) => {
      for (let n = 0; !stop; n++) {
        const key = `w:${c}:${n}`
        try {
          await db.put(key, key)
          acked.push({ key, value: key, at: now() })
        } catch (err) {
          if (!refusal && now() > cutAt) refusal = (err as { code?: string }).code ?? 'ERROR'
          await new Promise((r) => setTimeout(r, 20))
        }
      }
    })
    // A loaded machine takes its time; the window is measured from the cut on.
    await waitFor(() => acked.length >= 500, { what: '500 writes before the cut', timeoutMs: 60_000 })
    cutAt = now()
    group.isolate(m, 'stall')
    await group.waitForMaster(
      group.nodes.filter((_, i) => i !== m),
      'the majority side to elect a master',
    )
    await waitFor(() => refusal !== '', { what: 'the cut-off master to refuse a write' })
    stop = true
    await Promise.all(loops)
    group.healAll()
    const data = await group.waitConverged(60_000)
    const after = acked.filter((a) => a.at > cutAt)
    const lost = acked.filter((a) => data.get(a.key) !== a.value)
    const rolledBack = new Set(group.rollbackEntries(m).flatMap((e) => e.ops.map((op) => `${op.key}=${op.value}`)))
    return {
      setting,
      ackedAfterCut: after.length,
      lastAckMs: after.length === 0 ? 0 : Math.round(Math.max(...after.map((a) => a.at)) - cutAt),
      lost: lost.length,
      lostInRollback: lost.filter((a) => rolledBack.has(`${a.key}=${a.value}`)).length,
      firstRefusal: refusal,
    }
  } finally {
    await Promise.all(writers.map((w) => w.close()))
    await group.teardown()
  }
}

describe.skipIf(WINDOW === 0)('fault suite: how long a cut-off master takes w: 0 writes', () => {
  it(
    `${WINDOW} cuts per setting`,
    async () => {
      const settings: [string, string[]][] = [
        ['lease only (--failover-timeout 1000: lease 700 ms)', []],
        ['--min-replicas 1 --max-lag 300', ['--min-replicas', '1', '--max-lag', '300']],
      ]
      const windows: Window[] = []
      for (let n = 0; n < WINDOW; n++) {
        for (const [setting, args] of settings) {
          const w = await measureWindow(setting, args)
          windows.push(w)
          console.log(`window: ${JSON.stringify(w)}`)
        }
      }
      for (const [setting] of settings) {
        const mine = windows.filter((w) => w.setting === setting)
        const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b)
        const last = sorted(mine.map((w) => w.lastAckMs))
        const count = sorted(mine.map((w) => w.ackedAfterCut))
        const lost = sorted(mine.map((w) => w.lost))
        console.log(
          `window: ${setting}: last acknowledged write after the cut at median ${last[Math.floor(last.length / 2)]} ms (max ${last[last.length - 1]}); writes acknowledged after the cut median ${count[Math.floor(count.length / 2)]} (max ${count[count.length - 1]}); lost median ${lost[Math.floor(lost.length / 2)]} (max ${lost[lost.length - 1]}); first refusals ${JSON.stringify(mine.map((w) => w.firstRefusal))}`,
        )
      }
      // Whatever was lost is in the old master's rollback file.
      expect(windows.filter((w) => w.lostInRollback !== w.lost)).toEqual([])
      // With the bound, the master refuses for want of replicas before its lease lapses.
      expect(windows.filter((w) => w.setting.startsWith('--min') && w.firstRefusal !== 'NOREPLICAS')).toEqual([])
    },
    WINDOW * 4 * 120_000,
  )
})
