import { z } from 'zod'

/**
 * Messages on a replication link (WebSocket at /replication, one msgpack
 * map per frame, validated on receipt like client requests).
 *
 *   downstream                                upstream
 *                                          <- challenge {nonce}
 *   hello {nodeId, addr, history, lastSeq,
 *          conflict, format, nonce, proof, maxFrameBytes} ->
 *                                          <- welcome {proof} | refuse {reason: 'unauthorized'}
 *                                          <- continue {fromSeq, history, master}
 *                                           | fullsync {seq, history, master, rollbackAfter, clock}
 *                                             snapshot {chunk, count} ... snapshotEnd {seq}
 *                                           | refuse {reason, message}
 *                                          <- entries {entries, head, time}   (repeated)
 *                                          <- history {history}               (epoch change)
 *                                          <- heartbeat {head, time, master, epoch}
 *   ack {seq} ->                              (while streaming: after each durably applied batch,
 *                                              and every 250 ms; a WebSocket ping instead before then)
 *
 * Authentication (see peer-auth in the server): each side sends a random
 * nonce and proves that it holds the shared token with an HMAC over both
 * nonces and its role. The token itself never crosses the link, so a node
 * that impersonates either end learns nothing it can replay, and a
 * downstream applies nothing from an upstream that has not proven itself.
 * Without --auth-token both proofs are null.
 */

export const bytesSchema = z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected binary')
/** A challenge nonce: 32 random bytes. */
export const nonceSchema = z.custom<Uint8Array>(
  (v) => v instanceof Uint8Array && v.byteLength === 32,
  'expected a 32-byte nonce',
)
/** An HMAC-SHA256 proof, or null when the sender has no token. */
export const proofSchema = z
  .custom<Uint8Array>((v) => v instanceof Uint8Array && v.byteLength === 32, 'expected a 32-byte proof')
  .nullable()
const conflictSchema = z.enum(['lww', 'vclock'])

export const historySchema = z.array(
  z.object({
    epoch: z.number().int().nonnegative(),
    startSeq: z.number().int().positive(),
    by: z.string(),
    id: z.string().max(64).optional(),
    at: z.number().int().nonnegative().optional(),
    why: z.string().max(200).optional(),
  }),
)

/**
 * The largest frame the dialler reads (a larger one closes its socket):
 * the upstream cuts snapshot chunks and entry frames under it, and refuses
 * with TOOLARGE a record or entry that cannot fit. Absent: no limit said.
 */
export const frameLimitSchema = z.number().int().positive().optional()

export const helloSchema = z.object({
  type: z.literal('hello'),
  nodeId: z.string().min(1).max(64),
  /** HOST:PORT the downstream serves clients on. */
  addr: z.string().max(300),
  /** HOST:PORT the downstream serves the Redis protocol on (--resp-port), if it does. */
  respAddr: z.string().max(300).nullable().optional(),
  history: historySchema,
  lastSeq: z.number().int().nonnegative(),
  nonce: nonceSchema,
  proof: proofSchema,
  /** The conflict policy the downstream's records follow (see Store.policy); absent: none. */
  conflict: conflictSchema.nullable().optional(),
  /** The newest record format the downstream reads (data-format.ts); absent: 1. */
  format: z.number().int().positive().optional(),
  maxFrameBytes: frameLimitSchema,
})
export type Hello = z.infer<typeof helloSchema>

export const ackSchema = z.object({ type: z.literal('ack'), seq: z.number().int().nonnegative() })

export const downstreamMessageSchema = z.discriminatedUnion('type', [helloSchema, ackSchema])
export type DownstreamMessage = z.infer<typeof downstreamMessageSchema>

const master = z.string().nullable()
/** HOST:PORT the upstream serves the Redis protocol on (--resp-port), if it does. */
const respAddr = z.string().max(300).nullable().optional()

export const clockSchema = z.object({
  hlc: z.number().nonnegative(),
  vv: z.record(z.string().max(128), z.number().int().nonnegative()),
})

export const upstreamMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('challenge'), nonce: nonceSchema }),
  z.object({ type: z.literal('welcome'), proof: proofSchema }),
  z.object({
    type: z.literal('continue'),
    fromSeq: z.number().int().positive(),
    history: historySchema,
    master,
    respAddr,
    /** How the upstream's records resolve conflicts (a multi-master node's policy); absent or null: log order. */
    conflict: conflictSchema.nullable().optional(),
  }),
  z.object({
    type: z.literal('fullsync'),
    seq: z.number().int().nonnegative(),
    history: historySchema,
    master,
    respAddr,
    /** When set, the downstream's entries after this seq are a divergent tail: roll them back first. */
    rollbackAfter: z.number().int().nonnegative().nullable(),
    /** The upstream's clock at the snapshot: HLC high-water mark and per-origin counters of what it holds. */
    clock: clockSchema.optional(),
    conflict: conflictSchema.nullable().optional(),
  }),
  /** A chunk of data records in the binary layout of the server's storage/snapshot-chunk.ts. */
  z.object({ type: z.literal('snapshot'), chunk: bytesSchema, count: z.number().int().nonnegative() }),
  z.object({ type: z.literal('snapshotEnd'), seq: z.number().int().nonnegative() }),
  z.object({ type: z.literal('refuse'), reason: z.string(), message: z.string() }),
  z.object({
    type: z.literal('entries'),
    entries: z.array(bytesSchema),
    /** The upstream's lastSeq when it sent this, for lag. */
    head: z.number().int().nonnegative(),
  }),
  z.object({ type: z.literal('history'), history: historySchema }),
  z.object({
    type: z.literal('heartbeat'),
    head: z.number().int().nonnegative(),
    time: z.number(),
    master,
    epoch: z.number().int().nonnegative(),
  }),
])
export type UpstreamMessage = z.infer<typeof upstreamMessageSchema>
