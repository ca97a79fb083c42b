import { z } from 'zod'

/**
 * Client <-> server messages. A request is an object with a numeric `id`
 * and an `op`; the reply echoes the id with either `result` or `error`.
 * Requests on one socket may be pipelined; replies can come back in any
 * order, matched by id.
 */

export const keySchema = z.string()
export const valueSchema = z.union([
  z.string(),
  z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected string or binary'),
])
export type Value = z.infer<typeof valueSchema>

/** How many replicas must hold a write before it is acknowledged. */
export const writeConcernSchema = z.union([z.number().int().min(0).max(1000), z.literal('majority')])
export type WriteConcern = z.infer<typeof writeConcernSchema>

const writeOptions = {
  w: writeConcernSchema.optional(),
  timeoutMs: z.number().int().positive().max(3_600_000).optional(),
  /**
   * The newest fail-over epoch the client has seen (from status, topology
   * pushes, errors). A master of an older epoch that receives it steps
   * down (FENCED): a newer master exists.
   */
  epoch: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
  /**
   * Multi-master: the greatest hybrid clock stamp the client was given for
   * its writes. The node stamps this write after it, so the client's writes
   * keep their order under last-writer-wins whichever peers take them.
   * Ignored by a single master, whose log orders every write.
   */
  after: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
}

/**
 * Multi-master (vclock): the opaque causal context a read returned
 * (getAll, or a SIBLINGS error); a write with it replaces exactly the
 * values that read saw.
 */
export const contextSchema = z.string().max(64 * 1024)

const id = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)

/**
 * What a read may return (see the README's consistency section):
 * linearizable: only a master holding its lease answers, once every write
 * the read could see is held by a majority; lease: a master holding its
 * lease answers from its own data; local: any node answers from its own
 * data. Absent: linearizable on a master in a fail-over group, else local.
 */
export const consistencySchema = z.enum(['linearizable', 'lease', 'local'])
export type Consistency = z.infer<typeof consistencySchema>
const readOptions = { consistency: consistencySchema.optional() }

/**
 * Compare-and-set conditions on a write's key, checked by the master when
 * the write commits; one that does not hold fails the write (the whole
 * batch) with CONFLICT. ifSeq: the key's modification seq (`get` with
 * `meta`) must be this, 0 meaning the key must not exist; ifAbsent: it must
 * not exist; ifPresent: it must.
 */
const conditions = {
  ifSeq: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
  ifPresent: z.boolean().optional(),
}
/** Longest TTL: ten years (an expiry time stays far inside a safe integer of ms). */
export const MAX_TTL_MS = 10 * 365 * 24 * 3600 * 1000
/**
 * ttlMs: the key expires this long after the master takes the write (see
 * README, TTL); a put without it clears any TTL the key had.
 */
const putConditions = {
  ...conditions,
  ifAbsent: z.boolean().optional(),
  ttlMs: z.number().int().positive().max(MAX_TTL_MS).optional(),
}

export const batchOpSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('put'), key: keySchema, value: valueSchema, ...putConditions }).strict(),
  z.object({ type: z.literal('del'), key: keySchema, ...conditions }).strict(),
])
export type BatchOp = z.infer<typeof batchOpSchema>

export const scanOptionsSchema = z
  .object({
    prefix: keySchema.optional(),
    gt: keySchema.optional(),
    gte: keySchema.optional(),
    lt: keySchema.optional(),
    lte: keySchema.optional(),
    limit: z.number().int().nonnegative().optional(),
    reverse: z.boolean().optional(),
  })
  .strict()
export type ScanOptions = z.infer<typeof scanOptionsSchema>

export const requestSchema = z.discriminatedUnion('op', [
  z.object({ id, op: z.literal('auth'), token: z.string() }).strict(),
  z.object({ id, op: z.literal('ping') }).strict(),
  /** meta: reply with { value, seq, expiresAt? } (null when missing) instead of the value. */
  z.object({ id, op: z.literal('get'), key: keySchema, meta: z.boolean().optional(), ...readOptions }).strict(),
  z.object({ id, op: z.literal('getAll'), key: keySchema, ...readOptions }).strict(),
  z.object({ id, op: z.literal('mget'), keys: z.array(keySchema), ...readOptions }).strict(),
  z
    .object({
      id,
      op: z.literal('put'),
      key: keySchema,
      value: valueSchema,
      context: contextSchema.optional(),
      ...putConditions,
      ...writeOptions,
    })
    .strict(),
  z
    .object({
      id,
      op: z.literal('del'),
      key: keySchema,
      context: contextSchema.optional(),
      ...conditions,
      ...writeOptions,
    })
    .strict(),
  z.object({ id, op: z.literal('batch'), ops: z.array(batchOpSchema), ...writeOptions }).strict(),
  z.object({ id, op: z.literal('scan'), ...scanOptionsSchema.shape, ...readOptions }).strict(),
  z.object({ id, op: z.literal('status') }).strict(),
  z
    .object({
      id,
      op: z.literal('wait'),
      replicas: z.number().int().min(0).max(1000),
      timeoutMs: z.number().int().positive().max(3_600_000),
    })
    .strict(),
  z.object({ id, op: z.literal('promote') }).strict(),
  z
    .object({
      id,
      op: z.literal('forget'),
      /** Multi-master: the origin (its 32 hex digits, as status shows it) of a peer gone for good. */
      origin: z.string().regex(/^[0-9a-f]{1,64}$/, 'an origin is the hex id status shows (multi.members)'),
      /** Forget it even though a link of it is up now (its links are closed). */
      force: z.boolean().optional(),
    })
    .strict(),
  z
    .object({
      id,
      op: z.literal('replicaof'),
      /** HOST:PORT to follow, or null for "no one". */
      upstream: z.string().nullable(),
    })
    .strict(),
])
export type Request = z.infer<typeof requestSchema>
export type Op = Request['op']
export const OPS: readonly Op[] = requestSchema.options.map((o) => o.shape.op.value)

/** One scan page: entries in key order (reverse order when asked), and whether more remain. */
export interface ScanPage {
  entries: [string, Value][]
  more: boolean
}

export interface WriteResult {
  seq: number
  /** Multi-master: the write's identity, the same on every node (origin, its counter, its HLC timestamp). */
  origin?: string
  originSeq?: number
  hlc?: number
}

/** getAll: every concurrent value of a key (empty when missing) and the causal context to write with. */
export interface GetAllResult {
  values: Value[]
  context: string
}

/** `get` with `meta`: the value, the seq of the write that stored it, and when it expires (ms since 1970). */
export interface ValueMeta {
  value: Value
  seq: number
  expiresAt?: number
}

export interface ReplicaStatus {
  nodeId: string
  addr: string
  /** HOST:PORT the replica serves the Redis protocol on, when it does. */
  respAddr?: string | null
  ackedSeq: number
  lagEntries: number
  lagMs: number
  link?: string
  /** Ms since this node last heard anything from the replica (its acks come every 250 ms). */
  lastHeardMsAgo?: number
}

/** What `status` returns, and `tandem status --json` prints. */
export interface NodeStatus {
  nodeId: string
  role: 'master' | 'replica' | 'peer' | 'witness'
  epoch: number
  seq: number
  upstream: string | null
  readOnly: boolean
  replicas: ReplicaStatus[]
  /**
   * How many keys the node holds, kept exactly with every write (a deleted
   * key that multi-master keeps as a tombstone is not one; an expired key
   * is one until its delete is applied).
   */
  keys: number
  /** Bytes of the data dir's files, refreshed every 2 s at most; null before the first count. */
  diskBytes: number | null
  /** The log this node keeps: what a downstream or a watch can resume from. */
  log: LogRange
  [extra: string]: unknown
}

/** The entries a node's log holds: seqs oldestSeq..newestSeq, `entries` of them. */
export interface LogRange {
  /** The oldest entry it can serve; newestSeq + 1 when it holds none (after a full sync, or before any write). */
  oldestSeq: number
  /** The newest entry: the node's seq. */
  newestSeq: number
  entries: number
}
