import { Redis } from 'ioredis'
import { splitHostPort } from './drivers/redis.js'
import { TandemDriver } from './drivers/tandem.js'
import { runRedisBenchmark } from './load/redis-benchmark.js'
import { cpuSeconds, serverMeasure, splitThreads, threadCpuSeconds, totalCpuUsPerOp } from './measures/proc.js'
import type { BenchOptions } from './options.js'
import type { ProgressLine } from './report/progress.js'
import type { ScenarioResult, ServerMeasure, TargetCheck, TargetResult } from './report/result.js'
import { commitBetween, commitStats, type Scenario } from './scenario.js'
import type { Topology } from './topology/topology.js'

/**
 * One scenario driven by redis-benchmark (`--driver redis-benchmark`):
 * the same binary and flags against tandem's RESP port and against Redis.
 * put is `-t set`, get is `-t get`; keys are redis-benchmark's
 * key:000000000000 .. over --keys (-r), values --value-size bytes (-d).
 * redis-benchmark runs --requests requests (default 1,000,000; it has no
 * duration), after an unmeasured warm-up with --warmup: for get, one read
 * of every key (readEveryKeyResp), then a tenth of the requests.
 */
const DEFAULT_BENCHMARK_REQUESTS = 1_000_000

/** The RESP address of a topology's master (tandem: its --resp-port). */
export function respAddress(topology: Topology): string {
  return topology.respAddress ?? topology.master
}

/** Writes key:000000000000 .. key:(keys-1) with values of valueSize bytes over RESP, so that GETs find them. */
export async function preloadResp(address: string, keys: number, valueSize: number, authToken?: string): Promise<void> {
  const [host, port] = splitHostPort(address)
  const redis = new Redis({ host, port, password: authToken, lazyConnect: true, maxRetriesPerRequest: 2 })
  await redis.connect()
  try {
    const value = Buffer.alloc(valueSize, 'x')
    for (let i = 0; i < keys; i += 1000) {
      const args: (string | Buffer)[] = []
      for (let k = i; k < Math.min(keys, i + 1000); k++) args.push(`key:${String(k).padStart(12, '0')}`, value)
      await redis.mset(...args)
    }
  } finally {
    redis.disconnect()
  }
}

/** GETs a warm-up read sends in one pipeline. */
const WARM_READ_KEYS = 1000

/**
 * Reads key:000000000000 .. key:(keys-1) once each over RESP, with GETs
 * pipelined WARM_READ_KEYS at a time (the command the measured run
 * sends); returns how many were found (floor-bare stores nothing: none).
 * A GET warm-up by redis-benchmark
 * alone picks keys at random: its tenth of the requests (100,000 over
 * 100,000 keys) reads about 63% of them, so the measured run would begin
 * with a third of the keys never read. Redis holds every key in memory
 * from the preload on; tandem holds a key's value in its read cache
 * (which holds 100,000 keys of 100 bytes) once a read has read it.
 * Without this pass, the measured run's first reads of those keys went to
 * LevelDB: a start-up cost no steady read load pays, not a steady GET's.
 */
export async function readEveryKeyResp(address: string, keys: number, authToken?: string): Promise<number> {
  const [host, port] = splitHostPort(address)
  const redis = new Redis({ host, port, password: authToken, lazyConnect: true, maxRetriesPerRequest: 2 })
  await redis.connect()
  let found = 0
  try {
    for (let i = 0; i < keys; i += WARM_READ_KEYS) {
      const pipeline = redis.pipeline()
      const names: string[] = []
      for (let k = i; k < Math.min(keys, i + WARM_READ_KEYS); k++) {
        const name = `key:${String(k).padStart(12, '0')}`
        names.push(name)
        pipeline.getBuffer(name)
      }
      const results = (await pipeline.exec()) ?? []
      for (let j = 0; j < names.length; j++) {
        const [err, value] = results[j] ?? [new Error('no reply'), null]
        if (err) throw new Error(`warm-up read of ${names[j]} at ${address} failed: ${err.message}`)
        if (value !== null) found++
      }
    }
  } finally {
    redis.disconnect()
  }
  return found
}

export async function runBenchmarkScenario(
  topology: Topology,
  s: Scenario,
  o: BenchOptions,
  progress: ProgressLine,
): Promise<TargetResult> {
  const [host, port] = splitHostPort(respAddress(topology))
  const requests = o.requests ?? DEFAULT_BENCHMARK_REQUESTS
  const run = {
    host,
    port,
    test: s.workload === 'put' ? ('set' as const) : ('get' as const),
    clients: s.clients,
    pipeline: s.pipeline,
    valueSize: o.valueSize,
    keys: o.keys,
    requests,
    threads: o.workers > 0 ? o.workers : 2,
    authToken: o.authToken,
  }
  const label = `${topology.target} ${s.name} (redis-benchmark)`
  if (o.warmup > 0 && s.workload === 'get') {
    const found = await readEveryKeyResp(respAddress(topology), o.keys, o.authToken)
    progress.note(
      `${label}: warm-up, one read of each of ${o.keys.toLocaleString('en-US')} keys (${found.toLocaleString('en-US')} found)`,
    )
  }
  if (o.warmup > 0) {
    progress.note(`${label}: warm-up, ${Math.ceil(requests / 10).toLocaleString('en-US')} requests`)
    await runRedisBenchmark({ ...run, requests: Math.ceil(requests / 10) })
  }
  // tandem and the floor server count their group commits in their status (over the WebSocket).
  const statusClient =
    topology.target === 'redis'
      ? null
      : await TandemDriver.open({
          target: topology.target,
          servers: [topology.master],
          authToken: o.authToken,
          pipeline: 1,
        })
  const commitBefore = await commitStats(statusClient)
  const cpuBefore = await Promise.all(topology.processes.map((p) => (p.pid ? cpuSeconds(p.pid) : undefined)))
  const threadsBefore = await Promise.all(topology.processes.map((p) => (p.pid ? threadCpuSeconds(p.pid) : undefined)))
  const result = await runRedisBenchmark(run)
  const cpuAfter = await Promise.all(topology.processes.map((p) => (p.pid ? cpuSeconds(p.pid) : undefined)))
  const threadsAfter = await Promise.all(topology.processes.map((p) => (p.pid ? threadCpuSeconds(p.pid) : undefined)))
  const commit = commitBetween(commitBefore, await commitStats(statusClient))
  await statusClient?.close()
  const servers: ServerMeasure[] = await Promise.all(
    topology.processes.map(async (p, i) => {
      const tBefore = threadsBefore[i]
      const tAfter = threadsAfter[i]
      return {
        ...(await serverMeasure(p, cpuBefore[i], cpuAfter[i], result)),
        // Which thread the CPU went to: the main thread against LevelDB's and V8's.
        threads: p.pid && tBefore && tAfter ? splitThreads(p.pid, tBefore, tAfter, result.elapsedS) : null,
      }
    }),
  )
  const l = result.latencyMs
  progress.note(
    `${label}: ${result.throughput.toLocaleString('en-US')} ops/s  p50 ${l.p50} p99 ${l.p99} p99.9 ${l.p999} ms  (${result.commandLine})`,
  )
  return {
    target: topology.target,
    master: topology.master,
    replicas: topology.replicas,
    version: topology.version ?? null,
    throughput: result.throughput,
    ops: result.ops,
    errors: 0,
    firstError: null,
    durationS: result.elapsedS,
    latencyMs: result.latencyMs,
    harness: {
      cpuCores: result.generatorCores,
      threads: run.threads,
      cpuBound: result.generatorCores >= 0.85 * run.threads,
    },
    servers,
    serverCpuUsPerOp: totalCpuUsPerOp(cpuBefore, cpuAfter, result.ops),
    commit,
    replicationLag: null,
    failover: null,
    fullSync: null,
  }
}

/**
 * Issue 15's targets, read off a redis-benchmark compare: tandem's SET and
 * GET throughput over Redis's with the same flags, at least 0.8x
 * unpipelined and 1.0x at -P 16 or more, with --sync periodic (against
 * appendfsync everysec) and 100-byte values. Other settings are reported
 * with no target. Ids: `resp.put.50x1`, `resp.get.50x16`, ...
 */
export function redisBenchmarkChecks(scenarios: ScenarioResult[], o: BenchOptions): TargetCheck[] {
  const checks: TargetCheck[] = []
  for (const s of scenarios) {
    if (!s.ratios || (s.workload !== 'put' && s.workload !== 'get')) continue
    const wanted =
      o.sync !== 'periodic' || s.valueSize !== 100 ? null : s.pipeline === 1 ? 0.8 : s.pipeline >= 16 ? 1 : null
    checks.push({
      id: `resp.${s.workload}.${s.clients}x${s.pipeline}`,
      name: `redis-benchmark ${s.workload === 'put' ? 'SET' : 'GET'} -c ${s.clients} -P ${s.pipeline} -d ${s.valueSize}, tandem / Redis throughput (--sync ${o.sync})`,
      measured: s.ratios.throughput,
      unit: 'x',
      target: wanted === null ? '-' : `>= ${wanted}`,
      met: wanted === null ? null : s.ratios.throughput >= wanted,
    })
  }
  return checks
}
