import { readFileSync } from 'node:fs'
import type { TandemClient } from '@tandem/client'
import type { DriverSpec, TargetName } from './drivers/driver.js'
import { TandemDriver } from './drivers/tandem.js'
import { preload } from './load/client-group.js'
import { summarize } from './load/histogram.js'
import { runLoad } from './load/runner.js'
import { describeMachine } from './machine.js'
import { cpuSeconds, peakRssBytes } from './measures/proc.js'
import { LagProbe } from './measures/replication-lag.js'
import type { BenchOptions, WorkloadName } from './options.js'
import { measureRawLevelDb, type RawResult } from './raw-leveldb.js'
import { ProgressLine, progressMode } from './report/progress.js'
import type { BenchReport, ScenarioResult, ServerMeasure, TargetResult } from './report/result.js'
import { REDIS_MISSING, redisServerVersion, startRedis, useRedis } from './topology/redis.js'
import { startTandem, useTandem } from './topology/tandem.js'
import { TargetUnavailable, type Topology } from './topology/topology.js'
import { readsKeys } from './workloads.js'

/**
 * One tandem-bench invocation: bring up (or attach to) each target's
 * topology, preload the keyspace when a workload reads, run every scenario
 * of the matrix (workload x clients x pipeline) on each target in turn,
 * tear everything down, then the ratios.
 */

export interface Scenario {
  name: string
  workload: WorkloadName
  clients: number
  pipeline: number
}

export function scenarioMatrix(o: BenchOptions): Scenario[] {
  const out: Scenario[] = []
  for (const workload of o.workload)
    for (const clients of o.clients)
      for (const pipeline of o.pipeline)
        out.push({ name: `${workload} ${clients}x${pipeline}`, workload, clients, pipeline })
  return out
}

const TANDEM_VERSION = (() => {
  try {
    return JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version as string
  } catch {
    return 'unknown'
  }
})()

/** Topologies still up; bin/ tears them down on SIGINT/SIGTERM. */
export const liveTopologies = new Set<Topology>()

export async function runBench(o: BenchOptions, commandLine: string): Promise<BenchReport> {
  const progress = new ProgressLine(progressMode(o.progress))
  const startedAt = new Date().toISOString()
  const targets: TargetName[] = o.command === 'compare' ? ['tandem', 'redis'] : o.command === 'run' ? [o.target] : []
  let redisVersion = await redisServerVersion()
  if (targets.includes('redis') && !o.redis && !redisVersion) throw new TargetUnavailable(REDIS_MISSING)

  let rawLevelDb: RawResult[] | null = null
  if (o.command === 'raw' || o.raw) {
    const durationS = o.command === 'raw' ? o.duration : Math.min(o.duration, 5)
    progress.note(`raw LevelDB: fsynced chained batches of ${o.batchSizes.join(', ')} x ${o.valueSize}-byte values`)
    rawLevelDb = await measureRawLevelDb(
      { batchSizes: o.batchSizes, valueSize: o.valueSize, keys: o.keys, durationS, sync: o.sync !== 'none' },
      (r) =>
        progress.note(
          `  batch ${r.batchSize}: ${r.entriesPerSec.toLocaleString('en-US')} entries/s, ` +
            `${r.batchesPerSec.toLocaleString('en-US')} batches/s, p50 ${r.batchLatencyMs.p50} ms`,
        ),
    )
  }

  const scenarios = scenarioMatrix(o)
  const results: ScenarioResult[] = scenarios.map((s) => ({
    name: s.name,
    workload: s.workload,
    distribution: o.distribution,
    clients: s.clients,
    pipeline: s.pipeline,
    valueSize: o.valueSize,
    keys: o.keys,
    w: o.w ?? null,
    targets: {},
    ratios: null,
  }))

  // Both topologies stay up for the whole run and the scenarios alternate
  // between targets, so that a noisy neighbour on a shared machine hits
  // both sides of a ratio alike rather than one side's whole series.
  const open: { target: TargetName; topology: Topology; spec: DriverSpec }[] = []
  try {
    for (const target of targets) {
      const topology = await openTopology(target, o)
      liveTopologies.add(topology)
      if (target === 'redis' && topology.version) redisVersion = topology.version
      const spec: DriverSpec = { target, servers: [topology.master], authToken: o.authToken, w: o.w, pipeline: 1 }
      open.push({ target, topology, spec })
      progress.note(
        `${target}: master ${topology.master}` +
          (topology.replicas.length ? `, replicas ${topology.replicas.join(', ')}` : '') +
          (topology.processes.length ? ' (started by tandem-bench)' : ''),
      )
      if (scenarios.some((s) => readsKeys(s.workload))) {
        progress.note(`${target}: preloading ${o.keys.toLocaleString('en-US')} keys of ${o.valueSize} bytes`)
        await preload(spec, o.keys, o.valueSize)
      }
      if (topology.replicas.length > 0 && !(await topology.waitForReplicas(o.syncTimeout * 1000))) {
        progress.note(
          `${target}: warning: replicas did not catch up with the master within ${o.syncTimeout}s; ` +
            'lag figures will show it',
        )
      }
    }
    for (let i = 0; i < scenarios.length; i++) {
      for (const { target, topology, spec } of open) {
        results[i].targets[target] = await runScenario(target, topology, spec, scenarios[i], o, progress)
      }
    }
  } finally {
    for (const { topology } of open) liveTopologies.delete(topology)
    await Promise.all(open.map(({ topology }) => topology.close()))
  }

  for (const r of results) {
    const t = r.targets.tandem
    const rd = r.targets.redis
    if (t && rd) {
      const ratio = (a: number, b: number) => (b > 0 ? Math.round((a / b) * 100) / 100 : 0)
      r.ratios = {
        throughput: ratio(t.throughput, rd.throughput),
        p50: ratio(t.latencyMs.p50, rd.latencyMs.p50),
        p99: ratio(t.latencyMs.p99, rd.latencyMs.p99),
        p999: ratio(t.latencyMs.p999, rd.latencyMs.p999),
      }
    }
  }

  const report: BenchReport = {
    tool: 'tandem-bench',
    command: o.command,
    commandLine,
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: describeMachine(redisVersion, TANDEM_VERSION),
    settings: {
      replicas: o.replicas,
      sync: o.sync,
      redisPersistence: 'appendonly yes, appendfsync everysec',
      durationS: o.requests === undefined ? o.duration : null,
      requests: o.requests ?? null,
      warmupS: o.warmup,
      workers: o.workers,
    },
    rawLevelDb,
    scenarios: results,
  }
  if (results.length === 1 && targets.length > 0) report.targets = results[0].targets
  return report
}

async function openTopology(target: TargetName, o: BenchOptions): Promise<Topology> {
  if (target === 'tandem') {
    if (o.server) return useTandem(o.server, o.authToken)
    return startTandem({ replicas: o.replicas, sync: o.sync, authToken: o.authToken })
  }
  if (o.redis) return useRedis(o.redis, o.authToken)
  return startRedis({ replicas: o.replicas, authToken: o.authToken })
}

async function runScenario(
  target: TargetName,
  topology: Topology,
  spec: DriverSpec,
  s: Scenario,
  o: BenchOptions,
  progress: ProgressLine,
): Promise<TargetResult> {
  const label = `${target} ${s.name}`
  let statusClient: TandemDriver | null = null
  if (target === 'tandem') statusClient = await TandemDriver.open({ ...spec, pipeline: 1 })
  try {
    let commitBefore: CommitStats | null = null
    let cpuBefore: (number | undefined)[] = []
    const probe = topology.replicas.length > 0 ? new LagProbe(spec, topology.replicas) : null
    progress.reset()
    const load = await runLoad(
      {
        driver: spec,
        clients: s.clients,
        pipeline: s.pipeline,
        workload: s.workload,
        distribution: o.distribution,
        keys: o.keys,
        valueSize: o.valueSize,
        workers: o.workers,
        warmupS: o.warmup,
        durationS: o.duration,
        requests: o.requests,
      },
      (p) => progress.update(label, p, o.requests === undefined ? o.duration : null, o.requests ?? null),
      () => {
        probe?.start()
        // Sampled synchronously enough: both reads finish within a few ms of the window's start.
        void commitStats(statusClient).then((c) => (commitBefore = c))
        void Promise.all(topology.processes.map((p) => (p.pid ? cpuSeconds(p.pid) : undefined))).then(
          (c) => (cpuBefore = c),
        )
      },
    )
    progress.end()
    const lag = probe ? await probe.stop() : null
    const commitAfter = await commitStats(statusClient)
    const cpuAfter = await Promise.all(topology.processes.map((p) => (p.pid ? cpuSeconds(p.pid) : undefined)))
    const servers: ServerMeasure[] = await Promise.all(
      topology.processes.map(async (p, i) => {
        const rss = p.pid ? await peakRssBytes(p.pid) : undefined
        const before = cpuBefore[i]
        const after = cpuAfter[i]
        return {
          role: p.role,
          pid: p.pid ?? null,
          peakRssMB: rss === undefined ? null : Math.round((rss / 2 ** 20) * 10) / 10,
          cpuCores:
            before === undefined || after === undefined
              ? null
              : Math.round(((after - before) / load.elapsedS) * 100) / 100,
        }
      }),
    )
    const before = commitBefore as CommitStats | null
    const commit =
      before && commitAfter
        ? {
            groups: commitAfter.groups - before.groups,
            writes: commitAfter.writes - before.writes,
            avgGroupSize:
              commitAfter.groups === before.groups
                ? 0
                : Math.round(((commitAfter.writes - before.writes) / (commitAfter.groups - before.groups)) * 10) / 10,
          }
        : null
    const result: TargetResult = {
      target,
      master: topology.master,
      replicas: topology.replicas,
      version: topology.version ?? null,
      throughput: Math.round(load.ops / load.elapsedS),
      ops: load.ops,
      errors: load.errors,
      firstError: load.firstError ?? null,
      durationS: Math.round(load.elapsedS * 1000) / 1000,
      latencyMs: summarize(load.histogram),
      harness: {
        cpuCores: Math.round(load.harnessCores * 100) / 100,
        threads: load.harnessThreads,
        cpuBound: load.harnessCores >= 0.85 * load.harnessThreads,
      },
      servers,
      commit,
      replicationLag: lag,
      failover: null,
      fullSync: null,
    }
    const l = result.latencyMs
    progress.note(
      `${label}: ${result.throughput.toLocaleString('en-US')} ops/s  p50 ${l.p50} p99 ${l.p99} p99.9 ${l.p999} ms` +
        (result.errors ? `  errors ${result.errors} (${result.firstError})` : ''),
    )
    return result
  } finally {
    await statusClient?.close()
  }
}

interface CommitStats {
  groups: number
  writes: number
}

async function commitStats(client: TandemDriver | null): Promise<CommitStats | null> {
  if (!client) return null
  try {
    const status = (await client.status()) as Awaited<ReturnType<TandemClient['status']>> & { commit?: CommitStats }
    return status.commit ? { groups: status.commit.groups, writes: status.commit.writes } : null
  } catch {
    return null
  }
}
