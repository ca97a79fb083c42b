import type { TandemClient } from '@tandem/client'
import type { DriverSpec, TargetName } from './drivers/driver.js'
import { TandemDriver } from './drivers/tandem.js'
import { summarize } from './load/histogram.js'
import { type LoadCount, runLoad } from './load/runner.js'
import {
  cpuSeconds,
  mainWaitSeconds,
  serverMeasure,
  splitThreads,
  threadCpuSeconds,
  totalCpuUsPerOp,
  waitShare,
} from './measures/proc.js'
import { ProcessLagProbe } from './measures/replication-lag.js'
import type { BenchOptions, LoadWorkloadName } from './options.js'
import type { ProgressLine } from './report/progress.js'
import type { ServerMeasure, TargetResult } from './report/result.js'
import type { Topology } from './topology/topology.js'

/** One load scenario on one running topology: the load, its latency, and what the servers did meanwhile. */

export interface Scenario {
  name: string
  workload: LoadWorkloadName
  clients: number
  pipeline: number
  /** Open loop at this many ops/s; closed loop when absent. */
  rate?: number
  /** tandem: read consistency of gets. */
  consistency?: 'linearizable' | 'lease' | 'local'
}

interface ScenarioExtras {
  /** ms between replication-lag markers (default 250). */
  lagIntervalMs?: number
  /**
   * Multi-master: markers put on every node in turn and timed on the other
   * nodes' watches, open loop (MarkerLagProbe), instead of a marker on the
   * master polled on the replicas.
   */
  peerLag?: boolean
  /**
   * With peerLag: markers are put on the master alone and timed on the
   * replicas' watches (a master and its replicas: the peers' probe, so that
   * the two lags are measured alike).
   */
  markersOnMaster?: boolean
  /** With peerLag: the probe writes its markers' times to this directory (see lag-anatomy.ts). */
  lagTraceDir?: string
  /** Ends the measured window when it settles, instead of --duration (see runLoad). */
  measureFor?: (count: () => Promise<LoadCount>) => Promise<void>
  /**
   * false: no replication-lag probe, so that a run with replicas differs
   * from one without only by the replicas (the probe is a process of its
   * own that writes markers on the master and polls the replicas without
   * a pause until each marker shows).
   */
  lagProbe?: boolean
  /**
   * The warm-up lasts --warmup seconds and at least until the target has
   * committed this many more writes (its status's commit counts; at most
   * a minute more): a warm-up by work done, not by time, whatever the
   * throughput.
   */
  warmupWrites?: number
  /** Called as the measured window opens (after the warm-up). */
  onWindow?: () => void
}

export async function runScenario(
  target: TargetName,
  topology: Topology,
  spec: DriverSpec,
  s: Scenario,
  o: BenchOptions,
  progress: ProgressLine,
  extras: ScenarioExtras = {},
): Promise<TargetResult> {
  const label = `${target} ${s.name}`
  let statusClient: TandemDriver | null = null
  // tandem and the floor server count their group commits in their status.
  if (target !== 'redis') statusClient = await TandemDriver.open({ ...spec, pipeline: 1 })
  try {
    let commitBefore: CommitStats | null = null
    let cpuBefore: (number | undefined)[] = []
    let threadsBefore: (Map<number, number> | undefined)[] = []
    let waitBefore: (number | undefined)[] = []
    const intervalMs = extras.lagIntervalMs ?? o.lagInterval ?? 250
    const nodes = [topology.master, ...topology.replicas]
    const probe =
      topology.replicas.length === 0 || extras.lagProbe === false
        ? null
        : new ProcessLagProbe(
            extras.peerLag
              ? {
                  kind: 'markers',
                  writers: extras.markersOnMaster ? [topology.master] : nodes,
                  readers: nodes,
                  authToken: spec.authToken,
                  intervalMs,
                  traceDir: extras.lagTraceDir,
                }
              : { kind: 'poll', master: spec, replicas: topology.replicas, intervalMs },
          )
    progress.reset()
    // Where the warm-up's writes are counted from (null: the target does not count them).
    const warmupStart = extras.warmupWrites ? await commitStats(statusClient) : null
    let load: Awaited<ReturnType<typeof runLoad>>
    try {
      // Connected before the window opens, so it samples the whole window.
      await probe?.whenReady()
      load = await runLoad(
        {
          driver: s.consistency === undefined ? spec : { ...spec, consistency: s.consistency },
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
          rate: s.rate,
          warmedUp:
            extras.warmupWrites && statusClient
              ? () => writesDone(statusClient as TandemDriver, extras.warmupWrites as number, warmupStart)
              : undefined,
        },
        (p) => progress.update(label, p, o.requests === undefined ? o.duration : null, o.requests ?? null),
        () => {
          extras.onWindow?.()
          probe?.start()
          // Sampled synchronously enough: both reads finish within a few ms of the window's start.
          void commitStats(statusClient).then((c) => (commitBefore = c))
          void Promise.all(topology.processes.map((p) => (p.pid ? cpuSeconds(p.pid) : undefined))).then(
            (c) => (cpuBefore = c),
          )
          void Promise.all(topology.processes.map((p) => (p.pid ? threadCpuSeconds(p.pid) : undefined))).then(
            (t) => (threadsBefore = t),
          )
          void Promise.all(topology.processes.map((p) => (p.pid ? mainWaitSeconds(p.pid) : undefined))).then(
            (w) => (waitBefore = w),
          )
        },
        extras.measureFor,
      )
    } catch (err) {
      probe?.kill()
      throw err
    }
    progress.end()
    const lag = probe ? await probe.stop() : null
    const commitAfter = await commitStats(statusClient)
    const cpuAfter = await Promise.all(topology.processes.map((p) => (p.pid ? cpuSeconds(p.pid) : undefined)))
    const threadsAfter = await Promise.all(topology.processes.map((p) => (p.pid ? threadCpuSeconds(p.pid) : undefined)))
    const waitAfter = await Promise.all(topology.processes.map((p) => (p.pid ? mainWaitSeconds(p.pid) : undefined)))
    const servers: ServerMeasure[] = await Promise.all(
      topology.processes.map(async (p, i) => {
        const tBefore = threadsBefore[i]
        const tAfter = threadsAfter[i]
        return {
          ...(await serverMeasure(p, cpuBefore[i], cpuAfter[i], load)),
          threads: p.pid && tBefore && tAfter ? splitThreads(p.pid, tBefore, tAfter, load.elapsedS) : null,
          mainWaitShare: waitShare(waitBefore[i], waitAfter[i], load.elapsedS),
        }
      }),
    )
    const commit = commitBetween(commitBefore, commitAfter)
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
      serverCpuUsPerOp: totalCpuUsPerOp(cpuBefore, cpuAfter, load.ops),
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

/** Group commits between two status samples, and their average size. */
export function commitBetween(
  before: CommitStats | null,
  after: CommitStats | null,
): { groups: number; writes: number; avgGroupSize: number } | null {
  if (!before || !after) return null
  const groups = after.groups - before.groups
  const writes = after.writes - before.writes
  return { groups, writes, avgGroupSize: groups === 0 ? 0 : Math.round((writes / groups) * 10) / 10 }
}

/** Resolves once the target has committed `writes` more writes than at `from` (or a minute has passed). */
async function writesDone(client: TandemDriver, writes: number, from: CommitStats | null): Promise<void> {
  if (from === null) return
  const until = performance.now() + 60_000
  while (performance.now() < until) {
    const now = await commitStats(client)
    if (now === null || now.writes - from.writes >= writes) return
    await new Promise((r) => setTimeout(r, 100))
  }
}

export async function commitStats(client: TandemDriver | null): Promise<CommitStats | null> {
  if (!client) return null
  try {
    const status = (await client.status()) as Awaited<ReturnType<TandemClient['status']>> & { commit?: CommitStats }
    return status.commit ? { groups: status.commit.groups, writes: status.commit.writes } : null
  } catch {
    return null
  }
}
