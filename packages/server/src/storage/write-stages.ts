/**
 * Where a write's time goes between its arrival and its durability, for
 * /metrics (tandem_write_stage_seconds): the store and the peer links
 * observe into one sink, a histogram by stage. What each stage is:
 *
 * - `queue`: the oldest write of a group, from its submit to the group's
 *   start (it waited for the group before it);
 * - `read`, `build`, `write`: one group's read of the records it resolves
 *   against, the building of its batch, LevelDB's write (and fsync);
 * - `remote_queue`: a frame of a peer's or upstream's entries, from its
 *   submit to the start of the group that takes it (0 when it joined a
 *   group already started: one built while the group before it is written);
 * - `remote_commit`: the same frame, from that start (or its submit, when
 *   it joined) to durable;
 * - `remote_wait`: the same frame, from its submit to its group's hand-off
 *   to LevelDB: the group being written when it came (a node taking client
 *   writes is nearly always writing one) and its own group's build. What
 *   is left of `remote_commit` is its group's write and fsync;
 * - `peer_arrive`: a peer's frame, from the HLC wall time of its first
 *   entry (stamped when its origin built the group) to its read off this
 *   node's socket: the origin's commit, its feed, the network. Measured
 *   across two clocks: nodes on one machine share it; elsewhere it
 *   includes their offset;
 * - `peer_inbox`: that frame from its read off the socket to its handler;
 * - `peer_lag`: that frame's first entry, from its HLC wall time to
 *   durable here: the peer lag a client reading this node sees;
 * - `peer_send`: on the origin, an entries frame to a peer, from the
 *   commit of its first entry to the frame's hand-off to the socket (the
 *   feed's wake-up, a hold for the frame window, a read of the log);
 * - `watch_send`: an events frame of a watch, from the commit of its first
 *   event's entry to the frame's hand-off to the socket.
 * The last two are measured on one node's wall clock, in whole ms.
 */
type WriteStage =
  | 'queue'
  | 'read'
  | 'build'
  | 'write'
  | 'remote_queue'
  | 'remote_commit'
  | 'remote_wait'
  | 'peer_arrive'
  | 'peer_inbox'
  | 'peer_lag'
  | 'peer_send'
  | 'watch_send'

export interface WriteStageSink {
  observe(stage: WriteStage, seconds: number): void
}

/** The sink of a store no one measures. */
export const NO_STAGES: WriteStageSink = { observe() {} }

/** Upper bounds of the histogram's buckets, in seconds: 0.25 ms to 4 s, doubling. */
export const WRITE_STAGE_BUCKETS: readonly number[] = Array.from({ length: 15 }, (_, i) => 0.00025 * 2 ** i)
