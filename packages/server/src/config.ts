import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { DEFAULT_LIMITS, TandemError } from '@tandem/protocol'
import { z } from 'zod'

/**
 * Every setting of tandem-server, in one schema. A setting comes from a
 * command-line flag (`--log-retention`), else an environment variable
 * (`TANDEM_LOG_RETENTION`), else a JSON config file (`--config FILE`, key
 * `logRetention`), else its default.
 */

const hostPort = z
  .string()
  .regex(/^[^\s:]+:\d{1,5}$/, 'expected HOST:PORT')
  .refine((s) => Number(s.split(':')[1]) <= 65535, 'port out of range')

const positiveInt = z.coerce.number().int().positive()
const nonNegativeInt = z.coerce.number().int().nonnegative()
const bool = z.union([z.boolean(), z.enum(['true', 'false', '1', '0']).transform((s) => s === 'true' || s === '1')])
const list = z
  .union([z.array(hostPort), z.string().transform((s) => s.split(',').filter(Boolean))])
  .pipe(z.array(hostPort))

export const configSchema = z
  .object({
    /** Interface to listen on. Default 127.0.0.1: reachable from this machine only. */
    host: z.string().min(1).default('127.0.0.1'),
    /** Port for clients, peers and HTTP (/health, /status, /metrics). 0 picks a free port. */
    port: z.coerce.number().int().min(0).max(65535).default(7379),
    /**
     * Port for Redis-protocol clients (RESP2/RESP3 over TCP: redis-cli, ioredis,
     * redis-benchmark, HAProxy checks). Off when not given; 0 picks a free port.
     * Same auth token, limits and error codes as the WebSocket API.
     */
    respPort: z.coerce.number().int().min(0).max(65535).optional(),
    /**
     * The fail-over group's name as Redis Sentinel clients know it
     * (`SENTINEL get-master-addr-by-name NAME`, ioredis `name`). Default tandem.
     */
    groupName: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, . _ - only, at most 64')
      .default('tandem'),
    /**
     * HOST:PORT other nodes and clients should use to reach this node (named in
     * READONLY errors and status). Default: host:port as bound.
     */
    advertise: hostPort.optional(),
    /** LevelDB files, the node id and rollback files live here. */
    dataDir: z.string().min(1).default('./data'),
    /** Stable identity; generated once and kept in the data dir when not given. */
    nodeId: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, . _ - only, at most 64')
      .optional(),
    /** Start as a replica of this upstream (a master or another replica). */
    replicaof: hostPort.optional(),
    /**
     * always: fsync every group commit before answering (no acknowledged write
     * is lost on power failure). periodic: fsync once a second (up to a second
     * of acknowledged writes can be lost on power failure, none on a process
     * crash). none: leave it to the OS.
     */
    sync: z.enum(['always', 'periodic', 'none']).default('always'),
    /**
     * Log entries kept behind the newest for partial resync. A replica that
     * falls further behind needs a full sync. Default 1,000,000 entries
     * (about 150 MB of log at 100-byte values). More costs disk, less
     * makes full syncs likelier after long outages.
     */
    logRetention: positiveInt.default(1_000_000),
    /**
     * How often, in ms, the log is trimmed down to --log-retention. Default
     * 10,000. Between trims the log may exceed the retention by what was
     * written meanwhile; shorter costs a LevelDB range delete more often.
     */
    logTrimInterval: positiveInt.default(10_000),
    /**
     * Which of LevelDB's files are checked for damage (their CRC-32Cs) before
     * the node opens them. all (default): the write-ahead log, the manifest
     * and every live table, so the start reads the whole data set once (at
     * disk speed; a large data dir starts slower). logs: the write-ahead log
     * and the manifest only (fast, and enough to never lose an acknowledged
     * write to a damaged log record in silence), leaving damaged tables to be
     * found when read. none: trust the disk. A damaged node refuses to start
     * (CORRUPT) or, when it would start as a replica, resyncs (see README).
     */
    verifyAtStart: z.enum(['all', 'logs', 'none']).default('all'),
    /**
     * TLS: PEM certificate (chain) and private key files. With both, the port
     * serves wss:// and https:// only, and this node dials its upstream and
     * its fail-over members over wss://, presenting this certificate. Costs a
     * TLS handshake per connection and encryption of every byte; beyond
     * loopback it is what keeps the data and a client's token private.
     */
    tlsCert: z.string().min(1).optional(),
    tlsKey: z.string().min(1).optional(),
    /**
     * PEM file of the CA(s) this node trusts for peers: it checks the
     * certificates of the nodes it dials against it (default: the system's
     * CAs), and requires nodes that connect to it for replication or
     * fail-over to present a certificate it signed. Clients need none.
     */
    tlsCa: z.string().min(1).optional(),
    /** Shared secret that clients and peers must present. Compared in constant time. */
    authToken: z.string().min(1).optional(),
    /** Longest key in bytes. */
    maxKeyBytes: positiveInt.default(DEFAULT_LIMITS.maxKeyBytes),
    /** Largest value in bytes. */
    maxValueBytes: positiveInt.default(DEFAULT_LIMITS.maxValueBytes),
    /** Largest WebSocket message accepted; a larger one closes the connection (1009). */
    maxFrameBytes: positiveInt.default(DEFAULT_LIMITS.maxFrameBytes),
    /** Most operations in one batch request. */
    maxBatchOps: positiveInt.default(DEFAULT_LIMITS.maxBatchOps),
    /**
     * Requests one connection may have unanswered. Past it the server stops
     * reading that socket until replies go out, so a fast sender is slowed,
     * not buffered. Default 1024.
     */
    maxInFlight: positiveInt.default(1024),
    /**
     * Bytes of replies buffered for one connection before the server stops
     * reading its requests. Default 8 MiB.
     */
    maxReplyBufferBytes: positiveInt.default(8 * 1024 * 1024),
    /** Most client connections at once; more are refused with BUSY. Default 10,000. */
    maxConnections: positiveInt.default(10_000),
    /** Writes waiting for the group committer before new ones get BUSY. Default 100,000. */
    maxQueuedWrites: positiveInt.default(100_000),
    /** Most writes in one group commit (one LevelDB batch). Default 2,000. */
    maxGroupCommit: positiveInt.default(2000),
    /**
     * A downstream that sends nothing, or cannot take what it is sent (more
     * than 4 MiB unflushed), for this many ms is disconnected with a warning.
     * Default 10,000. Shorter detects stuck replicas sooner; too short drops
     * replicas on a GC pause.
     */
    replTimeout: positiveInt.default(10_000),
    /** With --min-replicas N, writes get NOREPLICAS unless N replicas are within --max-lag ms. */
    minReplicas: nonNegativeInt.default(0),
    maxLag: positiveInt.default(10_000),
    /** Fail-over group members (HOST:PORT of each, this node included). */
    cluster: list.default([]),
    failover: z.enum(['manual', 'auto']).default('manual'),
    /**
     * Fail-over timeout, ms: a member that hears no master heartbeat for this
     * long (plus up to 40% jitter) stands for election; the master's lease is
     * 70% of it. Default 1000. Shorter fails over sooner but risks elections
     * on a long GC pause or a loaded machine.
     */
    failoverTimeout: positiveInt.default(1000),
    /** How often the master heartbeats the group, ms. Default 150. */
    heartbeatInterval: positiveInt.default(150),
    /** Vote in fail-over elections but store no data. */
    witness: bool.default(false),
    mode: z.enum(['single', 'multi']).default('single'),
    peers: list.default([]),
    conflict: z.enum(['lww', 'vclock']).default('lww'),
    logFormat: z.enum(['json', 'pretty']).default('json'),
    logLevel: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  })
  .strict()

export type Config = z.infer<typeof configSchema>
export type ConfigInput = z.input<typeof configSchema>

const FLAG_NAMES = Object.keys(configSchema.shape) as (keyof Config)[]
const kebab = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
const envName = (name: string) => `TANDEM_${kebab(name).replace(/-/g, '_').toUpperCase()}`

export class UsageError extends TandemError {
  constructor(message: string) {
    super('INVALID', message)
  }
}

/** Builds the config from argv, the environment and an optional --config file. Throws UsageError. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): Config {
  const options: Record<string, { type: 'string' | 'boolean' }> = {
    config: { type: 'string' },
    help: { type: 'boolean' },
  }
  for (const name of FLAG_NAMES) options[kebab(name)] = { type: name === 'witness' ? 'boolean' : 'string' }
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: false })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  const values = parsed.values as Record<string, string | boolean | undefined>
  if (values.help) throw new UsageError('help')

  let file: Record<string, unknown> = {}
  const configPath = (values.config as string | undefined) ?? env.TANDEM_CONFIG
  if (configPath) {
    try {
      file = JSON.parse(readFileSync(configPath, 'utf8'))
    } catch (err) {
      throw new UsageError(`cannot read config file ${configPath}: ${(err as Error).message}`)
    }
  }
  const input: Record<string, unknown> = { ...file }
  for (const name of FLAG_NAMES) {
    const fromEnv = env[envName(name)]
    if (fromEnv !== undefined && fromEnv !== '') input[name] = fromEnv
    const fromFlag = values[kebab(name)]
    if (fromFlag !== undefined) input[name] = fromFlag
  }
  const result = configSchema.safeParse(input)
  if (!result.success) {
    const issue = result.error.issues[0]
    const name = String(issue.path[0] ?? '')
    throw new UsageError(name ? `--${kebab(name)}: ${issue.message}` : issue.message)
  }
  const config = result.data
  if (config.mode === 'multi' || config.peers.length > 0) {
    throw new UsageError(
      '--mode multi (multi-master with --peers/--conflict) is not available in this version of tandem',
    )
  }
  if (config.failover === 'auto' && config.cluster.length === 0 && !config.witness) {
    throw new UsageError('--failover auto needs --cluster with the addresses of the fail-over group')
  }
  if (config.witness && config.cluster.length === 0) throw new UsageError('--witness needs --cluster')
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) {
    throw new UsageError('--tls-cert and --tls-key go together')
  }
  if (config.tlsCa !== undefined && config.tlsCert === undefined) {
    throw new UsageError('--tls-ca needs --tls-cert and --tls-key (it checks peers on TLS links)')
  }
  if (config.witness && config.replicaof) throw new UsageError('a --witness stores no data and cannot have --replicaof')
  return config
}

export function usage(): string {
  const lines = ['usage: tandem-server [flags]', '', 'flags (each also TANDEM_<NAME> in the environment):']
  for (const name of FLAG_NAMES) {
    const def = (configSchema.shape[name] as unknown as { _zod?: { def?: { defaultValue?: unknown } } })._zod?.def
      ?.defaultValue
    lines.push(`  --${kebab(name).padEnd(24)} ${def === undefined ? '' : `default ${JSON.stringify(def)}`}`)
  }
  lines.push('  --config FILE              JSON file with any of the above (camelCase keys)')
  return lines.join('\n')
}
