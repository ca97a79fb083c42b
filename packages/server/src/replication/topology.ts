/**
 * What this node knows of its group's shape, held once: who the master is
 * (where clients reach it, its node id, its epoch), whom this node
 * replicates from, and the fail-over group's members. The node, its role
 * transitions (roles.ts) and the FailoverManager all read this one value.
 *
 * Who writes what, so that no two writers can disagree:
 * - `upstream`: the role transitions only (follow sets it; becoming master
 *   or stopping to follow clears it).
 * - `master`, `masterId`, `epoch`: in a fail-over group the FailoverManager
 *   only (a heartbeat, or its own election won); elsewhere the replication
 *   link only (the master its upstream names), cleared when this node
 *   follows another upstream or becomes master itself.
 *
 * TandemNode.masterAddress() is the one place that turns this into the
 * address clients are told (this node itself when it is the master).
 */
export class Topology {
  /** HOST:PORT clients reach the master at, as last learnt; null when unknown. */
  master: string | null = null
  /** The master's node id, when a fail-over heartbeat or election named it. */
  masterId: string | null = null
  /** The master's epoch, when a fail-over heartbeat or election named it. */
  epoch = 0
  /** HOST:PORT this node replicates from, when it is a replica. */
  upstream: string | null = null
  /** Told when this node learns of a new master, so that clients are told (set by the server). */
  onNewMaster: (master: string | null, epoch: number) => void = () => {}

  constructor(
    /** The fail-over group's members (HOST:PORT routes), this node included; empty outside a group. */
    readonly members: readonly string[],
  ) {}

  /** Tells clients that `master` is the master of `epoch`. */
  announce(master: string, epoch: number): void {
    this.onNewMaster(master, epoch)
  }
}
