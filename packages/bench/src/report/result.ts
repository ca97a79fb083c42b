import type { TargetName } from '../drivers/driver.js'
import type { LatencySummary } from '../load/histogram.js'
import type { Machine } from '../machine.js'
import type { ReplicaLag } from '../measures/replication-lag.js'
import type { WorkloadName } from '../options.js'
import type { RawResult } from '../raw-leveldb.js'

/** The JSON that `--json FILE` writes. Field names are part of the CLI's contract. */

export interface ServerMeasure {
  role: string
  pid: number | null
  /** VmHWM from /proc/PID/status at the end of the scenario: the most the process has held so far. */
  peakRssMB: number | null
  /** CPU the process used while measuring, in cores (1 = one core busy). */
  cpuCores: number | null
}

export interface TargetResult {
  target: TargetName
  master: string
  replicas: string[]
  version: string | null
  /** Completed operations per second while measuring. */
  throughput: number
  ops: number
  errors: number
  firstError: string | null
  durationS: number
  latencyMs: LatencySummary
  harness: {
    /** CPU the harness process used while measuring, in cores. */
    cpuCores: number
    /** Threads driving clients: 1 (main thread) or the --workers count. */
    threads: number
    /** True when every client thread was close to a full core: the figure is the harness's limit, not the server's. */
    cpuBound: boolean
  }
  servers: ServerMeasure[]
  /** tandem only: group commits during the scenario (from the master's status). */
  commit: { groups: number; writes: number; avgGroupSize: number } | null
  /** Sampled commit-on-master to visible-on-replica lag; null without replicas. */
  replicationLag: ReplicaLag[] | null
  /** Reserved for the fail-over issue: downtime when the master is killed. */
  failover: null
  /** Reserved for the replication issue: full-sync speed of a new replica. */
  fullSync: null
}

export interface ScenarioResult {
  name: string
  workload: WorkloadName
  distribution: 'uniform' | 'zipfian'
  clients: number
  pipeline: number
  valueSize: number
  keys: number
  w: number | 'majority' | null
  targets: Partial<Record<TargetName, TargetResult>>
  /** compare only: tandem divided by Redis. Above 1 means tandem has more throughput / higher latency. */
  ratios: { throughput: number; p50: number; p99: number; p999: number } | null
}

export interface BenchReport {
  tool: 'tandem-bench'
  command: 'run' | 'compare' | 'raw'
  commandLine: string
  startedAt: string
  finishedAt: string
  machine: Machine
  settings: {
    replicas: number
    sync: string
    redisPersistence: string
    durationS: number | null
    requests: number | null
    warmupS: number
    workers: number
  }
  /** Raw LevelDB fsynced batches measured in the same run (--raw, or the raw command). */
  rawLevelDb: RawResult[] | null
  scenarios: ScenarioResult[]
  /** When the run has exactly one scenario: its targets, for callers that want `targets.tandem.throughput`. */
  targets?: Partial<Record<TargetName, TargetResult>>
}
