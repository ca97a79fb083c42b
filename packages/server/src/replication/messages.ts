import { z } from 'zod'

/**
 * Messages on a replication link (WebSocket at /replication, one msgpack
 * map per frame, validated on receipt like client requests).
 *
 *   downstream                                upstream
 *   hello {nodeId, addr, history, lastSeq} ->
 *                                          <- continue {fromSeq, history, master}
 *                                           | fullsync {seq, history, master}
 *                                             snapshot {chunk, count} ... snapshotEnd {seq}
 *                                           | refuse {reason, message}
 *                                          <- entries {entries, head, time}   (repeated)
 *                                          <- history {history}               (epoch change)
 *                                          <- heartbeat {head, time, master, epoch}
 *   ack {seq} ->                              (while streaming: after each durably applied batch,
 *                                              and every 250 ms; a WebSocket ping instead before then)
 */

const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected binary')

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

export const helloSchema = z.object({
  type: z.literal('hello'),
  nodeId: z.string().min(1).max(64),
  /** HOST:PORT the downstream serves clients on. */
  addr: z.string().max(300),
  history: historySchema,
  lastSeq: z.number().int().nonnegative(),
})
export type Hello = z.infer<typeof helloSchema>

export const ackSchema = z.object({ type: z.literal('ack'), seq: z.number().int().nonnegative() })

export const downstreamMessageSchema = z.discriminatedUnion('type', [helloSchema, ackSchema])
export type DownstreamMessage = z.infer<typeof downstreamMessageSchema>

const master = z.string().nullable()

export const upstreamMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('continue'), fromSeq: z.number().int().positive(), history: historySchema, master }),
  z.object({
    type: z.literal('fullsync'),
    seq: z.number().int().nonnegative(),
    history: historySchema,
    master,
    /** When set, the downstream's entries after this seq are a divergent tail: roll them back first. */
    rollbackAfter: z.number().int().nonnegative().nullable(),
  }),
  /** A chunk of data records in the binary layout of storage/snapshot-chunk.ts. */
  z.object({ type: z.literal('snapshot'), chunk: bytes, count: z.number().int().nonnegative() }),
  z.object({ type: z.literal('snapshotEnd'), seq: z.number().int().nonnegative() }),
  z.object({ type: z.literal('refuse'), reason: z.string(), message: z.string() }),
  z.object({
    type: z.literal('entries'),
    entries: z.array(bytes),
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
