import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import {
  DEFAULT_LIMITS,
  formatHostPort,
  hostPortProblem,
  MAX_FRAME_BYTES_CEILING,
  quote,
  TandemError,
} from '@tandem/protocol'
import { z } from 'zod'
import { tuneInput, tuningSchema } from './tuning.js'

/**
 * Every setting of tandem-server, in one schema. A setting comes from a
 * command-line flag (`--log-retention`), else an environment variable
 * (`TANDEM_LOG_RETENTION`), else a JSON config file (`--config FILE`, key
 * `logRetention`), else its default.
 */

const hostPort = z.string().superRefine((s, ctx) => {
  const problem = hostPortProblem(s)
  if (problem !== null) ctx.addIssue({ code: 'custom', message: problem })
})

const positiveInt = z.coerce.number().int().positive()
const nonNegativeInt = z.coerce.number().int().nonnegative()
const bool = z.union([z.boolean(), z.enum(['true', 'false', '1', '0']).transform((s) => s === 'true' || s === '1')])
const list = z
  .union([z.array(hostPort), z.string().transform((s) => s.split(',').filter(Boolean))])
  .pipe(z.array(hostPort))

/**
 * A duration in ms, given with a unit (`250ms`, `60s`, `2m`, `1h`,
 * fractions allowed: `1.5s`) or as a plain number, which is milliseconds
 * (what every duration flag took before units). Redis users write
 * `--repl-timeout 60` meaning seconds; the unit makes it unambiguous.
 */
const duration = z
  .union([z.number(), z.string()])
  .transform((value, ctx) => {
    const ms = parseDuration(value)
    if (ms === null) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a duration such as 250ms, 60s, 2m or 1h (a plain number is ms), got ${JSON.stringify(value)}`,
      })
      return z.NEVER
    }
    return ms
  })
  .pipe(z.number().int('a duration must come to a whole number of ms').positive('a duration must be more than 0'))

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** Milliseconds for `250ms`, `60s`, `2m`, `1h`, `1.5s` or a plain number of ms; null for anything else. */
export function parseDuration(value: string | number): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value)
  if (!m) return null
  return Math.round(Number(m[1]) * UNIT_MS[m[2] ?? 'ms'] * 1000) / 1000
}

/** The shortest way to write `ms` with a unit: 10000 -> 10s, 150 -> 150ms, 120000 -> 2m. */
export function formatDuration(ms: number): string {
  for (const unit of ['h', 'm', 's'] as const) {
    if (ms >= UNIT_MS[unit] && ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`
  }
  return `${ms}ms`
}

/**
 * What --help and the README's flag table say of a setting, kept with the
 * setting (zod metadata) so that the two cannot drift from the schema.
 * `description` says what it does, its unit and its trade-off.
 */
export interface FlagDoc {
  description: string
  /** The value's placeholder: HOST:PORT, FILE, N, BYTES, DURATION, a|b|c. */
  value?: string
  /** Shown as the default where the schema has none, or says it better. */
  shownDefault?: string
  /** A duration: the default is shown with its unit. */
  duration?: boolean
  /** Not listed: the feature is not built (the flag is refused). */
  hidden?: boolean
}

const doc = (d: FlagDoc) => d as FlagDoc & Record<string, unknown>

export const configSchema = z
  .object({
    host: z
      .string()
      .min(1)
      .default('127.0.0.1')
      .meta(
        doc({
          value: 'HOST',
          description:
            'Interface to listen on. The default, 127.0.0.1, is reachable from this machine only; 0.0.0.0 or a LAN address opens the node to others (use TLS or --auth-token there).',
        }),
      ),
    port: z.coerce
      .number()
      .int()
      .min(0)
      .max(65535)
      .default(7379)
      .meta(
        doc({
          value: 'PORT',
          description:
            'Port for clients and peers (WebSocket) and HTTP (/health, /ready, /status, /convergence, /metrics, the web console at /ui/). 0 picks a free one.',
        }),
      ),
    respPort: z.coerce
      .number()
      .int()
      .min(0)
      .max(65535)
      .optional()
      .meta(
        doc({
          value: 'PORT',
          shownDefault: 'off',
          description:
            'Also serve the Redis protocol (RESP2/RESP3 over TCP: redis-cli, ioredis, redis-benchmark, HAProxy checks) on this port, on --host; 0 picks a free one. Same auth token, limits and error codes as the WebSocket API (see Redis protocol).',
        }),
      ),
    groupName: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, . _ - only, at most 64')
      .default('tandem')
      .meta(
        doc({
          value: 'NAME',
          description:
            "The group's name as Redis Sentinel clients know it (SENTINEL get-master-addr-by-name NAME, ioredis `name`).",
        }),
      ),
    advertise: hostPort.optional().meta(
      doc({
        value: 'HOST:PORT',
        shownDefault: 'host:port as bound',
        description:
          'The address other nodes and clients use to reach this node (named in READONLY errors, status and replication handshakes).',
      }),
    ),
    dataDir: z
      .string()
      .min(1)
      .default('./data')
      .meta(doc({ value: 'DIR', description: 'Where the LevelDB files, the node id and rollback files live.' })),
    nodeId: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, . _ - only, at most 64')
      .optional()
      .meta(
        doc({
          value: 'ID',
          shownDefault: 'generated once, kept in the data dir',
          description: 'Stable identity of this node (letters, digits, . _ -, at most 64).',
        }),
      ),
    replicaof: hostPort.optional().meta(
      doc({
        value: 'HOST:PORT',
        shownDefault: 'none',
        description: 'Start as a replica of this upstream (a master or another replica).',
      }),
    ),
    sync: z
      .enum(['always', 'periodic', 'none'])
      .default('always')
      .meta(
        doc({
          value: 'always|periodic|none',
          description:
            'always: fsync every group commit before answering (no acknowledged write is lost on power failure). periodic: fsync once a second (the tunable periodicSyncMs; up to that much of acknowledged writes can be lost on power failure, none on a process crash; a failed fsync makes the node refuse writes with UNAVAILABLE until restarted). none: leave it to the OS.',
        }),
      ),
    logRetention: positiveInt.default(1_000_000).meta(
      doc({
        value: 'N',
        description:
          'Log entries kept behind the newest for partial resync (1,000,000 is about 150 MB at 100-byte values). A replica further behind gets a full sync: more costs disk, less makes full syncs likelier after long outages.',
      }),
    ),
    logTrimInterval: duration.default(10_000).meta(
      doc({
        value: 'DURATION',
        duration: true,
        description:
          'How often the log is trimmed down to --log-retention. Between trims the log may exceed it by what was written meanwhile; shorter costs a LevelDB range delete more often.',
      }),
    ),
    verifyAtStart: z
      .enum(['all', 'logs', 'none'])
      .default('all')
      .meta(
        doc({
          value: 'all|logs|none',
          description:
            "Which of LevelDB's files are checked for damage (their CRC-32Cs) before the node opens them. all: the write-ahead log, the manifest and every live table, so the start reads the whole data set once (a large data dir starts slower). logs: the write-ahead log and the manifest only (fast, and enough to never lose an acknowledged write to a damaged log record in silence). none: trust the disk. A damaged node refuses to start (CORRUPT) or, when it would start as a replica, resyncs (see Damaged data). Damage a skipped table holds, or that appears while the node runs, is found on read by each record's own checksum.",
        }),
      ),
    tlsCert: z
      .string()
      .min(1)
      .optional()
      .meta(
        doc({
          value: 'FILE',
          shownDefault: 'none',
          description:
            "PEM certificate (chain); with --tls-key, the port serves wss:// and https:// only, and this node dials its upstream and fail-over members over wss://, presenting it. Costs a TLS handshake per connection and encryption of every byte; beyond loopback it is what keeps the data and the clients' token private.",
        }),
      ),
    tlsKey: z
      .string()
      .min(1)
      .optional()
      .meta(doc({ value: 'FILE', shownDefault: 'none', description: "PEM private key of --tls-cert's certificate." })),
    tlsCa: z
      .string()
      .min(1)
      .optional()
      .meta(
        doc({
          value: 'FILE',
          shownDefault: 'system CAs',
          description:
            'PEM CA(s) this node trusts for peers: it checks the certificate (and its host name or IP) of every node it dials against it, and requires nodes that connect for replication or fail-over to present a certificate it signed; clients need none. Needs --tls-cert and --tls-key.',
        }),
      ),
    authToken: z
      .string()
      .min(1)
      .optional()
      .meta(
        doc({
          value: 'TOKEN',
          shownDefault: 'none',
          description:
            'Shared secret for clients (Authorization: Bearer, or an auth request) and peers, compared in constant time. Links between nodes never send it: both ends prove they hold it. Clients do send it: beyond loopback, use TLS.',
        }),
      ),
    maxKeyBytes: positiveInt
      .default(DEFAULT_LIMITS.maxKeyBytes)
      .meta(doc({ value: 'BYTES', description: 'Longest key.' })),
    maxValueBytes: positiveInt
      .default(DEFAULT_LIMITS.maxValueBytes)
      .meta(doc({ value: 'BYTES', description: 'Largest value.' })),
    maxFrameBytes: positiveInt
      .max(MAX_FRAME_BYTES_CEILING)
      .default(DEFAULT_LIMITS.maxFrameBytes)
      .meta(
        doc({
          value: 'BYTES',
          description:
            'Largest WebSocket message accepted from a client (a larger one closes the connection, 1009) and sent to one (replies are split across frames; a single reply larger than this is TOOLARGE). At most 268435456 (256 MiB, what the SDK reads). As a replica or multi-master peer, this node reads frames up to twice this from its upstream and says so when it dials: the upstream cuts full-sync chunks and frames of entries under that, and refuses with TOOLARGE (shown in status: link.refusal, or the reason of the peer link) a record or log entry too large to fit alone, rather than sending a frame that would close the link at every try. Larger lets bigger batches and mgets through, and lets one connection hold more memory.',
        }),
      ),
    maxBatchOps: positiveInt
      .default(DEFAULT_LIMITS.maxBatchOps)
      .meta(doc({ value: 'N', description: 'Most operations in one batch (and keys in one mget).' })),
    maxInFlight: positiveInt.default(1024).meta(
      doc({
        value: 'N',
        description:
          'Requests one connection may have unanswered. Past it the server stops reading that socket until replies go out, so a fast sender is slowed, not buffered.',
      }),
    ),
    maxReplyBufferBytes: positiveInt.default(8 * 1024 * 1024).meta(
      doc({
        value: 'BYTES',
        description:
          'Reply budget of one connection: replies waiting to be sent plus what its running reads may still reply (each read reserves the most its reply can be, by the largest value the node holds). A request whose reply does not fit waits, and the server stops reading the socket meanwhile. One request always runs when nothing else is pending, so a connection holds at most the larger of this and --max-frame-bytes.',
      }),
    ),
    maxConnections: positiveInt.default(10_000).meta(
      doc({
        value: 'N',
        description:
          'Most client connections (and watches) at once; more are refused (HTTP 503, BUSY), except that one presenting the token takes the slot of the oldest connection that has not authenticated yet.',
      }),
    ),
    authTimeout: duration.default(5000).meta(
      doc({
        value: 'DURATION',
        duration: true,
        description:
          'With --auth-token, how long a client connection has to authenticate (Bearer header or auth request) before it is closed (4401): a socket that never does, idle or not, gives its slot back. Longer suits clients far away; shorter frees slots sooner.',
      }),
    ),
    frameTimeout: duration.default(30_000).meta(
      doc({
        value: 'DURATION',
        duration: true,
        description:
          'How long a WebSocket frame (or a RESP command) may take to arrive whole, from its first byte; a slower one closes its connection (1008). Time the node spends not reading the socket does not count. 30s lets 8 MiB frames through at 280 KiB/s; shorter frees memory held by stalled senders sooner, too short cuts off large requests over slow links.',
      }),
    ),
    maxPartialFrameBytes: positiveInt.default(64 * 1024 * 1024).meta(
      doc({
        value: 'BYTES',
        description:
          'Bytes of frames still arriving, across all connections, the node holds at most; the connection whose frame takes it past is closed (1013, try again later). The RESP port holds the bytes of commands read and not yet run to a budget of this size of its own. 64 MiB is eight frames at the default --max-frame-bytes.',
      }),
    ),
    maxQueuedWrites: positiveInt
      .default(100_000)
      .meta(doc({ value: 'N', description: 'Writes waiting for the group committer before new ones get BUSY.' })),
    maxGroupCommit: positiveInt
      .default(2000)
      .meta(doc({ value: 'N', description: 'Most writes in one group commit (one LevelDB batch).' })),
    replTimeout: duration.default(10_000).meta(
      doc({
        value: 'DURATION',
        duration: true,
        description:
          'A downstream that sends nothing, or cannot take what it is sent (more than the tunable replHighWaterBytes, 4 MiB, unflushed), for this long is disconnected with a warning (a multi-master peer that dialled this node too). The link of a replica to its upstream, and a multi-master peer link, whose other end sends nothing for this long (not even the heartbeat it sends every replHeartbeatMs, or a pong) is given up and redialled, and says so in status (link.silenceTimeouts, peers[].silenceTimeouts): a stopped or cut-off upstream keeps its socket open. Keep it well above replHeartbeatMs. Measured on the monotonic clock: a stepped wall clock neither shortens nor stretches it. Shorter detects stuck replicas sooner; too short drops replicas on a GC pause.',
      }),
    ),
    minReplicas: nonNegativeInt.default(0).meta(
      doc({
        value: 'N',
        description: 'Refuse writes (NOREPLICAS) unless N replicas are within --max-lag of this master.',
      }),
    ),
    maxLag: duration.default(10_000).meta(
      doc({
        value: 'DURATION',
        duration: true,
        description:
          'How far behind a replica may be and still count for --min-replicas, and still answer /ready with 200: lacking no entry committed longer ago than this, and heard from (replicas ack every 250 ms, the tunable replAckIntervalMs, so keep it well above that) within it. A master cut off from its replicas thus refuses writes this long after it last heard them, not only when its lease lapses.',
      }),
    ),
    cluster: list.default([]).meta(
      doc({
        value: 'A,B,C',
        shownDefault: 'none',
        description:
          "The fail-over group: this node's routes (HOST:PORT) to every member, itself included, each once (an entry given twice exits 2 naming it; two routes found to reach one member count as one).",
      }),
    ),
    failover: z
      .enum(['manual', 'auto'])
      .default('manual')
      .meta(
        doc({
          value: 'manual|auto',
          description: 'auto: the group elects a master when it loses one. manual: only `tandem promote` makes one.',
        }),
      ),
    failoverTimeout: duration.default(1000).meta(
      doc({
        value: 'DURATION',
        duration: true,
        description:
          "Silence from the master after which a member stands for election (plus up to 40% jitter); the master's lease is 70% of it. Shorter fails over sooner but risks elections on a long GC pause or a loaded machine.",
      }),
    ),
    heartbeatInterval: duration
      .default(150)
      .meta(doc({ value: 'DURATION', duration: true, description: 'How often the master heartbeats the group.' })),
    witness: bool
      .default(false)
      .meta(doc({ shownDefault: 'off', description: 'Vote in fail-over elections but store no data.' })),
    restore: z
      .string()
      .min(1)
      .optional()
      .meta(
        doc({
          value: 'FILE',
          shownDefault: 'none',
          description:
            "Start from this snapshot file (tandem snapshot save): the data dir must be empty, or already restored from this same file, which is then started as it is (the flag may stay in a service command line). The node holds the data at the snapshot's seq with its history; with --replicaof it then catches up from there (see Backup and restore).",
        }),
      ),
    mode: z
      .enum(['single', 'multi'])
      .default('single')
      .meta(
        doc({
          value: 'single|multi',
          description:
            'single: one master (with replicas and fail-over). multi: this node and every one in --peers take writes, replicate to each other and resolve conflicting writes per --conflict (see Multi-master). Fixed when the data dir is created.',
        }),
      ),
    peers: list.default([]).meta(
      doc({
        value: 'A,B,C',
        shownDefault: 'none',
        description:
          "Multi-master: HOST:PORT of the other masters this node replicates with (a mesh, a ring or a tree), each once. Needs --mode multi. An entry that is not HOST:PORT, one given twice, or the node's own address (--advertise, or --host:--port) exits 2 naming it.",
      }),
    ),
    conflict: z
      .enum(['lww', 'vclock'])
      .default('lww')
      .meta(
        doc({
          value: 'lww|vclock',
          description:
            'Multi-master conflict policy, fixed when the data dir is created. lww: the write with the greatest (hybrid logical clock, origin) wins. vclock: dotted version vectors; concurrent writes are kept as siblings.',
        }),
      ),
    maxClockOffset: duration.default(500).meta(
      doc({
        value: 'DURATION',
        duration: true,
        description:
          "Multi-master: most a peer's clock may run ahead of this node's. Entries stamped further ahead are not applied (that peer's link pauses and says why), and a node whose clock runs ahead of half its peers by 80% of it refuses writes (CLOCKSKEW), so one fast clock cannot win every conflict. Larger tolerates worse clocks and lets a fast one win for longer.",
      }),
    ),
    maxSiblings: positiveInt
      .max(1000)
      .default(16)
      .meta(
        doc({
          value: 'N',
          description:
            'Multi-master, vclock: most concurrent values a key keeps. Past it the oldest (by HLC) are dropped, counted and written to the conflicts file in the data dir.',
        }),
      ),
    testClockFile: z
      .string()
      .min(1)
      .optional()
      .meta(
        doc({
          value: 'FILE',
          shownDefault: 'none',
          description:
            "For tests only: this node's wall clock runs ahead by the ms written in FILE (negative: behind), re-read when the file changes, as a stepped machine clock would. The monotonic clock that leases and timeouts use does not move.",
        }),
      ),
    tune: z
      .unknown()
      .transform((value, ctx) => {
        try {
          return tuneInput(value)
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message })
          return z.NEVER
        }
      })
      .pipe(tuningSchema)
      .meta(
        doc({
          value: 'NAME=VALUE[,NAME=VALUE...]',
          shownDefault: 'none',
          description:
            'Sets tunables: sizes, intervals and timeouts inside the node, each listed with its unit, default and trade-off under Tunables. May be given more than once; in a config file, an object (`"tune": {"periodicSyncMs": 200}`).',
        }),
      ),
    logFormat: z
      .enum(['json', 'pretty'])
      .default('json')
      .meta(doc({ value: 'json|pretty', description: 'One JSON object a line on stderr, or readable lines.' })),
    logLevel: z
      .enum(['debug', 'info', 'warn', 'error'])
      .default('info')
      .meta(doc({ value: 'debug|info|warn|error', description: 'The least severe log lines written.' })),
  })
  .strict()

export type Config = z.infer<typeof configSchema>
export type ConfigInput = z.input<typeof configSchema>

export const FLAG_NAMES = Object.keys(configSchema.shape) as (keyof Config)[]
export const kebab = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
export const envName = (name: string) => `TANDEM_${kebab(name).replace(/-/g, '_').toUpperCase()}`

export class UsageError extends TandemError {
  constructor(message: string) {
    super('INVALID', message)
  }
}

/** Builds the config from argv, the environment and an optional --config file. Throws UsageError. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): Config {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {
    config: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean' },
  }
  for (const name of FLAG_NAMES) options[kebab(name)] = { type: name === 'witness' ? 'boolean' : 'string' }
  options.tune.multiple = true
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: false })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  const values = parsed.values as Record<string, string | boolean | undefined>
  if (values.help) throw new UsageError('help')
  if (values.version) throw new UsageError('version')

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
  // Tunables merge one by one (a flag wins over the environment, which wins over the file).
  try {
    input.tune = { ...tuneInput(file.tune), ...tuneInput(env.TANDEM_TUNE || undefined), ...tuneInput(values.tune) }
  } catch (err) {
    throw new UsageError(`--tune: ${(err as Error).message}`)
  }
  const result = configSchema.safeParse(input)
  if (!result.success) {
    const issue = result.error.issues[0]
    const name = String(issue.path[0] ?? '')
    // An entry of a list (--peers, --cluster) is named by its message, which quotes it, not by its index.
    const inner = issue.path.length > 1 && typeof issue.path[1] !== 'number' ? `${String(issue.path[1])}: ` : ''
    throw new UsageError(name ? `--${kebab(name)}: ${inner}${issue.message}` : issue.message)
  }
  const config = result.data
  if (config.mode !== 'multi' && config.peers.length > 0) throw new UsageError('--peers needs --mode multi')
  checkPeers(config)
  checkCluster(config)
  if (config.respPort !== undefined && config.respPort !== 0 && config.respPort === config.port) {
    throw new UsageError(`--resp-port ${config.respPort} is --port too: the Redis protocol needs a port of its own`)
  }
  // Given (flag, environment or file) to a node that is not multi-master,
  // these would be ignored in silence: a node meant as a vclock peer would
  // start as a single master, and its data dir would stay one.
  for (const name of ['conflict', 'maxSiblings'] as const) {
    if (config.mode !== 'multi' && input[name] !== undefined) {
      throw new UsageError(`--${kebab(name)} needs --mode multi (a replica of a peer takes its upstream's policy)`)
    }
  }
  if (config.mode === 'multi') {
    if (config.replicaof) throw new UsageError('--mode multi takes writes itself and cannot have --replicaof')
    if (config.cluster.length > 0 || config.witness) {
      throw new UsageError('--mode multi needs no fail-over group (--cluster, --witness): every peer takes writes')
    }
    // A restored copy would issue again counters its peers already hold from this origin.
    if (config.restore) {
      throw new UsageError('--mode multi cannot --restore: start the peer with an empty data dir and its peers fill it')
    }
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
  if (config.witness && config.restore) throw new UsageError('a --witness stores no data and cannot --restore')
  return config
}

/**
 * --peers lists the other nodes, each once. The node's own address (as it
 * advertises it, or --host:--port) would be a link refused as `self` at
 * every retry, and either mistake would count a peer that is not there
 * towards `w: 'majority'` and the checks of `w: N`.
 */
function checkPeers(config: Config): void {
  const own = new Set<string>()
  if (config.advertise !== undefined) own.add(addressKey(config.advertise))
  if (config.port !== 0) own.add(addressKey(formatHostPort(config.host, config.port)))
  for (const peer of config.peers) {
    if (own.has(addressKey(peer))) {
      throw new UsageError(`--peers: ${quote(peer)} is this node's own address (--peers lists the other nodes)`)
    }
  }
  refuseRepeats('--peers', config.peers)
}

/**
 * --cluster lists every member once, this node included. A member given
 * twice was folded away in silence before, so a typo for a third member
 * (A,B,B) made a group of two, where every fail-over needs both.
 */
function checkCluster(config: Config): void {
  refuseRepeats('--cluster', config.cluster)
}

/** Refuses an address of `flag`'s list given twice, in the same spelling or another (addressKey). */
function refuseRepeats(flag: string, addresses: readonly string[]): void {
  const seen = new Map<string, string>()
  for (const address of addresses) {
    const key = addressKey(address)
    const before = seen.get(key)
    if (before === address) throw new UsageError(`${flag}: ${quote(address)} is given twice`)
    if (before !== undefined) throw new UsageError(`${flag}: ${quote(address)} is ${quote(before)} again`)
    seen.set(key, address)
  }
}

/**
 * HOST:PORT as one address however it is spelled: a name in any case, an
 * IPv6 address compressed or not, a port with leading zeros
 * (DB-1.example:07379 is db-1.example:7379, [0:0:0:0:0:0:0:1] is [::1]).
 * A name and an address it resolves to stay two spellings.
 */
function addressKey(address: string): string {
  const colon = address.lastIndexOf(':')
  try {
    return `${new URL(`ws://${address.slice(0, colon)}/`).hostname}:${Number(address.slice(colon + 1))}`
  } catch {
    return address
  }
}
