import { z } from 'zod'
import { keySchema } from './messages.js'

/**
 * A watch: a change feed served from a node's log, on a WebSocket of its
 * own at /watch (so that a slow watcher's backpressure holds back its feed
 * alone, never a connection's replies). One msgpack map per frame.
 *
 *   client                                         node
 *   watch {key?, prefix?, fromSeq?, after?, master?} ->
 *                                               <- progress {to, epoch, head}    (first: where the watch starts)
 *                                               <- events {events, to, epoch}    (repeated, in log order)
 *                                               <- progress {to, epoch, head}    (every 500 ms, and on catching up)
 *                                               <- error {error}                 (then the node closes the socket)
 *
 * Positions: `to` is the last seq the node has scanned for this watch (every
 * event up to it was sent), `epoch` the epoch that seq belongs to. A client
 * resumes with `fromSeq: to + 1, after: {seq: to, epoch}`: the node checks
 * that its log holds the same entry at `to` (same seq, same epoch means the
 * same entry: an epoch has one master), and answers ROLLEDBACK when it does
 * not (a fail-over dropped entries the watcher was shown), TRIMMED when its
 * log no longer reaches back to `fromSeq`.
 *
 * The events of one entry (a batch) share its seq. A frame may end inside
 * an entry; its `to` then stays at the entry before, and a client that
 * resumes skips the events of that seq it already has.
 */

export const watchRequestSchema = z
  .object({
    type: z.literal('watch'),
    /** Only this key. */
    key: keySchema.optional(),
    /** Only keys starting with this. */
    prefix: keySchema.optional(),
    /** First seq to deliver; default: after what the node holds now. */
    fromSeq: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
    /** The last position the client was told (resuming): must be an entry of this node's log too. */
    after: z
      .object({
        seq: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
        epoch: z.number().int().nonnegative(),
      })
      .strict()
      .optional(),
    /** Serve only while this node is the master (READONLY otherwise, and when it stops being it). */
    master: z.boolean().optional(),
  })
  .strict()
export type WatchRequest = z.infer<typeof watchRequestSchema>

/** Event kinds on the wire. */
export const WATCH_PUT = 0
export const WATCH_DEL = 1

/** [seq, WATCH_PUT, key, value] | [seq, WATCH_DEL, key] */
export type WireWatchEvent =
  | [number, typeof WATCH_PUT, string, string | Uint8Array]
  | [number, typeof WATCH_DEL, string]

export type WatchMessage =
  | { type: 'progress'; to: number; epoch: number; head: number }
  | { type: 'events'; events: WireWatchEvent[]; to: number; epoch: number }
  | { type: 'error'; error: { code: string; message: string; [detail: string]: unknown } }
