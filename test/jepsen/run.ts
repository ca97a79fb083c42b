import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Consistency, TandemClient, WriteConcern } from '@tandem/client'
import { prng, scanAll } from '../failover/group.js'
import { HistoryRecorder } from './checker/history.js'
import { checkHistory, type Verdict } from './checker/linearizable.js'
import { registerModel } from './checker/model.js'
import { checkSet, type SetVerdict } from './checker/set.js'
import { type Cluster, failoverTopology, type Topology } from './cluster.js'
import { SmallDisks } from './disks.js'
import { type FaultEvent, type FaultKind, Nemesis } from './nemesis.js'
import { type RunHeader, writeLinearizabilityReport, writeSetReport } from './report.js'
import { Timeline } from './timeline.js'
import { RegisterWorkload, SET_PREFIX, SetWorkload, type WorkloadOptions } from './workloads.js'

/**
 * One run of the fault suite: start a group, run a workload against it
 * while the nemesis injects faults, heal everything, let the group settle,
 * then check what the clients saw. Everything random comes from `seed`, so
 * a failing run can be replayed (its faults and ops, not the exact timing
 * of processes on a shared machine).
 */
export interface RunOptions {
  seed: number
  workload: 'register' | 'set'
  durationMs: number
  nodes: number
  clients: number
  /** Keys of the register workload. */
  keys: number
  w: WriteConcern | 'mixed'
  consistency: Consistency | undefined
  faults: FaultKind[]
  /** A fault move every min..max ms. */
  faultEveryMs: [number, number]
  maxActiveFaults: number
  serverArgs: string[]
  /** Where reports go. */
  outDir: string
  /** The command that replays this run, for reports. */
  replay: string
  topology?: Topology
  callTimeoutMs?: number
  checkTimeoutMs?: number
}

export interface RunResult {
  options: RunOptions
  ok: boolean
  /** Why not, in a line. */
  problems: string[]
  ops: number
  counts: { ok: number; fail: number; unknown: number }
  errors: Record<string, number>
  faults: number
  faultCounts: Record<string, number>
  faultEvents: FaultEvent[]
  verdict?: Verdict
  setVerdict?: SetVerdict
  /** Entries in rollback files, and acknowledged w:0 writes undone at the end that none holds. */
  rolledBack: number
  /** Rolled-back ranges named but not held by a rollback file (see rollbackGaps). */
  rollbackGaps: { node: number; fromSeq: number; toSeq: number; why: string }[]
  lostNotInRollback: string[]
  diskFull: string
  reportFile?: string
  wallMs: number
}

/** Node settings that make fail-overs come quickly enough for short runs. */
export const FAST_FAILOVER = ['--failover-timeout', '600', '--heartbeat-interval', '100']

export async function runOnce(options: RunOptions): Promise<RunResult> {
  const started = Date.now()
  const topology = options.topology ?? failoverTopology
  // Faults and ops draw from streams of their own, so that a replay injects
  // the same faults however the ops interleave with them.
  const random = prng(options.seed)
  const opsRandom = prng(options.seed ^ 0x5bd1e995)
  const runDir = join(tmpdir(), `tandem-jepsen-${options.seed}-${process.pid}-${Date.now()}`)
  mkdirSync(runDir, { recursive: true })
  const clockFiles = Array.from({ length: options.nodes }, (_, i) => join(runDir, `clock-${i}`))
  for (const f of clockFiles) writeFileSync(f, '0')
  let disks: SmallDisks | null = null
  let diskFull = 'not asked for'
  if (options.faults.includes('disk-full')) {
    const made = SmallDisks.create(runDir, options.nodes)
    if (typeof made === 'string') diskFull = `skipped: ${made}`
    else {
      disks = made
      diskFull = 'on (64 MiB tmpfs per node)'
    }
  }

  const t0 = performance.now()
  const now = () => performance.now() - t0
  let cluster: Cluster | null = null
  const clients: TandemClient[] = []
  const timelineRef: { t: Timeline | null } = { t: null }
  try {
    cluster = await topology.start({
      size: options.nodes,
      args: options.serverArgs,
      // Each node's test clock (--test-clock-file, see test/helpers/test-clock.ts), stepped by the clock fault.
      env: (i) => ({ TANDEM_TEST_CLOCK_FILE: clockFiles[i] }),
      dataDir: disks ? (i) => (disks as SmallDisks).dataDir(i) : undefined,
    })
    const timeline = new Timeline(cluster, now).start()
    timelineRef.t = timeline
    const timeoutMs = options.callTimeoutMs ?? 2000
    for (let c = 0; c < options.clients; c++) {
      clients.push(
        await cluster.client({
          timeoutMs: timeoutMs + 1500,
          connectTimeoutMs: 2000,
          ...(options.consistency ? { consistency: options.consistency } : {}),
        }),
      )
    }
    const history = new HistoryRecorder(now)
    const workloadOptions: WorkloadOptions = {
      w: options.w,
      consistency: options.consistency,
      timeoutMs,
      random: opsRandom,
    }
    const keys = Array.from({ length: options.keys }, (_, k) => `r${k}`)
    const workload =
      options.workload === 'register'
        ? new RegisterWorkload(clients, history, workloadOptions, keys)
        : new SetWorkload(clients, history, workloadOptions)
    const nemesis = new Nemesis(cluster, timeline, random, now, {
      kinds: options.faults,
      maxActive: options.maxActiveFaults,
      clockFiles,
      disks,
    })

    workload.start()
    const end = now() + options.durationMs
    const [lo, hi] = options.faultEveryMs
    while (now() < end) {
      await new Promise((r) => setTimeout(r, lo + random() * (hi - lo)))
      if (now() >= end) break
      if (options.faults.length > 0) await nemesis.step()
    }
    await nemesis.healAll()
    for (const row of cluster.proxies) for (const p of row) p?.heal()
    await topology.waitWritable(cluster, 60_000)
    // Some quiet time with everything healed: the group settles under load.
    const quietUntil = now() + 2000
    while (now() < quietUntil) await new Promise((r) => setTimeout(r, 100))
    await workload.stop()
    if (workload instanceof RegisterWorkload) await workload.finalReads()

    await cluster.waitConverged(60_000)
    timeline.stop()
    const problems: string[] = []
    const header: RunHeader = {
      title: '',
      seed: options.seed,
      replay: options.replay,
      settings: {
        workload: options.workload,
        topology: topology.name,
        durationMs: options.durationMs,
        nodes: options.nodes,
        clients: options.clients,
        keys: options.keys,
        w: options.w,
        consistency: options.consistency ?? '(SDK default)',
        faults: options.faults,
        faultEveryMs: options.faultEveryMs,
        serverArgs: options.serverArgs,
      },
    }
    const slug = `${options.workload}-seed${options.seed}-${options.consistency ?? 'default'}-w${options.w}`
    let verdict: Verdict | undefined
    let setVerdict: SetVerdict | undefined
    let reportFile: string | undefined
    // Rolled-back entries, by key=value.
    const rolledBack = new Set<string>()
    let rolledBackCount = 0
    // Rolled-back ranges a node could only name (its log no longer held them):
    // reported; a lost acknowledged write among them shows as notInRollback.
    const rollbackGaps = cluster.nodes.flatMap((_, i) =>
      (cluster as Cluster).rollbackGaps(i).map((gap) => ({ node: i, ...gap })),
    )
    cluster.nodes.forEach((_, i) => {
      for (const entry of (cluster as Cluster).rollbackEntries(i)) {
        rolledBackCount++
        for (const op of entry.ops)
          rolledBack.add(op.type === 'del' ? `del ${op.key}` : `${op.key}=${String(op.value)}`)
      }
    })
    let lostNotInRollback: string[] = []
    if (options.workload === 'register') {
      verdict = checkHistory(history.ops, registerModel, { timeoutMs: options.checkTimeoutMs ?? 120_000 })
      if (verdict.valid !== true) {
        problems.push(
          verdict.valid === false
            ? `not linearizable: ${verdict.failures.length} of ${verdict.keys.length} keys (${verdict.failures.map((f) => f.key).join(', ')})`
            : 'the checker gave up (timeout) on some key',
        )
        if (verdict.failures.length > 0) {
          reportFile = join(options.outDir, `${slug}.txt`)
          header.title = `linearizability violation (${verdict.failures.length} of ${verdict.keys.length} keys)`
          writeLinearizabilityReport(reportFile, header, verdict.failures, nemesis.events, timeline, options.nodes)
        }
      }
    } else {
      const perNode = await Promise.all(
        cluster.nodes.map(async (node, i) => ((cluster as Cluster).isWitness(i) ? null : await scanSet(node.address))),
      )
      setVerdict = checkSet(history.ops, perNode, (add) => add.w === '0')
      lostNotInRollback = [
        ...setVerdict.lostAllowed.filter((e) => !rolledBack.has(`${e}=1`)),
        ...setVerdict.resurrectedAllowed.filter((e) => !rolledBack.has(`del ${e}`)).map((e) => `del ${e}`),
      ]
      if (!setVerdict.valid || lostNotInRollback.length > 0) {
        problems.push(
          `set: ${setVerdict.lost.length} lost, ${setVerdict.resurrected.length} resurrected, ${setVerdict.unexpected.length} unexpected, ${setVerdict.diverged.length} nodes differ, ${lostNotInRollback.length} lost w:0 adds in no rollback file`,
        )
        reportFile = join(options.outDir, `${slug}.txt`)
        header.title = 'set check failed'
        writeSetReport(
          reportFile,
          header,
          setVerdict,
          history.ops.filter((o) => o.f === 'add'),
          nemesis.events,
        )
      }
    }
    const counts = { ok: 0, fail: 0, unknown: 0 }
    for (const op of history.ops) counts[op.status]++
    return {
      options,
      ok: problems.length === 0,
      problems,
      ops: history.ops.length,
      counts,
      errors: Object.fromEntries(workload.errors),
      faults: nemesis.injected,
      faultCounts: Object.fromEntries(nemesis.counts),
      faultEvents: nemesis.events,
      verdict,
      setVerdict,
      rolledBack: rolledBackCount,
      rollbackGaps,
      lostNotInRollback,
      diskFull,
      reportFile,
      wallMs: Date.now() - started,
    }
  } finally {
    timelineRef.t?.stop()
    await Promise.all(clients.map((c) => c.close()))
    await cluster?.teardown()
    disks?.unmountAll()
    rmSync(runDir, { recursive: true, force: true })
  }
}

async function scanSet(address: string): Promise<Set<string>> {
  const data = await scanAll(address)
  return new Set([...data.keys()].filter((k) => k.startsWith(SET_PREFIX)))
}

/** A line for the log: what the run did and found. */
export function summarize(r: RunResult): string {
  const o = r.options
  const checked = r.verdict
    ? `linearizable: ${r.verdict.valid} (${r.verdict.keys.length} keys, checked in ${r.verdict.ms.toFixed(0)} ms)`
    : r.setVerdict
      ? `set: ${r.setVerdict.acknowledgedAdds} acknowledged adds, ${r.setVerdict.lost.length} lost, ${r.setVerdict.resurrected.length} removals undone; w:0 ${r.setVerdict.lostAllowed.length} adds lost, ${r.setVerdict.resurrectedAllowed.length} removals undone (${r.lostNotInRollback.length} in no rollback file); ${r.setVerdict.unknownAddsPresent}/${r.setVerdict.unknownAdds} unknown adds present`
      : ''
  return `jepsen: ${o.workload} seed ${o.seed} w ${o.w} consistency ${o.consistency ?? 'default'}: ${r.ops} ops (${r.counts.ok} ok, ${r.counts.fail} failed, ${r.counts.unknown} unknown), ${r.faults} faults ${JSON.stringify(r.faultCounts)}, disk-full ${r.diskFull}; ${checked}; ${r.rolledBack} entries in rollback files${r.rollbackGaps.length > 0 ? ` (and ranges only named: ${JSON.stringify(r.rollbackGaps)})` : ''}; ${r.ok ? 'OK' : `PROBLEMS: ${r.problems.join('; ')}`}${r.reportFile ? ` (report ${r.reportFile})` : ''}; ${(r.wallMs / 1000).toFixed(0)} s`
}
