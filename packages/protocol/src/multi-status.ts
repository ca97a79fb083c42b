/** One peer link in a multi-master node's status. */
export interface MultiPeerStatus {
  addr: string
  nodeId: string | null
  origin: string | null
  /** The link's state (connecting, open, ...). */
  link: string
  /** Why the link is not open, or null. */
  reason: string | null
  lagEntries: number
  lagMs: number
  /** The peer's clock minus this node's as far as the last clock probe proves it (0: its round trip cannot tell them apart). */
  clockOffsetMs: number | null
  lastHeardMsAgo: number | null
  /** Which hash the peer's digest (its last heartbeat) is of; 1 for a peer that does not say. */
  digestHash: number
  vv: Record<string, number>
  digest: string
  snapshots: number
  clockPauses: number
  /** Times the link was given up because the peer sent nothing for --repl-timeout. */
  silenceTimeouts: number
  /**
   * Entries frames with no entries the peer sent (it skipped everything new
   * for this node, and says what it holds), and of those, how many arrived
   * while the one before was still queued and only replaced its vector.
   */
  vvFrames: { received: number; merged: number }
  /**
   * Entries frames with entries the peer sent that joined the one queued
   * before them (arrived together, before it was handled): one write in
   * the group committer for them all.
   */
  joinedFrames: number
  /**
   * Times the link stopped reading the peer's socket because more than the
   * tunable peerMaxQueuedApply of its frames were in this node's group
   * committer, not yet durable, and the ms it stayed stopped in all (holds
   * that ended).
   */
  applyHolds: { count: number; ms: number }
  /**
   * The feed this peer pulls from this node, or null when it pulls none;
   * `direct`: the origins the peer says it streams from their own node
   * (this node does not forward their entries to it while it serves the
   * same run of their process).
   */
  pulling: {
    state: string
    ackedVv: Record<string, number>
    direct: string[]
    /**
     * The origins of `direct` whose entries this feed skips now: the run of
     * their process the peer names pulls from this node too.
     */
    skipping: string[]
    /** Entries of this node's log the feed read and did not send (the peer holds them, or housekeeping). */
    filtered: number
    /** Entries the feed stepped over unread, the peer holding every write up to a resume point. */
    skipped: number
    /** Entries not sent because the peer streams their origin directly (see `skipping`). */
    directSkipped: number
    /** Entries frames with no entries sent for them (at most one per peerVvFrameMs). */
    vvFrames: number
    /** Entries frames with entries sent on this socket. */
    frames: number
    /** Times committed entries waited for the next frame, peerFramesInFlight frames being unacked. */
    heldBack: number
  } | null
}

/** The `multi` part of a multi-master node's status (--mode multi). */
export interface MultiStatus {
  conflict: string
  origin: string
  vv: Record<string, number>
  digest: string
  /** Which hash the digest's terms are of: digests of different hashes never compare equal (see README, Multi-master). */
  digestHash: number
  digestAlarm: string | null
  maxClockOffsetMs: number
  clockFence: string | null
  peers: MultiPeerStatus[]
  tombstones: { count: number; collected: number; passes: number; oldestAgeMs: number; blockedBy: string | null }
  siblings: { keys: number; max: number; dropped: number; trims: number }
  lwwLost: number
  /** Entries received from peers, and of those, ones this node already held (a mesh's duplicate traffic). */
  received: number
  duplicates: number
  /**
   * Peers' writes left out because their key's record here is damaged
   * (`skipped`, since start), and the keys found damaged on this node.
   */
  damaged: { skipped: number; keys: string[] }
  members: string[]
  /** Origins forgotten on this node (`tandem forget`): not awaited, their links refused. */
  forgotten: string[]
}
