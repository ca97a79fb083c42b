import { readFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { preloadResp, redisBenchmarkChecks, respAddress, runBenchmarkScenario } from './benchmark-scenario.js'
import { consistencyChecks } from './consistency-checks.js'
import type { DriverSpec, TargetName } from './drivers/driver.js'
import { floorChecks } from './floor/floor-checks.js'
import { preload } from './load/client-group.js'
import { describeMachine } from './machine.js'
import { type BenchOptions, isSuite, redisFsyncOf } from './options.js'
import { measureRawLevelDb, type RawResult } from './raw-leveldb.js'
import { gitState } from './report/git-state.js'
import { ProgressLine, progressMode } from './report/progress.js'
import type { BenchReport, ScenarioResult, TargetCheck, TargetResult } from './report/result.js'
import { scenarioResult } from './report/scenario-result.js'
import { runScenario, type Scenario } from './scenario.js'
import { runSuite } from './suites/suite.js'
import { startFloor } from './topology/floor.js'
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

export function scenarioMatrix(o: BenchOptions): Scenario[] {
  const out: Scenario[] = []
  for (const workload of o.workload) {
    if (isSuite(workload)) continue
    // Consistency matters to reads only: a put-only workload runs once.
    const consistencies = readsKeys(workload) && o.consistency ? o.consistency : [undefined]
    for (const clients of o.clients)
      for (const pipeline of o.pipeline)
        for (const consistency of consistencies)
          out.push({
            name: `${workload} ${clients}x${pipeline}${o.rate === undefined ? '' : ` @${o.rate}/s`}${consistency ? ` ${consistency}` : ''}`,
            workload,
            clients,
            pipeline,
            rate: o.rate,
            consistency,
          })
  }
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
  const loadAtStart = loadavg().map((x) => Math.round(x * 100) / 100)
  const git = gitState()
  const targets: TargetName[] = o.command === 'compare' ? o.targets : o.command === 'run' ? [o.target] : []
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
  const results: ScenarioResult[] = scenarios.map((s) =>
    scenarioResult(o, {
      name: s.name,
      workload: s.workload,
      clients: s.clients,
      pipeline: s.pipeline,
      consistency: s.consistency ?? null,
      offeredRate: s.rate ?? null,
      replicas: o.replicas,
    }),
  )

  // Both topologies stay up for the whole run and the scenarios alternate
  // between targets, so that a noisy neighbour on a shared machine hits
  // both sides of a ratio alike rather than one side's whole series.
  const open: { target: TargetName; topology: Topology; spec: DriverSpec }[] = []
  try {
    for (const target of scenarios.length > 0 ? targets : []) {
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
        if (o.driver === 'redis-benchmark') await preloadResp(respAddress(topology), o.keys, o.valueSize, o.authToken)
        else await preload(spec, o.keys, o.valueSize)
      }
      if (topology.replicas.length > 0 && !(await topology.waitForReplicas(o.syncTimeout * 1000))) {
        progress.note(
          `${target}: warning: replicas did not catch up with the master within ${o.syncTimeout}s; ` +
            'lag figures will show it',
        )
      }
    }
    // With --repeat (compare), every other pass goes through the targets
    // backwards, so that a drift of the machine's load weighs on each alike.
    const passes = o.command === 'compare' ? (o.repeat ?? 1) : 1
    for (let i = 0; i < scenarios.length; i++) {
      const runs = new Map<TargetName, TargetResult[]>()
      for (let pass = 0; pass < passes; pass++) {
        for (const { target, topology, spec } of pass % 2 === 0 ? open : [...open].reverse()) {
          const r =
            o.driver === 'redis-benchmark'
              ? await runBenchmarkScenario(topology, scenarios[i], o, progress)
              : await runScenario(target, topology, spec, scenarios[i], o, progress)
          runs.set(target, [...(runs.get(target) ?? []), r])
        }
      }
      for (const { target } of open) results[i].targets[target] = medianRun(runs.get(target)!)
      if (passes > 1) {
        results[i].targetPasses = Object.fromEntries(
          [...runs].map(([t, rs]) => [
            t,
            rs.map((r) => ({ throughput: r.throughput, serverCpuUsPerOp: r.serverCpuUsPerOp ?? null })),
          ]),
        )
      }
    }
  } finally {
    for (const { topology } of open) liveTopologies.delete(topology)
    await Promise.all(open.map(({ topology }) => topology.close()))
  }

  // Suites bring up (and kill) their own servers, one suite after another.
  const checks: TargetCheck[] = []
  for (const suite of o.workload.filter(isSuite)) {
    const out = await runSuite(suite, o, progress, liveTopologies)
    results.push(...out.scenarios)
    checks.push(...out.checks)
  }

  const ratio = (a: number, b: number) => (b > 0 ? Math.round((a / b) * 100) / 100 : 0)
  for (const r of results) {
    const t = r.targets.tandem
    const rd = r.targets.redis
    if (rd) {
      for (const other of ['floor', 'floor-bare'] as const) {
        const f = r.targets[other]
        if (!f) continue
        r.floors ??= {}
        r.floors[other] = {
          throughputVsRedis: ratio(f.throughput, rd.throughput),
          serverCpuVsRedis:
            f.serverCpuUsPerOp && rd.serverCpuUsPerOp ? ratio(f.serverCpuUsPerOp, rd.serverCpuUsPerOp) : null,
          tandemCpuAboveUs:
            t?.serverCpuUsPerOp && f.serverCpuUsPerOp
              ? Math.round((t.serverCpuUsPerOp - f.serverCpuUsPerOp) * 100) / 100
              : null,
        }
      }
    }
    if (t && rd) {
      r.ratios = {
        throughput: ratio(t.throughput, rd.throughput),
        p50: ratio(t.latencyMs.p50, rd.latencyMs.p50),
        p99: ratio(t.latencyMs.p99, rd.latencyMs.p99),
        p999: ratio(t.latencyMs.p999, rd.latencyMs.p999),
        serverCpuPerOp:
          t.serverCpuUsPerOp && rd.serverCpuUsPerOp ? ratio(t.serverCpuUsPerOp, rd.serverCpuUsPerOp) : null,
      }
    }
  }

  if (o.driver === 'redis-benchmark') checks.push(...redisBenchmarkChecks(results, o))
  if (o.consistency) checks.push(...consistencyChecks(results))
  checks.push(...floorChecks(results, o))

  const report: BenchReport = {
    tool: 'tandem-bench',
    command: o.command,
    commandLine,
    git,
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: {
      ...describeMachine(redisVersion, TANDEM_VERSION),
      loadAverage: loadAtStart,
      loadAverageAtEnd: loadavg().map((x) => Math.round(x * 100) / 100),
    },
    settings: {
      replicas: o.replicas,
      cluster: o.cluster,
      sync: o.sync,
      redisPersistence: `appendonly yes, appendfsync ${redisFsyncOf(o)}`,
      durationS: o.requests === undefined ? o.duration : null,
      requests: o.requests ?? null,
      warmupS: o.warmup,
      workers: o.workers,
      rate: o.rate ?? null,
      lagIntervalMs: o.lagInterval ?? null,
      rounds: o.workload.includes('failover') ? o.rounds : null,
      driver: o.driver,
    },
    rawLevelDb,
    scenarios: results,
    checks,
  }
  if (results.length === 1 && targets.length > 0) report.targets = results[0].targets
  return report
}

/** Of a target's passes, the one of median throughput (the lower middle of an even count). */
function medianRun(runs: TargetResult[]): TargetResult {
  const sorted = [...runs].sort((a, b) => a.throughput - b.throughput)
  return sorted[Math.floor((sorted.length - 1) / 2)]
}

async function openTopology(target: TargetName, o: BenchOptions): Promise<Topology> {
  if (target === 'floor' || target === 'floor-bare') return startFloor({ storage: target === 'floor', sync: o.sync })
  if (target === 'tandem') {
    if (o.server) return useTandem(o.server, o.authToken)
    return startTandem({
      replicas: o.replicas,
      cluster: o.cluster,
      sync: o.sync,
      authToken: o.authToken,
      resp: o.driver === 'redis-benchmark',
    })
  }
  if (o.redis) return useRedis(o.redis, o.authToken)
  return startRedis({ replicas: o.replicas, authToken: o.authToken, appendfsync: redisFsyncOf(o) })
}
