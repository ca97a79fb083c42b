import type { TargetName } from '../drivers/driver.js'
import type { LatencySummary } from '../load/histogram.js'
import type { Machine } from '../machine.js'
import type { ThreadSplit } from '../measures/proc.js'
import type { ReplicaLag } from '../measures/replication-lag.js'
import type { WorkloadName } from '../options.js'
import type { RawResult } from '../raw-leveldb.js'
import type { GitState } from './git-state.js'

/** The JSON that `--json FILE` writes. Field names are part of the CLI's contract. */

export interface ServerMeasure {
  role: string
  pid: number | null
  /** VmHWM from /proc/PID/status at the end of the scenario: the most the process has held so far. */
  peakRssMB: number | null
  /** CPU the process used while measuring, in cores (1 = one core busy). */
  cpuCores: number | null
  /** CPU the process used while measuring divided by the requests completed, in µs (load scenarios only). */
  cpuUsPerOp?: number | null
  /** The same split by thread (Linux; null elsewhere and for Redis). */
  threads?: ThreadSplit | null
  /**
   * The share of the window the main thread spent ready to run but waiting
   * for a core (/proc schedstat; Linux; null elsewhere and for Redis).
   */
  mainWaitShare?: number | null
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
  /**
   * Every server process of the target together (master and replicas): CPU
   * used while measuring divided by the requests completed, in µs. Null when
   * a process's CPU could not be read (servers the harness did not start).
   */
  serverCpuUsPerOp?: number | null
  /** tandem and the floor server: group commits during the scenario (from the master's status). */
  commit: { groups: number; writes: number; avgGroupSize: number } | null
  /** Sampled commit-on-master to visible-on-replica lag; null without replicas. */
  replicationLag: ReplicaLag[] | null
  /** failover suite: downtime when the master is killed, and a cold restart; else null. */
  failover: FailoverResult | null
  /** fullsync suite: how fast an empty replica copies the master; else null. */
  fullSync: FullSyncResult | null
}

/** Exact percentiles of a small sample (nearest rank), in ms. */
export interface SampleSummary {
  count: number
  min: number
  p50: number
  p90: number
  p99: number
  max: number
  mean: number
}

export interface FullSyncResult {
  keys: number
  valueSize: number
  /** Key and value bytes of the data set (what the sync has to move, before framing). */
  dataMB: number
  /** The master's seq when the replica started; caught up = streaming with seq >= it. */
  masterSeq: number
  /** Replica's `full sync started` to `full sync done` log lines (the snapshot transfer). */
  transferMs: number | null
  /** Replica's `full sync started` to its status saying streaming with seq >= masterSeq. */
  syncMs: number
  /** Replica process spawned to caught up (includes its start-up and handshake). */
  spawnToCaughtUpMs: number
  /** Headline: keys / syncMs. */
  keysPerSec: number
  /** dataMB / syncMs. */
  mbPerSec: number
  /** keys / spawnToCaughtUpMs. */
  endToEndKeysPerSec: number
  /** The master's own `full sync sent` line: keys streamed and its ms. */
  masterSent: { keys: number; ms: number } | null
  /** VmHWM of the replica once caught up: the most it held at any time. */
  replicaPeakRssMB: number | null
  masterPeakRssMB: number | null
  /** CPU the replica and the master used from spawn to caught up, in cores. */
  replicaCpuCores: number | null
  masterCpuCores: number | null
  /** How the --keys were loaded: batches of `batch` puts. */
  load: { batch: number; connections: number; ms: number; keysPerSec: number }
  /** The same keys copied by Redis's diskless full sync in the same run; null when redis-server is missing. */
  redis: RedisFullSyncResult | null
  /** keysPerSec over Redis's keysPerSec (above 1: tandem syncs faster); null without the Redis side. */
  vsRedis: number | null
}

export interface RedisFullSyncResult {
  version: string
  /** The replication and persistence settings of the two redis-servers. */
  settings: string
  /** REPLICAOF sent to the empty replica to its INFO saying link up, nothing arriving or loading, every key held. */
  syncMs: number
  keysPerSec: number
  mbPerSec: number
  replicaPeakRssMB: number | null
  masterPeakRssMB: number | null
  /** CPU over syncMs, in cores; the master's excludes the child it forks to write the RDB. */
  replicaCpuCores: number | null
  masterCpuCores: number | null
  /** How the keys were loaded: MSETs of `batch` keys, one in flight per connection. */
  load: { batch: number; connections: number; ms: number; keysPerSec: number }
}

export interface FailoverRound {
  round: number
  killed: string
  newMaster: string | null
  /** SIGKILL to the first acknowledged write sent after the kill (null: none within the give-up time). */
  downtimeMs: number | null
  /** SIGKILL to a surviving member logging `became master` (as the harness read it). */
  electionMs: number | null
  /** Writes that failed during the round (UNCERTAIN, TIMEOUT, ...). */
  failedWrites: number
  /** Restart of the killed node to all 3 healthy: one master, 2 replicas streaming and caught up. */
  rejoinMs: number | null
  /** Role the restarted node came back with. */
  rejoinedAs: string | null
}

export interface FailoverResult {
  members: string[]
  failoverTimeoutMs: number | null
  heartbeatIntervalMs: number | null
  writerLoops: number
  rounds: FailoverRound[]
  /** Over the rounds that recovered: kill to first acknowledged write. */
  downtimeMs: SampleSummary | null
  /** Kill to `became master` on the new master. */
  electionMs: SampleSummary | null
  rejoinMs: SampleSummary | null
  /** Rounds with no acknowledged write within the give-up time. */
  unrecovered: number
  coldRestart: ColdRestartResult | null
}

export interface ColdRestartResult {
  keys: number
  valueSize: number
  /** Data dir size on disk at the kill. */
  dataDirMB: number | null
  /** SIGKILL to the restarted process logging `listening`. */
  killToListeningMs: number
  /** SIGKILL to the first acknowledged write on the restarted master. */
  killToFirstAckMs: number
  /** Spawn of the new process to `listening`. */
  spawnToListeningMs: number
  load: { batch: number; connections: number; ms: number; keysPerSec: number }
}

/** One target of an issue compared with what the same run measured. */
export interface TargetCheck {
  /** Stable across runs (e.g. 'replicas.throughput.2'): what BENCHMARKS.md and the tests look a figure up by. */
  id: string
  /** What was measured, with the run's own numbers. */
  name: string
  measured: number | null
  unit: string
  /** e.g. '< 10' or '>= 300000' */
  target: string
  met: boolean | null
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
  /** tandem: the read consistency of its gets (null: the SDK's default). */
  consistency?: 'linearizable' | 'lease' | 'local' | null
  targets: Partial<Record<TargetName, TargetResult>>
  /** Open loop: offered ops/s; null for a closed loop. */
  offeredRate: number | null
  /** Replicas attached to the master during this scenario. */
  replicas: number
  /** replicas suite: this scenario's throughput over the same run's 0-replica throughput. */
  vsNoReplicas: number | null
  /**
   * replicas suite with --repeat, multimaster suite's throughput: the
   * throughput of every pass (the scenario reports the median one);
   * console suite: of every window, in order.
   */
  passes: number[] | null
  /** console suite: web console event streams open on the master during this scenario. */
  consoles?: number
  /** console suite: per window (as passes), the node (1 or 2) whose consoles were open. */
  consoleTargets?: number[]
  /** console suite: the CPUs each server ran on (--pin), or why they were not pinned. */
  consolePinning?: string
  /** multimaster suite: figures that are not a load's (convergence, fail-over, a conflict rate). */
  multimaster?: Record<string, unknown>
  /** multimaster suite: the conflict rate for each number of masters and link latency. */
  conflicts?: ConflictPoint[]
  /**
   * compare with --targets floor / floor-bare and redis: each floor
   * server's throughput and server CPU a request over Redis's, and how many
   * µs of server CPU a request tandem spends above it.
   */
  floors?: Partial<
    Record<
      'floor' | 'floor-bare',
      { throughputVsRedis: number; serverCpuVsRedis: number | null; tandemCpuAboveUs: number | null }
    >
  >
  /**
   * compare with --repeat N, and the multimaster suite's throughput: every
   * pass of each target, in the order run (the target reports its median).
   */
  targetPasses?: Partial<Record<TargetName, { throughput: number; serverCpuUsPerOp: number | null }[]>>
  /** compare only: tandem divided by Redis. Above 1 means tandem has more throughput / higher latency. */
  ratios: {
    throughput: number
    p50: number
    p99: number
    p999: number
    /** Server CPU per request, tandem over Redis (null when either is unknown). */
    serverCpuPerOp?: number | null
  } | null
}

/** One point of the multimaster suite's conflict table and chart. */
export interface ConflictPoint {
  masters: number
  /** Latency added to every peer link, each way. */
  latencyMs: number
  /** Writes that arrived at a node older than its key's value, over the writes each node applied, in %. */
  conflictRatePct: number | null
  writes: number
  lost: number
}

export interface BenchReport {
  tool: 'tandem-bench'
  command: 'run' | 'compare' | 'raw'
  commandLine: string
  /** The commit the run measured and whether the tree differed from it (null outside a git checkout). */
  git: GitState | null
  startedAt: string
  finishedAt: string
  /** Cores, memory, versions, and the load average at the start and the end. */
  machine: Machine
  settings: {
    replicas: number
    /** tandem: members of the fail-over group the harness started (0: a master and replicas). */
    cluster?: number
    sync: string
    redisPersistence: string
    durationS: number | null
    requests: number | null
    warmupS: number
    workers: number
    rate: number | null
    lagIntervalMs: number | null
    rounds: number | null
    /** What generated the load: sdk (tandem's SDK / ioredis) or redis-benchmark. */
    driver?: 'sdk' | 'redis-benchmark'
  }
  /** Raw LevelDB fsynced batches measured in the same run (--raw, or the raw command). */
  rawLevelDb: RawResult[] | null
  scenarios: ScenarioResult[]
  /** The issue targets this run measured, each beside its figure (suites only; empty otherwise). */
  checks: TargetCheck[]
  /** When the run has exactly one scenario: its targets, for callers that want `targets.tandem.throughput`. */
  targets?: Partial<Record<TargetName, TargetResult>>
}
