import type { VersionVectorObject } from '../storage/version-vector.js'

/**
 * Causal stability: when may a tombstone go without a write it lost to
 * coming back? Only once every node holds it, and this node holds every
 * write that could still lose to it. Tandem keeps a matrix clock: for every
 * member (every origin it has heard of), a row, that member's version
 * vector as it last reported it, directly or relayed by others (`rows` in
 * heartbeats and acks).
 *
 * A row R of member P is confirmed here once this node holds all of P's own
 * writes up to R[P]: P wrote everything after that after holding what R
 * says, and P's hybrid clock had then seen every timestamp in it, so P's
 * later writes order after any of them. With a confirmed row C_P for every
 * member, the stable vector is
 *
 *   stable[o] = min over members P of C_P[o]
 *
 * and a tombstone whose requirement (its dot under lww, its whole context
 * under vclock) stable covers is one every member holds, with every write
 * that could lose to it already applied here: it may go.
 *
 * Members are every origin this node has ever known of: in its version
 * vector, in any row, and the origin of every peer a link has named in its
 * handshake, whether or not that peer's row has arrived yet. A peer known
 * only by its handshake may hold writes this node has never heard of (it
 * took them while cut off, or died before sending them), so it blocks
 * collection until a row of its own is confirmed: leaving it out would let
 * a tombstone go that one of those writes is older than, and that write
 * would come back when it arrives. This node's own row lists every member
 * it knows (at 0 where it holds none of its writes), so that membership
 * travels with the rows to nodes that never reach that member themselves.
 * Members are kept in meta as they are learnt (Mesh, 'members'), so a
 * node that restarts still waits for a peer it knew only by its handshake
 * or a row (one that dialled it and is down now), rather than collecting
 * a tombstone that peer's unsent writes may be older than.
 * Members are never forgotten unless the operator says so (`forget`,
 * forgotten.ts): a forgotten origin's row is no longer awaited, nor taken.
 * Its column stays: the entries of it that live members hold still count,
 * so this node waits until it holds every write of a forgotten origin that
 * a member's row says that member holds (else such a write could arrive
 * from that member after a tombstone it is older than was collected here).
 *
 * A row also says whether its node knows the origin of every peer it is
 * configured with (`complete`): a node that has never reached one of its
 * peers cannot vouch for what that peer holds, so stability waits for it.
 * A member that never reports again (a dead peer) blocks collection: status
 * shows the tombstones pending and their age.
 */
export interface Row {
  vv: VersionVectorObject
  /** Whether the node knows the origin of every peer it is configured with. */
  complete: boolean
}

interface MemberRows {
  /** The newest row heard. */
  latest: Row
  /** The row waiting for this node to hold the member's writes up to it. */
  pending: Row | null
  /** The newest row this node holds the member's writes for. */
  confirmed: Row | null
}

const covers = (a: VersionVectorObject, b: VersionVectorObject) => {
  for (const o in b) if (b[o] > (a[o] ?? 0)) return false
  return true
}

export class StabilityTracker {
  private readonly rows = new Map<string, MemberRows>()
  /** Every origin ever known of here, this node's own aside (see members()). */
  private readonly known = new Set<string>()
  /** Origins the operator forgot: never members again. */
  private readonly forgotten = new Set<string>()

  constructor(
    private readonly self: string,
    /** This node's own version vector, as it stands. */
    private readonly own: () => VersionVectorObject,
    /** The --peers addresses whose origin this node does not know yet (none: it knows every peer's). */
    private readonly unreached: () => string[],
    /** The origins of the peers this node's links reached, as they stand. */
    private readonly peers: () => Iterable<string>,
    /** Told of every origin newly known (not those given to remember()). */
    private readonly onMember: (origin: string) => void = () => {},
  ) {}

  /** Origins known before this run (kept in meta): members again, without onMember. */
  remember(origins: Iterable<string>): void {
    for (const o of origins) if (this.couldJoin(o)) this.known.add(o)
  }

  /** A member's row, as it reported it or as another node relayed it. Rows only grow. */
  observe(origin: string, row: Row): void {
    this.know(origin)
    for (const o in row.vv) this.know(o)
    if (origin === this.self || this.forgotten.has(origin)) return
    const known = this.rows.get(origin)
    if (known) {
      const newer = !covers(known.latest.vv, row.vv) || (row.complete && !known.latest.complete)
      if (!newer) return
      known.latest = row
      known.pending ??= row
    } else {
      this.rows.set(origin, { latest: row, pending: row, confirmed: null })
    }
    this.confirm(origin)
  }

  /** This node applied more: rows waiting for it may now be confirmed. */
  advance(): void {
    for (const origin of this.rows.keys()) this.confirm(origin)
  }

  private confirm(origin: string): void {
    const member = this.rows.get(origin)
    if (!member) return
    const held = this.own()[origin] ?? 0
    while (member.pending && held >= (member.pending.vv[origin] ?? 0)) {
      member.confirmed = member.pending
      member.pending = member.latest === member.pending ? null : member.latest
    }
  }

  private know(origin: string): void {
    if (!this.couldJoin(origin) || this.known.has(origin)) return
    this.known.add(origin)
    this.onMember(origin)
  }

  /** Whether `origin` may be a member: a peer's origin, never this node's own nor a forgotten one. */
  private couldJoin(origin: string): boolean {
    return origin !== '' && origin !== this.self && !this.forgotten.has(origin)
  }

  /** Stops waiting for `origin`'s row (see forgotten.ts); never undone. */
  forget(origin: string): void {
    if (origin === this.self) return
    this.forgotten.add(origin)
    this.known.delete(origin)
    this.rows.delete(origin)
  }

  /** Every origin this node knows of, itself included. */
  members(): Set<string> {
    this.learn()
    return new Set<string>([this.self, ...this.known])
  }

  /** What members() reads: the origins of this node's own vector and of its links' peers. */
  private learn(): void {
    for (const o in this.own()) this.know(o)
    for (const o of this.peers()) this.know(o)
  }

  /**
   * The stable vector, or why there is none: a member with no confirmed
   * row, or one that does not know all its peers.
   */
  stable(): { vv: VersionVectorObject } | { blockedBy: string } {
    const unreached = this.unreached()
    if (unreached.length > 0) {
      // Named by address: an origin this node never learned is one it cannot name.
      return {
        blockedBy: `${unreached.join(', ')} (in --peers, never reached since this node started, so it cannot name what it holds; it waits until it answers, or until the address is dropped from --peers)`,
      }
    }
    const own = this.own()
    const members = this.members()
    const columns = [...members, ...this.forgotten]
    const stable: VersionVectorObject = {}
    for (const o of columns) stable[o] = own[o] ?? 0
    for (const p of members) {
      if (p === this.self) continue
      const member = this.rows.get(p)
      const confirmed = member?.confirmed
      if (!member || !confirmed) return { blockedBy: p }
      if (!confirmed.complete) return { blockedBy: `${p} (it has not reached all its peers)` }
      for (const f of this.forgotten) {
        if ((member.latest.vv[f] ?? 0) > (own[f] ?? 0)) {
          return { blockedBy: `${p} (it holds writes of forgotten ${f} that this node lacks)` }
        }
      }
      for (const o of columns) stable[o] = Math.min(stable[o], confirmed.vv[o] ?? 0)
    }
    return { vv: stable }
  }

  /**
   * A member whose confirmed row does not cover `req` (a tombstone's
   * requirement), for status: who a pending tombstone waits for.
   */
  waitingFor(req: VersionVectorObject): string | null {
    if (!covers(this.own(), req)) return this.self
    for (const p of this.members()) {
      if (p === this.self) continue
      const confirmed = this.rows.get(p)?.confirmed
      if (!confirmed || !covers(confirmed.vv, req)) return p
    }
    return null
  }

  /** Rows to gossip: this node's own and the newest heard of every other member. */
  gossip(): Record<string, Row> {
    // members(), without a Set made for it: every ack and heartbeat of every link gossips.
    this.learn()
    const vv: VersionVectorObject = { [this.self]: 0 }
    for (const o of this.known) vv[o] = 0
    Object.assign(vv, this.own())
    const out: Record<string, Row> = { [this.self]: { vv, complete: this.unreached().length === 0 } }
    for (const [origin, member] of this.rows) out[origin] = member.latest
    return out
  }
}
