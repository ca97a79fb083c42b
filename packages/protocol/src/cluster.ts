import { z } from 'zod'
import { nonceSchema, proofSchema } from './replication.js'

/**
 * Messages on a member-to-member link of a fail-over group (WebSocket at
 * /cluster). The member that dialled sends requests with an `id`; the
 * member that accepted answers each with a reply carrying the same id.
 *
 *   dialler                                   listener
 *                                          <- challenge {nonce}
 *   hello {id, nodeId, epoch, nonce, proof} ->
 *                                          <- reply {id, ok, proof, clientAddr}
 *   heartbeat | vote | prevote | handover ->
 *                                          <- reply {id, ...}
 *
 * Both ends prove they hold the shared token as on replication links
 * (replication.ts): nothing but the hello is answered before the dialler's
 * proof checks out, and the dialler uses no reply of a listener whose proof
 * does not.
 */

const id = z.number().int()

export const clusterRequestSchema = z.discriminatedUnion('type', [
  z.object({
    id,
    type: z.literal('hello'),
    nodeId: z.string(),
    epoch: z.number().int(),
    nonce: nonceSchema,
    proof: proofSchema,
  }),
  z.object({
    id,
    type: z.literal('heartbeat'),
    epoch: z.number().int(),
    masterId: z.string(),
    /** Where clients reach the master. */
    masterAddr: z.string(),
    seq: z.number().int(),
  }),
  z.object({
    id,
    type: z.literal('vote'),
    epoch: z.number().int(),
    candidateId: z.string(),
    lastEpoch: z.number().int(),
    lastSeq: z.number().int(),
    /** Set by a candidate the master handed over to: skip the "lost the master" rule. */
    force: z.boolean(),
  }),
  /** Would you vote for me in `epoch`? Answered by rules 2 and 3 alone; nothing is recorded. */
  z.object({
    id,
    type: z.literal('prevote'),
    epoch: z.number().int(),
    candidateId: z.string(),
    lastEpoch: z.number().int(),
    lastSeq: z.number().int(),
  }),
  z.object({ id, type: z.literal('handover'), epoch: z.number().int(), candidateId: z.string() }),
])
export type ClusterRequest = z.infer<typeof clusterRequestSchema>
/** A request as its sender builds it, before it is numbered. */
export type ClusterRequestBody = ClusterRequest extends infer R
  ? R extends ClusterRequest
    ? Omit<R, 'id'>
    : never
  : never

export const clusterReplySchema = z.object({
  id,
  type: z.literal('reply'),
  nodeId: z.string(),
  epoch: z.number().int(),
  ok: z.boolean(),
  seq: z.number().int().optional(),
  clientAddr: z.string().optional(),
  /** On the reply to hello: where Redis-protocol clients reach the member (its --resp-port), if anywhere. */
  respAddr: z.string().max(300).nullable().optional(),
  /** On the reply to hello: whether the member is a witness (votes, holds no data). */
  witness: z.boolean().optional(),
  reason: z.string().optional(),
  /** On the reply to hello: the listener's proof that it holds the token. */
  proof: proofSchema.optional(),
})
export type ClusterReply = z.infer<typeof clusterReplySchema>
/** A reply as the answering member builds it. */
export type ClusterReplyBody = Omit<ClusterReply, 'id' | 'type' | 'nodeId'>

/** What the listener sends: the challenge first, then replies. */
export const clusterListenerMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('challenge'), nonce: nonceSchema }),
  clusterReplySchema,
])
