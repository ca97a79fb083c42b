import { z } from 'zod'
import { bytesSchema, frameLimitSchema, nonceSchema, proofSchema } from './replication.js'

/**
 * Messages on a multi-master peer link (WebSocket at /peer, one msgpack map
 * per frame, validated on receipt). The node that dials pulls: it says what
 * it holds (a version vector), and the node it dials sends every entry of
 * its log the dialler lacks, whatever the entry's origin. Each pair of
 * peers has two links, one each way.
 *
 *   dialler (puller)                              listener (pusher)
 *                                            <- challenge {nonce}
 *   hello {nodeId, origin, addr, conflict, vv, time, format, nonce, proof,
 *          incarnation, direct, directRuns, maxFrameBytes} ->
 *                                            <- welcome {proof} | refuse {reason: 'unauthorized'}
 *                                            <- continue {fromSeq, nodeId, origin, vv, time, incarnation, peersHold}
 *                                             | fullsync {seq, nodeId, origin, clock, time, incarnation, peersHold}
 *                                               snapshot {chunk, count} ... snapshotEnd {seq}
 *                                             | refuse {reason, message}
 *                                            <- entries {entries, head, vv}        (repeated)
 *                                            <- heartbeat {time, vv, digest, digestHash, rows, peersHold} (every 500 ms)
 *   ack {vv, digest, rows, direct, directRuns, frames} -> (after each applied frame, and every 250 ms)
 *   clock {t0} ->                             <- clock {t0, t1}   (offset probe, every second)
 *
 * Authenticated as replication links are (the same challenge-response on
 * the shared token, signed as a 'peer' link: see replication.ts).
 *
 * `rows` gossip what each node knows of every node's version vector (the
 * matrix clock that tombstone collection needs, see stability.ts).
 *
 * Duplicates: `incarnation` names one run of a node's process, so what a
 * node reports on one link (the `vv` of its entries and heartbeats) can be
 * trusted by the feed serving it on the other link only when both name the
 * same run (a restarted peer may hold less than its old socket said).
 * `direct` lists the origins the dialler streams from their own node right
 * now, and `directRuns` names, for each, the run of that node's process it
 * streams from: the pusher skips forwarding an origin's entries only while
 * it serves that same run itself (see peer-feed.ts). `peersHold` is the
 * most of the dialler's own writes that any other peer of the pusher
 * reported holding: a dialler restarted from an older copy of its data dir
 * takes no writes until it holds that many (it would reuse their counters);
 * heartbeats say it again, so a dialler waiting for writes that only a peer
 * since forgotten held takes writes again without a restart.
 * All are optional: a node that sends none gets every entry, as before.
 *
 * `frames` in an ack counts the entries frames holding entries that the
 * dialler has applied (durably) on this connection. A pusher that hears it
 * keeps at most peerFramesInFlight such frames unacknowledged and gathers
 * what commits meanwhile into the next one (see peer-feed.ts); one that
 * never hears it sends a frame a group commit, as before.
 */

const bytes = bytesSchema
const origin = z.string().min(1).max(64)
const incarnation = z.string().min(1).max(64).optional()
/** Origins the dialler pulls from their own node (at most one per peer link). */
const direct = z.array(origin).max(1024).optional()
/** Per origin of `direct`, the run of its process (its incarnation) the dialler streams from. */
const directRuns = z
  .record(origin, z.string().min(1).max(64))
  .refine((runs) => Object.keys(runs).length <= 1024, 'too many origins')
  .optional()
/** The most of the dialler's own writes another peer of the pusher reported holding. */
const peersHold = z.number().int().nonnegative().optional()
export const conflictPolicySchema = z.enum(['lww', 'vclock'])
export const peerVvSchema = z.record(origin, z.number().int().nonnegative())
const peerRowSchema = z.object({ vv: peerVvSchema, complete: z.boolean() })
export const peerRowsSchema = z.record(origin, peerRowSchema)
const conflict = conflictPolicySchema

export const peerHelloSchema = z.object({
  type: z.literal('hello'),
  nodeId: z.string().min(1).max(64),
  origin,
  /** HOST:PORT the dialler serves clients on. */
  addr: z.string().max(300),
  conflict,
  vv: peerVvSchema,
  /** The dialler's wall clock (ms) as it sent this. */
  time: z.number(),
  /** The newest record format the dialler reads (data-format.ts); absent: 1. */
  format: z.number().int().positive().optional(),
  nonce: nonceSchema,
  proof: proofSchema,
  /** This run of the dialler's process (random, new at each start). */
  incarnation,
  direct,
  directRuns,
  /** The largest frame the dialler reads (see replication.ts). */
  maxFrameBytes: frameLimitSchema,
})
export type PeerHello = z.infer<typeof peerHelloSchema>

export const pullerMessageSchema = z.discriminatedUnion('type', [
  peerHelloSchema,
  z.object({
    type: z.literal('ack'),
    vv: peerVvSchema,
    digest: z.string().max(16),
    rows: peerRowsSchema,
    direct,
    directRuns,
    /** Entries frames holding entries applied on this connection (see above). */
    frames: z.number().int().nonnegative().optional(),
  }),
  z.object({ type: z.literal('clock'), t0: z.number() }),
])
export type PullerMessage = z.infer<typeof pullerMessageSchema>

const peerClock = z.object({ hlc: z.number().nonnegative(), vv: peerVvSchema })

export const pusherMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('challenge'), nonce: nonceSchema }),
  z.object({ type: z.literal('welcome'), proof: proofSchema }),
  z.object({
    type: z.literal('continue'),
    fromSeq: z.number().int().positive(),
    nodeId: z.string(),
    origin,
    vv: peerVvSchema,
    time: z.number(),
    incarnation,
    peersHold,
  }),
  z.object({
    type: z.literal('fullsync'),
    seq: z.number().int().nonnegative(),
    nodeId: z.string(),
    origin,
    /** The pusher's clock at its snapshot: what the snapshot holds. */
    clock: peerClock,
    time: z.number(),
    incarnation,
    peersHold,
  }),
  /** Records in the binary layout of storage/snapshot-chunk.ts, joined into the puller's (never replacing them). */
  z.object({ type: z.literal('snapshot'), chunk: bytes, count: z.number().int().nonnegative() }),
  z.object({ type: z.literal('snapshotEnd'), seq: z.number().int().nonnegative() }),
  z.object({ type: z.literal('refuse'), reason: z.string(), message: z.string() }),
  z.object({
    type: z.literal('entries'),
    entries: z.array(bytes),
    /** The pusher's lastSeq when it sent this. */
    head: z.number().int().nonnegative(),
    /** The pusher's version vector when it sent this, for lag. */
    vv: peerVvSchema,
  }),
  z.object({
    type: z.literal('heartbeat'),
    time: z.number(),
    vv: peerVvSchema,
    digest: z.string().max(16),
    /** Which hash the digest's terms are of (the server's DIGEST_HASH); absent: 1, SHA-256 (builds before 2026-11-30). */
    digestHash: z.number().int().positive().optional(),
    rows: peerRowsSchema,
    peersHold,
  }),
  z.object({ type: z.literal('clock'), t0: z.number(), t1: z.number() }),
])
export type PusherMessage = z.infer<typeof pusherMessageSchema>
