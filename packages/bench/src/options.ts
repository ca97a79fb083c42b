import { parseArgs } from 'node:util'
import { hostPortProblem } from '@tandem/protocol'
import { z } from 'zod'

/**
 * Every flag of tandem-bench, in one zod schema. Flags that take a list
 * (`--workload put,get`, `--clients 1,50`, `--pipeline 1,16`) make a matrix
 * of scenarios that run one after another on the same topology.
 */

export class UsageError extends Error {
  readonly code = 'INVALID'
}

const hostPort = z.string().superRefine((s, ctx) => {
  const problem = hostPortProblem(s)
  if (problem !== null) ctx.addIssue({ code: 'custom', message: problem })
})

const intList = (min: number, max: number) =>
  z
    .string()
    .transform((s) => s.split(',').map((x) => x.trim()))
    .pipe(z.array(z.coerce.number<string>().int().min(min).max(max)).min(1))

/** Load mixes: each runs on the run's one topology, once per clients x pipeline. */
const LOAD_WORKLOADS = ['put', 'get', 'a', 'b', 'c'] as const
/**
 * Suites: each brings up the topologies it needs itself (tandem only).
 * lag: replication lag at saturation and at an offered rate; replicas: put
 * throughput with 0, 1, 2 replicas; fullsync: a new replica's full sync of
 * --keys keys; failover: --rounds master kills in a 3-member auto group,
 * then a cold restart of a master holding --keys keys; console: put
 * throughput with none and with --consoles web console streams open;
 * watch: events/s to one watcher while puts run at saturation;
 * coldstandby: a cold standby restored from a backup against a hot one.
 */
const SUITE_WORKLOADS = [
  'lag',
  'replicas',
  'fullsync',
  'failover',
  'console',
  'multimaster',
  'watch',
  'coldstandby',
] as const
export const WORKLOADS = [...LOAD_WORKLOADS, ...SUITE_WORKLOADS] as const
export type LoadWorkloadName = (typeof LOAD_WORKLOADS)[number]
export type SuiteName = (typeof SUITE_WORKLOADS)[number]
export type WorkloadName = (typeof WORKLOADS)[number]
export const isSuite = (w: WorkloadName): w is SuiteName => (SUITE_WORKLOADS as readonly string[]).includes(w)

const TARGETS = ['tandem', 'redis', 'floor', 'floor-bare'] as const
const isFloor = (t: string) => t === 'floor' || t === 'floor-bare'

const optionsSchema = z
  .object({
    command: z.enum(['run', 'compare', 'raw']),
    /**
     * run only: which store to load (floor / floor-bare: the floor server,
     * floor/floor-server.ts, with tandem's storage / without storage).
     */
    target: z.enum(TARGETS).default('tandem'),
    /**
     * compare only: the targets, loaded in this order in each scenario
     * (default tandem,redis); with --repeat N, each scenario runs N passes,
     * every other pass in the reverse order (ABBA), each target reporting
     * its median pass.
     */
    targets: z
      .string()
      .transform((s) => s.split(',').map((x) => x.trim()))
      .pipe(z.array(z.enum(TARGETS)).min(1))
      .refine((t) => new Set(t).size === t.length, 'a target is named twice')
      .default(['tandem', 'redis']),
    /** Use running tandem servers (master first) instead of starting a local topology. */
    server: z
      .string()
      .transform((s) => s.split(',').filter(Boolean))
      .pipe(z.array(hostPort).min(1))
      .optional(),
    /** Use a running Redis master instead of starting redis-server. */
    redis: hostPort.optional(),
    authToken: z.string().min(1).optional(),
    /** Replicas started next to the master, for each target. */
    replicas: z.coerce.number().int().min(0).max(8).default(0),
    /**
     * tandem: start a fail-over group of this many members (`--cluster
     * --failover auto`) instead of a master and --replicas replicas.
     */
    cluster: z.coerce.number().int().min(0).max(9).default(0),
    /**
     * tandem: read consistency of gets (linearizable, lease, local; a list
     * makes one scenario each). Default: the SDK's (linearizable in a
     * fail-over group, else local).
     */
    consistency: z
      .string()
      .transform((s) => s.split(',').map((x) => x.trim()))
      .pipe(z.array(z.enum(['linearizable', 'lease', 'local'])).min(1))
      .optional(),
    /** tandem's --sync for the topology the harness starts. */
    sync: z.enum(['always', 'periodic', 'none']).default('always'),
    /** Redis's appendfsync for the Redis the harness starts (default: the one that matches --sync). */
    redisFsync: z.enum(['always', 'everysec', 'no']).optional(),
    workload: z
      .string()
      .transform((s) => s.split(',').map((x) => x.trim()))
      .pipe(z.array(z.enum(WORKLOADS)).min(1))
      .default(['put']),
    distribution: z.enum(['uniform', 'zipfian']).default('uniform'),
    /** Keyspace size; read workloads preload every key first. */
    keys: z.coerce.number().int().min(1).max(100_000_000).default(100_000),
    valueSize: z.coerce
      .number()
      .int()
      .min(1)
      .max(16 * 1024 * 1024)
      .default(100),
    /** Connections (one SDK client or ioredis connection each). */
    clients: intList(1, 10_000).default([50]),
    /** Requests in flight per connection. */
    pipeline: intList(1, 10_000).default([1]),
    /** Seconds of measurement per scenario (ignored when --requests is given). */
    duration: z.coerce.number().positive().max(86_400).default(10),
    /** Total requests per scenario, instead of a duration. */
    requests: z.coerce.number().int().positive().optional(),
    /** Seconds of load before measuring starts, not counted. */
    warmup: z.coerce.number().min(0).max(600).default(1),
    /** Write concern: replicas that must hold each write (a number or majority). */
    w: z.union([z.literal('majority'), z.coerce.number().int().min(0).max(16)]).optional(),
    /** Worker threads driving the clients; 0 runs them on the main thread. */
    workers: z.coerce.number().int().min(0).max(64).default(0),
    /** Also measure raw LevelDB fsynced batches in the same run (run/compare). */
    raw: z.boolean().default(false),
    /** raw: entries per LevelDB batch. */
    batchSizes: intList(1, 100_000).default([50, 100, 1000]),
    /** Where the run's JSON goes (default: packages/bench/results/NAME.json, NAME from resultName()). */
    json: z.string().min(1).optional(),
    /** Also print the run as a BENCHMARKS.md section to paste (stdout). */
    markdown: z.boolean().default(false),
    chart: z
      .string()
      .regex(/\.svg$/i, 'expected a file name ending in .svg')
      .optional(),
    /** Progress display: auto (a live line on a TTY, plain lines otherwise), tty, plain, none. */
    progress: z.enum(['auto', 'tty', 'plain', 'none']).default('auto'),
    /** Seconds to wait for replicas to catch up after preload. */
    syncTimeout: z.coerce.number().positive().default(30),
    /**
     * Open loop: offered rate in ops/s (requests are sent on a schedule, not
     * when the last one is answered; latency counts from the scheduled time).
     * lag suite: the rate of its open-loop scenario (default half of the
     * saturation it measures first). --pipeline then caps the requests in
     * flight per connection; a request that finds no free slot waits, and
     * that wait counts in its latency.
     */
    rate: z.coerce.number().positive().max(10_000_000).optional(),
    /** ms between replication-lag markers (default 250; lag suite: 10; multimaster's peer lag: 1, or longer below 10,000 writes/s). */
    lagInterval: z.coerce.number().int().min(1).max(60_000).optional(),
    /** replicas suite: how many replicas in each topology (default 0,1,2). */
    replicaCounts: intList(0, 8).default([0, 1, 2]),
    /**
     * replicas suite: puts in each raw LevelDB apply-floor run, after as many
     * warm-up puts (0: skip the floors and the CPU ceilings).
     */
    floorPuts: z.coerce.number().int().min(0).max(100_000_000).default(500_000),
    /**
     * replicas suite: passes over the topologies; each count reports its
     * median run. compare: passes over the targets in each scenario, the
     * order reversed every other pass. multimaster suite: passes of the
     * throughput comparison, n masters and 1 master taking turns, the order
     * reversed every other pass. Default 1, multimaster 4.
     */
    repeat: z.coerce.number().int().min(1).max(100).optional(),
    /** fullsync / failover cold restart: operations per batch when loading --keys. */
    batch: z.coerce.number().int().min(1).max(10_000).default(1000),
    /** console suite: web console event streams open on one of the two masters in each window. */
    consoles: z.coerce.number().int().min(1).max(64).default(20),
    /** console suite: windows with the consoles on the second master, each between two with them on the first (2 x pairs + 1 windows). */
    pairs: z.coerce.number().int().min(1).max(1000).default(40),
    /**
     * console suite: seconds in each window; a window also holds the
     * streams' opening and closing. Ten seconds: an operator keeps a
     * console open for minutes, and 3 s windows charged each opening (the
     * watcher's report-feed reconnect, a GC after idle) three times as
     * often; much longer ones leave the machine's drift in each ratio.
     */
    window: z.coerce.number().positive().max(600).default(10),
    /**
     * console suite: masters, both masters' threads on CPU 0 and all their
     * replicas' on CPU 1 (the harness free), so that what slows one master
     * slows the other and cancels in the ratio; none leaves the scheduler
     * free. Pinning each node to a core of its own does the opposite: the
     * two then follow different neighbours.
     *
     * replicas suite: master, each master's threads alone on CPU 0, its
     * replicas' and the harness's on CPU 1: the master's CPU per put as
     * on a machine of its own, not also what two replicas and the load
     * generator scheduled beside it on its core cost it (the default,
     * none, leaves the scheduler free).
     */
    pin: z.enum(['masters', 'master', 'none']).optional(),
    /**
     * replicas and multimaster suites: each run's warm-up lasts until the
     * master (the first node) has committed this many writes (and --warmup
     * seconds); 0: --warmup alone.
     */
    warmupPuts: z.coerce.number().int().min(0).max(100_000_000).default(150_000),
    /** failover and multimaster suites: master kills. */
    rounds: z.coerce.number().int().min(1).max(10_000).default(20),
    /** multimaster suite: group sizes to measure (default 2,3). */
    masterCounts: intList(2, 8).default([2, 3]),
    /** multimaster suite: latency added to every peer link for the conflict rate, ms (default 0,1,10,50). */
    linkLatencies: intList(0, 10_000).default([0, 1, 10, 50]),
    /** multimaster suite: puts on each side of the partition before it heals (default 100000). */
    partitionWrites: z.coerce.number().int().min(1).max(100_000_000).default(100_000),
    /** multimaster suite: keyspace of the conflict-rate load (default 1000). */
    conflictKeys: z.coerce.number().int().min(1).max(100_000_000).default(1000),
    /** failover suite: tandem-server --failover-timeout (default: the server's, 1000). */
    failoverTimeout: z.coerce.number().int().positive().optional(),
    /** failover suite: tandem-server --heartbeat-interval (default: the server's, 150). */
    heartbeatInterval: z.coerce.number().int().positive().optional(),
    /** failover suite: skip the cold restart of a master holding --keys keys. */
    noColdRestart: z.boolean().default(false),
    /**
     * What generates the load: sdk (tandem's SDK for tandem, ioredis for
     * Redis, in this process) or redis-benchmark (Debian's C generator,
     * the same binary and flags against tandem's RESP port and Redis;
     * put/get only, --requests N per scenario, default 1,000,000).
     */
    driver: z.enum(['sdk', 'redis-benchmark']).default('sdk'),
    /** Internal: whether --target was given (compare refuses it). */
    argTarget: z.boolean().optional(),
    /** Internal: whether --targets was given (run refuses it). */
    argTargets: z.boolean().optional(),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (o.command === 'compare' && o.argTarget)
      ctx.addIssue({ code: 'custom', path: ['target'], message: 'compare takes --targets LIST; drop --target' })
    if (o.command !== 'compare' && o.argTargets)
      ctx.addIssue({ code: 'custom', path: ['targets'], message: 'only compare takes --targets (run: --target)' })
    const floors = o.command === 'compare' ? o.targets.filter(isFloor) : isFloor(o.target) ? [o.target] : []
    if (floors.length > 0 && (o.replicas > 0 || o.cluster > 0 || o.server || o.w !== undefined))
      ctx.addIssue({
        code: 'custom',
        path: ['targets'],
        message: `${floors.join(', ')} is one process with no replicas; drop --replicas, --cluster, --server and --w`,
      })
    const suites = o.workload.filter(isSuite)
    if (suites.length > 0 && (o.command === 'compare' || o.target !== 'tandem'))
      ctx.addIssue({
        code: 'custom',
        path: ['workload'],
        message: `${suites.join(', ')} run against tandem only (use run --target tandem)`,
      })
    if (o.driver === 'redis-benchmark') {
      const other = o.workload.filter((w) => w !== 'put' && w !== 'get')
      if (other.length > 0)
        ctx.addIssue({
          code: 'custom',
          path: ['workload'],
          message: `--driver redis-benchmark runs put (SET) and get (GET) only, not ${other.join(', ')}`,
        })
      if (o.server)
        ctx.addIssue({ code: 'custom', path: ['server'], message: '--driver redis-benchmark starts its own tandem' })
      if (o.rate !== undefined)
        ctx.addIssue({ code: 'custom', path: ['rate'], message: 'redis-benchmark runs closed loop; drop --rate' })
    }
    if (o.cluster > 0 && (o.replicas > 0 || o.server))
      ctx.addIssue({
        code: 'custom',
        path: ['cluster'],
        message: '--cluster starts its own group; drop --replicas and --server',
      })
    if (o.cluster > 0 && o.cluster < 3)
      ctx.addIssue({ code: 'custom', path: ['cluster'], message: 'a fail-over group needs at least 3 members' })
    if (o.cluster > 0 && o.driver === 'redis-benchmark')
      ctx.addIssue({
        code: 'custom',
        path: ['cluster'],
        message: '--driver redis-benchmark drives a master it starts alone',
      })
    if (suites.length > 0 && o.server)
      ctx.addIssue({
        code: 'custom',
        path: ['workload'],
        message: `${suites.join(', ')} start and kill their own servers; drop --server`,
      })
  })

export type BenchOptions = Omit<z.infer<typeof optionsSchema>, 'argTarget' | 'argTargets'>

/**
 * The Redis appendfsync that gives the same durability as tandem's --sync:
 * always (every acknowledged write on disk) against always, periodic (a
 * background fsync) against everysec, none against no.
 */
export function redisFsyncOf(o: Pick<BenchOptions, 'sync' | 'redisFsync'>): 'always' | 'everysec' | 'no' {
  if (o.redisFsync) return o.redisFsync
  return o.sync === 'always' ? 'always' : o.sync === 'periodic' ? 'everysec' : 'no'
}

const BOOLEAN_FLAGS = new Set(['raw', 'markdown', 'help', 'noColdRestart'])
const kebab = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
const camel = (flag: string) => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())

export const USAGE = `usage: tandem-bench run|compare|raw [flags]

  run       load one target (--target tandem|redis) and report
  compare   run the same scenarios against tandem and Redis, print the ratios
  raw       measure raw LevelDB fsynced batches on this machine (the ceiling
            for tandem's group commit)

targets
  --target tandem|redis|floor|floor-bare  run only (default tandem); floor: the floor server,
                             Node's net / ws and tandem's storage in LevelDB done the cheapest
                             way (a group a turn: a data record a put, one log record a group,
                             the last seq; replies after the batch; no tandem server code);
                             floor-bare: the same server storing nothing, replying at once
  --targets T[,...]          compare only: the targets in the order each scenario loads them
                             (default tandem,redis); e.g. tandem,redis,floor,floor-bare
  --repeat N                 compare: N passes over the targets in each scenario, every
                             other one in the reverse order (ABBA); each reports its median;
                             replicas, multimaster: passes (see the suites)
  --server HOST:PORT,...     use running tandem servers (master first)
  --redis HOST:PORT          use a running Redis master
  --replicas N               replicas started beside each master (default 0)
  --cluster N                tandem: a fail-over group of N members (--cluster --failover
                             auto) instead of a master and replicas
  --sync always|periodic|none  tandem's fsync policy (default always); the Redis the
                             harness starts runs with appendonly yes and the matching
                             appendfsync: always, everysec, no
  --redis-fsync always|everysec|no  Redis's appendfsync instead of the one --sync implies
  --auth-token TOKEN
workload
  --workload put|get|a|b|c[,...]  put-only, get-only, YCSB A 50/50, B 95/5, C read-only
  --distribution uniform|zipfian  key choice (default uniform)
  --keys N                   keyspace (default 100000); read workloads preload it
  --value-size BYTES         (default 100)
  --clients N[,...]          connections (default 50)
  --pipeline N[,...]         in flight per connection (default 1)
  --duration SECONDS         per scenario (default 10), or --requests N
  --warmup SECONDS           unmeasured load first (default 1)
  --w N|majority             write concern for puts
  --consistency C[,...]      tandem: read consistency of gets, linearizable|lease|local
                             (one scenario each; default: the SDK's)
  --workers N                drive the clients from N worker threads (default 0: main thread),
                             for every target, Redis included; with --driver redis-benchmark, its --threads (default 2)
  --driver sdk|redis-benchmark  load generator: sdk (tandem's SDK / ioredis, default) or
                             Debian's redis-benchmark, the same binary and flags against
                             tandem's RESP port (--resp-port) and Redis; put = -t set,
                             get = -t get, keys key:NNNNNNNNNNNN over --keys (-r), -d
                             --value-size, -n --requests (default 1000000), --threads
  --raw                      also measure raw LevelDB batches (--batch-sizes 50,100,1000)
  --rate OPS                 open loop: offer OPS requests/s (latency from the scheduled
                             send time); --pipeline caps in flight per connection
  --lag-interval MS          replication-lag marker interval (default 250; lag suite 10;
                             multimaster peer lag 1, longer below 10,000 writes/s)
suites (tandem only; each starts its own servers; combine with commas)
  --workload lag             replication lag p50/p99 at saturation (closed loop, --clients x
                             --pipeline puts) and at --rate (default half the saturation),
                             max(1, --replicas) replicas
  --workload replicas        put throughput with --replica-counts 0,1,2 replicas, all
                             topologies up at once, run in turn (--repeat N passes, median);
                             first LevelDB's own CPU per replicated put, with tandem's log
                             blocks, a log record per put, and no log (--floor-puts N,
                             default 500000 after as many warm-up puts; 0 skips it), and
                             the CPU ceiling for each replica count that follows; the
                             master's CPU per put with each count against none (each
                             pass's ratio, their median and range; the share of each run
                             its main thread waited for a core); --pin master runs each
                             master alone on CPU 0, its replicas and the load generator
                             on CPU 1 (taskset); --rate OPS offers every count the same
                             puts/s (open loop) in place of the closed loop; each run's
                             warm-up lasts until the master committed --warmup-puts N
                             puts (default 150000; 0: --warmup alone): a master idle
                             through the other counts' runs starts with its young
                             generation shrunk, and regrows it over ~100,000 puts
  --workload fullsync        load --keys keys (--batch 1000 per batch), start an empty
                             replica, time its full sync; keys/s, MB/s, replica peak RSS;
                             then the same keys through Redis's diskless full sync (when
                             redis-server is on the PATH) and tandem / Redis
  --workload failover        3-member --failover auto group on fixed ports, one SDK writer
                             (--pipeline loops), --rounds N SIGKILLs of the master: kill to
                             first acknowledged write; then cold restart of a master holding
                             --keys keys (skip: --no-cold-restart)
                             [--failover-timeout MS] [--heartbeat-interval MS]
  --workload console         put throughput of a master with max(1, --replicas) replicas
                             when --consoles N (default 20) console event streams
                             (/ui/api/events) are open on it: TWO such masters run the
                             same --clients x --pipeline put load each, at once; one
                             unmeasured pass (--duration), then while both loads run
                             the N streams are open on exactly one master in every
                             window, the masters taking turns (1, 2, 1, ..., 1:
                             2 x --pairs + 1 windows, --pairs default 40; --window S
                             each, default 10, no gap; a window includes opening and
                             closing its streams); per window on master 2, master 1
                             over master 2 in the windows beside it over the same in
                             it: both masters' cost, half of it one master's (the two
                             alike); the median change of throughput (and of CPU per
                             put) in % with its 95% interval, and each master's own
                             change without the other as reference; --pin masters
                             (default) runs both masters on CPU 0 and their replicas
                             on CPU 1 (taskset), --pin none leaves them free; then, with no
                             load, the first master's CPU with 0, 1, 0, N consoles
                             open, 3 rounds and 0 once more (--duration each), each
                             window against the 0 windows beside it, and its share
                             of the master's CPU under the puts
  --workload watch           one watcher on every key of a master while puts run at
                             saturation (first --clients x --pipeline, --duration):
                             events/s the watcher received, and how far behind it ended
  --workload coldstandby     master with --keys keys and one replica; a backup, 1,000 more
                             writes, SIGKILL of the master: restore + start + catch-up +
                             promote of a cold standby to its first acknowledged write,
                             against promoting the hot replica; writes lost with no replica
  --workload multimaster     multi-master (lww): aggregate put throughput of --master-counts
                             2,3 masters (clients spread) against 1 master with as many
                             replicas, both up at once, in --repeat N passes (default 4)
                             taking turns ABBA (M S, S M, ...), each run on idle servers
                             after a warm-up of --warmup-puts writes; the median of the
                             passes' ratios, each side's median and range, server CPU a
                             write per pass and per node; peer lag p99 at half the
                             2-master saturation, and its floor: the 1 master's lag to
                             its replica at the same rate, same probe; heal to converged after
                             --partition-writes N (100000) puts each side of
                             a partition; conflict rate by masters and --link-latencies
                             0,1,10,50 ms on --conflict-keys N (1000) keys (--chart draws it);
                             --rounds N SIGKILLs of one of 2 masters under load: kill to the
                             first write the survivor acknowledges, writes lost
output
  --json FILE    the run as JSON (default packages/bench/results/NAME.json, replaced by a
                 rerun; NAME: the suite(s), single, compare[-replicas-N], raw, ...); it records
                 the command line, git commit and dirty state, machine and load average
  --markdown     also print the run as a BENCHMARKS.md section to paste
  --chart FILE.svg
  --progress auto|tty|plain|none
environment (servers the harness starts)
  TANDEM_BENCH_NODE_ARGS='--cpu-prof --cpu-prof-dir=DIR'   extra node flags for each server
  TANDEM_BENCH_SERVER_LOG_DIR=DIR   copy each server's output to DIR/ROLE-PID.log
`

/** Parses argv (without node and the script) into options; throws UsageError naming the bad flag. */
export function parseOptions(argv: string[]): BenchOptions {
  const options: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } }
  for (const name of Object.keys(optionsSchema.shape)) {
    if (name === 'command' || name === 'argTarget' || name === 'argTargets') continue
    options[kebab(name)] = { type: BOOLEAN_FLAGS.has(name) ? 'boolean' : 'string' }
  }
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true })
  } catch (err) {
    const message = (err as Error).message
    const flag = /option '([^']+)'/i.exec(message)?.[1]
    throw new UsageError(
      /^Unknown option/.test(message) && flag ? `${flag}: unknown flag` : flag ? `${flag}: ${message}` : message,
    )
  }
  if (parsed.values.help) throw new UsageError('help')
  if (parsed.positionals.length !== 1) {
    throw new UsageError(
      parsed.positionals.length === 0
        ? 'missing command: run, compare or raw'
        : `unexpected argument ${JSON.stringify(parsed.positionals[1])}`,
    )
  }
  const input: Record<string, unknown> = { command: parsed.positionals[0] }
  for (const [flag, value] of Object.entries(parsed.values)) {
    if (flag !== 'help') input[camel(flag)] = value
  }
  const result = optionsSchema.safeParse({
    ...input,
    argTarget: input.target !== undefined,
    argTargets: input.targets !== undefined,
  })
  if (!result.success) {
    const issue = result.error.issues[0]
    const name = String(issue.path[0] ?? '')
    const where = name === 'command' ? 'command' : `--${kebab(name)}`
    const given = name === 'command' ? ` (got ${JSON.stringify(input.command)})` : ''
    throw new UsageError(`${where}: ${issue.message}${given}`)
  }
  const { argTarget: _, argTargets: __, ...opts } = result.data as z.infer<typeof optionsSchema>
  return opts
}
