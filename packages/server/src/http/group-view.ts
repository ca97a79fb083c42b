/**
 * The picture of a group that the console draws, as the watcher pushes it
 * (one JSON object per event on /ui/api/events). Nodes are keyed by node
 * id, or by `@HOST:PORT` until the node has answered once.
 */

export interface GroupView {
  /** Counts the watcher's ticks since it started. */
  tick: number
  /** Wall time of the view on the node that serves the console (ms since 1970). */
  at: number
  /** Key of the node that serves the console. */
  self: string
  /** Key of the master: the reachable master of the highest epoch; null when none. */
  master: string | null
  /** True when more nodes were referenced than the console follows (consoleMaxNodes). */
  truncated: boolean
  nodes: NodeView[]
  edges: EdgeView[]
  /** Epochs of the newest history any reachable node holds, oldest first (at most MAX_EPOCHS). */
  history: EpochView[]
  /** A multi-master mesh's convergence; null when no node of the view is multi-master. */
  mesh: MeshView | null
  /** This tick's lag sample of each replication link, by the key of its downstream: [at, entries, ms]. */
  samples: Record<string, LagSample>
}

export type LagSample = [at: number, lagEntries: number, lagMs: number]

export interface NodeView {
  key: string
  nodeId: string | null
  /** Where the console reaches it (its advertised address once known). */
  address: string
  reachable: boolean
  /** Wall time of its last answer; null if it never answered. */
  lastSeenAt: number | null
  /** Why the last poll failed (when unreachable). */
  error: string | null
  /** As of its last answer; null if it never answered. */
  role: string | null
  epoch: number | null
  seq: number | null
  readOnly: boolean | null
  /** Key of the node it streams from, when known. */
  upstream: string | null
  /** In a fail-over group (--cluster or --witness). */
  member: boolean
  lease: { held: boolean; remainingMs: number } | null
  elections: { started: number; won: number } | null
  /** Its own link to its upstream, as it reports it. */
  link: { state: string; lagEntries: number; lagMs: number } | null
  sync: { fullSyncs: number; partialSyncs: number; servedFull: number; servedPartial: number } | null
  rollbacks: { count: number; entries: number; lastFile: string | null; files: string[] } | null
  /** Log entries committed per second (written on a master, applied on a replica). */
  writesPerSec: number | null
  /** get, mget and scan requests per second. */
  readsPerSec: number | null
  /** Writes per group commit over the last interval (the node's lifetime average until two samples). */
  avgGroup: number | null
  /** Only when the node's status carries a key count. */
  keys: number | null
  diskBytes: number | null
  uptimeMs: number | null
  version: string | null
  mode: string | null
  /** Multi-master only: its cursors (highest counter held per origin) and convergence digest. */
  multi: {
    conflict: string | null
    vv: Record<string, number>
    digest: string | null
    digestAlarm: string | null
  } | null
}

/**
 * Whether the multi-master peers hold the same data, judged as
 * `tandem converged` does: every peer answers, with equal cursors (zeros
 * left out) and equal digests. A peer that does not answer means not
 * converged.
 */
export interface MeshView {
  converged: boolean
  /** The digest they share when converged, else null. */
  digest: string | null
  /** Keys of the multi-master nodes, in view order. */
  peers: string[]
  /** Why not converged (which node differs or does not answer); null when converged. */
  reason: string | null
}

export interface EdgeView {
  /** Key of the upstream (for a peer link: the peer pulled from). */
  from: string
  /** Key of the downstream (for a peer link: the node that pulls, and reports the link). */
  to: string
  kind: 'stream' | 'peer'
  /** Link state (handshake, fullsync, streaming, ...), or 'unknown'. */
  state: string
  lagEntries: number | null
  lagMs: number | null
  /** Drawn from a node that no longer answers: how things were when it was last seen. */
  stale: boolean
}

export interface EpochView {
  epoch: number
  startSeq: number
  /** Node id that began it, and its key in this view when known. */
  by: string
  byKey: string | null
  /** Wall time it began (epochs begun before times were recorded have none). */
  at: number | null
  why: string | null
}

/** The first event on a new stream: the current view and the lag series so far. */
export interface GroupSnapshot {
  view: GroupView
  /** Per downstream key, the last LAG_SAMPLES samples, oldest first. */
  series: Record<string, LagSample[]>
}
