import { type ClusterReplyBody, type ClusterRequest, TandemError } from '@tandem/protocol'
import type { Store } from '../storage/store.js'
import type { Logger } from '../util/logger.js'
import { Cluster, type Peer } from './cluster.js'
import type { PeerTls } from './dial.js'
import { epochAt } from './history.js'
import type { Topology } from './topology.js'

/**
 * Fail-over for a group of members (`--cluster`), with leases and votes.
 *
 * Who owns what: the FailoverManager owns the member links (Cluster), this
 * node's vote record (durable, in meta), the master's lease and the
 * election timers, and writes who the master is into the node's Topology
 * (topology.ts). The node's role transitions (roles.ts) own the role and
 * replication; the manager asks them to take over, follow a master, stop
 * following, or step down.
 *
 * Messages: the master sends `heartbeat {epoch, masterId, seq}` to every
 * member each heartbeatMs; a member replies ok (and follows that master)
 * unless it knows a newer epoch, in which case the master steps down. A
 * member that has heard no heartbeat for electionTimeoutMs (plus jitter)
 * first asks `prevote`: would a majority vote for it (rules 2 and 3)? Only
 * then does it become a candidate: it votes for itself in epoch+1 and sends
 * `vote` requests; the first to get a majority begins that epoch as master.
 * The pre-vote keeps a member that alone lost the master (a flapping link)
 * from raising the epoch and so deposing a healthy master when it returns.
 *
 * Rules (each is checked in code below):
 * 1. A member votes at most once per epoch; the vote is fsynced before the
 *    reply leaves.
 * 2. It votes only for a candidate whose log (epoch of its last entry,
 *    then seq) is at least as recent as its own, so a write that a majority
 *    acknowledged is on every electable candidate.
 * 3. It votes only once it has itself heard no master for electionTimeoutMs,
 *    so a flapping link from one replica cannot depose a healthy master.
 * 4. The master takes writes only while it holds a lease: a majority
 *    answered a heartbeat sent at time T, and T + leaseMs is in the future.
 *    leaseMs < electionTimeoutMs and voters start their timers when a
 *    heartbeat *arrives* (after T), so the lease lapses before any member
 *    of that majority can vote for another master (rule 3): at most one
 *    node accepts writes at any time.
 * 5. A master that hears of a newer epoch stops taking writes at once
 *    (FENCED) and follows the new master; entries it has that the new
 *    history lacks are rolled back into a rollback file on resync.
 * 6. A member stops following (and so acknowledging entries of) its master
 *    before it grants a vote, and judges the candidate's log against its
 *    log as it stands then. Otherwise an entry of the old master that
 *    arrives after the vote would be acknowledged (making a w='majority'
 *    write look safe) although the candidate it voted for lacks it.
 *
 * Time comes from `now()` (monotonic ms), injectable for tests; `tick()` is
 * driven by an interval and does all time-based work.
 */

interface FailoverOptions {
  auto: boolean
  witness: boolean
  heartbeatMs: number
  electionTimeoutMs: number
  leaseMs: number
}

export interface FailoverHost {
  readonly store: Store
  readonly logger: Logger
  readonly nodeId: string
  readonly address: string
  /** Where Redis-protocol clients reach this node, or null (told to the other members in hello). */
  readonly respAddress: string | null
  readonly authToken?: string
  readonly tls?: PeerTls
  /** The master (written here), this node's upstream and the members (read here). */
  readonly topology: Topology
  readonly roles: RoleTransitions
}

/** The node's role transitions this manager drives (roles.ts). */
interface RoleTransitions {
  readonly role: string
  /** Begins `epoch` as master (the node stops following); `why` is kept in the history. Clients are told. */
  takeOver(epoch: number, why: 'election' | 'promote'): Promise<void>
  /** Replicates from `route`. */
  follow(route: string): Promise<void>
  /** Stops taking writes at once: a newer epoch exists. */
  stepDown(epoch: number): void
  /** Stops following the current upstream; resolves once what was received is applied. */
  stopFollowing(): Promise<void>
  /** The route this node currently replicates from, if any. */
  following(): string | null
}

interface Vote {
  epoch: number
  for: string
}

interface FailoverStatus {
  auto: boolean
  members: {
    nodeId: string | null
    route: string
    /** Where Redis-protocol clients reach it (from its hello), if it serves that protocol. */
    respAddr: string | null
    witness: boolean
    connected: boolean
    lastReplyMsAgo: number | null
  }[]
  lease: { held: boolean; remainingMs: number }
  master: { nodeId: string | null; addr: string | null; lastHeardMsAgo: number | null }
  knownEpoch: number
  vote: Vote | null
  elections: { started: number; won: number; preVotesLost: number }
  votesGranted: number
  handingOver: boolean
}

export class FailoverManager {
  readonly cluster: Cluster
  private vote: Vote = { epoch: 0, for: '' }
  private knownEpoch = 0
  private leaseUntil = 0
  private lastMasterContact: number
  private electionDue: number
  private electing = false
  /** The epoch this node won and is taking over (until it is master), else 0. */
  private takingOver = 0
  private handoverUntil = 0
  private heartbeatDue = 0
  private timer: NodeJS.Timeout | null = null
  readonly stats = { electionsStarted: 0, electionsWon: 0, preVotesLost: 0, votesGranted: 0 }

  constructor(
    private readonly host: FailoverHost,
    readonly options: FailoverOptions,
    /** Monotonic ms: the server clock's now() (see util/clock.ts); a test drives it by hand. */
    private readonly now: () => number,
  ) {
    this.cluster = new Cluster(
      host.topology.members,
      {
        nodeId: host.nodeId,
        address: host.address,
        authToken: host.authToken,
        tls: host.tls,
        logger: host.logger,
        epoch: () => this.knownEpoch,
        onRequest: (r) => this.onRequest(r),
      },
      now,
    )
    this.lastMasterContact = now()
    this.electionDue = now() + this.randomTimeout()
  }

  async start(): Promise<void> {
    this.vote = (await this.host.store.getMeta<Vote>('vote')) ?? { epoch: 0, for: '' }
    this.knownEpoch = Math.max(this.vote.epoch, this.host.store.epoch)
    this.cluster.start()
    this.timer = setInterval(() => void this.tick(), Math.min(50, this.options.heartbeatMs))
  }

  close(): void {
    if (this.timer) clearInterval(this.timer)
    this.cluster.close()
  }

  private randomTimeout(): number {
    return this.options.electionTimeoutMs * (1 + Math.random() * 0.4)
  }

  // ---- writes gate ---------------------------------------------------------

  /** Throws unless this master may take a write now (rule 4). */
  assertCanWrite(): void {
    if (this.now() < this.handoverUntil) {
      throw new TandemError('NOMASTER', 'this master is handing over to a new master; retry shortly')
    }
    if (this.options.auto && this.now() >= this.leaseUntil) {
      throw new TandemError(
        'NOMASTER',
        'this master has not heard from a majority of its group recently (lease lapsed); it takes no writes',
      )
    }
  }

  /**
   * Throws unless this master may answer a `lease` or `linearizable` read
   * now: it holds its lease and is not handing over. No other node can
   * have taken a write meanwhile (rule 4), so its data is the newest there is.
   */
  assertCanRead(): void {
    if (this.now() < this.handoverUntil) {
      throw new TandemError('NOMASTER', 'this master is handing over to a new master; retry shortly')
    }
    if (this.options.auto && this.now() >= this.leaseUntil) {
      throw new TandemError(
        'NOMASTER',
        'this master has not heard from a majority of its group recently (lease lapsed); it serves no lease or linearizable reads',
      )
    }
  }

  /** Whether a replica still hears a live master (else writes get NOMASTER). */
  hearsMaster(): boolean {
    return this.now() - this.lastMasterContact < this.options.electionTimeoutMs
  }

  /** The master's client address while this node hears it, else null. */
  knownMaster(): string | null {
    return this.hearsMaster() ? this.host.topology.master : null
  }

  private isMaster(): boolean {
    return this.host.roles.role === 'master'
  }

  /** Replica acks a w='majority' write needs: a majority of the group, the master being one. */
  majorityAcks(): number {
    return this.cluster.majority - 1
  }

  /**
   * Whose acks count towards a w='majority' write: members of the group
   * only. A replica outside it (a read replica) is never asked for a vote,
   * so a write only it holds could be missing from every electable member.
   */
  isMember(nodeId: string): boolean {
    return this.cluster.byNodeId(nodeId) !== undefined
  }

  /** Changes whenever majorityAcks() or isMember() may answer differently. */
  membershipVersion(): number {
    return this.cluster.membershipVersion
  }

  // ---- timers --------------------------------------------------------------

  private async tick(): Promise<void> {
    const now = this.now()
    if (this.isMaster()) {
      if (now >= this.heartbeatDue) {
        this.heartbeatDue = now + this.options.heartbeatMs
        void this.sendHeartbeats()
      }
      return
    }
    if (this.options.auto && !this.options.witness && !this.electing && now >= this.electionDue) {
      if (this.hearsMaster()) {
        this.electionDue = this.lastMasterContact + this.randomTimeout()
        return
      }
      await this.runElection(false, 'election')
    }
  }

  private async sendHeartbeats(): Promise<void> {
    const sentAt = this.now()
    const epoch = this.host.store.epoch
    const body = {
      type: 'heartbeat' as const,
      epoch,
      masterId: this.host.nodeId,
      masterAddr: this.host.address,
      seq: this.host.store.lastSeq,
    }
    const acks = new Set([this.host.nodeId])
    const needed = this.cluster.majority
    if (acks.size >= needed) this.leaseUntil = sentAt + this.options.leaseMs
    await Promise.all(
      this.cluster.others().map(async (peer) => {
        const reply = await peer.request(body, this.options.heartbeatMs * 2)
        if (!reply || !this.isMaster()) return
        if (reply.epoch > epoch)
          return this.onNewerEpoch(reply.epoch, `member ${reply.nodeId} is at epoch ${reply.epoch}`)
        if (reply.ok && acks.add(reply.nodeId).size >= needed && this.host.store.epoch === epoch) {
          this.leaseUntil = Math.max(this.leaseUntil, sentAt + this.options.leaseMs)
        }
      }),
    )
  }

  /** A newer epoch was heard of outside the group's messages (a replica's hello, a client): rule 5. */
  noteEpoch(epoch: number, why: string): void {
    if (epoch > this.knownEpoch || epoch > this.host.store.epoch) this.onNewerEpoch(epoch, why)
  }

  private onNewerEpoch(epoch: number, why: string): void {
    if (epoch > this.knownEpoch) this.knownEpoch = epoch
    if (this.isMaster() && epoch > this.host.store.epoch) {
      this.host.logger.warn('stepping down: a newer epoch exists', { epoch, why })
      this.leaseUntil = 0
      this.host.roles.stepDown(epoch)
      this.lastMasterContact = this.now() - this.options.electionTimeoutMs
      this.electionDue = this.now() + this.randomTimeout()
    }
  }

  // ---- elections -----------------------------------------------------------

  private myLog(): { lastEpoch: number; lastSeq: number } {
    const store = this.host.store
    return { lastEpoch: epochAt(store.history, store.lastSeq), lastSeq: store.lastSeq }
  }

  /**
   * Asks the others whether they would vote for this node now (rules 2 and
   * 3), without anyone recording anything. Resolves with the highest epoch
   * the group knows of when a majority would, else null.
   */
  private async preVote(): Promise<number | null> {
    const log = this.myLog()
    let highest = Math.max(this.knownEpoch, this.host.store.epoch, this.vote.epoch)
    const granted = new Set([this.host.nodeId])
    const needed = this.cluster.majority
    const others = this.cluster.others()
    const won = await new Promise<boolean>((resolve) => {
      if (granted.size >= needed) return resolve(true)
      let waiting = others.length
      if (waiting === 0) return resolve(false)
      for (const peer of others) {
        peer
          .request(
            { type: 'prevote', epoch: highest + 1, candidateId: this.host.nodeId, ...log },
            this.options.electionTimeoutMs / 2,
          )
          .then((reply) => {
            if (reply?.ok) {
              granted.add(reply.nodeId)
              highest = Math.max(highest, reply.epoch)
            }
            if (granted.size >= needed) resolve(true)
            else if (--waiting === 0) resolve(false)
          })
      }
    })
    if (won) return highest
    this.stats.preVotesLost++
    this.host.logger.debug('pre-vote lost', { granted: granted.size, needed, ...log })
    return null
  }

  /** Stands for a new epoch. Resolves true when this node won and is master. */
  private async runElection(force: boolean, why: 'election' | 'promote'): Promise<boolean> {
    this.electing = true
    try {
      // A hand-over (force) needs no pre-vote: the master itself agreed.
      const known = force ? Math.max(this.knownEpoch, this.host.store.epoch) : await this.preVote()
      if (known === null || (!force && this.hearsMaster())) {
        this.electionDue = this.now() + this.randomTimeout()
        return false
      }
      const epoch = Math.max(known, this.knownEpoch, this.host.store.epoch, this.vote.epoch) + 1
      this.vote = { epoch, for: this.host.nodeId }
      await this.host.store.setMeta('vote', this.vote) // rule 1: durable before anyone hears of it
      this.knownEpoch = epoch
      this.stats.electionsStarted++
      const sentAt = this.now()
      const log = this.myLog()
      this.host.logger.info('election started', { epoch, ...log, force })
      // Counted by the node id that answers, so that no member's vote counts twice.
      const granted = new Set([this.host.nodeId])
      const needed = this.cluster.majority
      const won = await new Promise<boolean>((resolve) => {
        if (granted.size >= needed) return resolve(true)
        let waiting = this.cluster.others().length
        if (waiting === 0) return resolve(false)
        for (const peer of this.cluster.others()) {
          peer
            .request(
              { type: 'vote', epoch, candidateId: this.host.nodeId, ...log, force },
              this.options.electionTimeoutMs / 2,
            )
            .then((reply) => {
              if (reply?.epoch !== undefined && reply.epoch > epoch)
                this.knownEpoch = Math.max(this.knownEpoch, reply.epoch)
              if (reply?.ok) granted.add(reply.nodeId)
              if (granted.size >= needed) resolve(true)
              else if (--waiting === 0) resolve(false)
            })
        }
      })
      // Someone else may have become master meanwhile (we heard its heartbeat).
      if (
        !won ||
        this.knownEpoch !== epoch ||
        (this.lastMasterContact > sentAt && this.host.topology.masterId !== this.host.nodeId)
      ) {
        this.host.logger.info('election lost', { epoch, granted: granted.size, needed })
        this.electionDue = this.now() + this.randomTimeout()
        return false
      }
      // The voters' promises (rule 3) stand in for a first heartbeat round.
      this.leaseUntil = sentAt + this.options.leaseMs
      this.masterIs(this.host.nodeId, this.host.address, epoch)
      this.stats.electionsWon++
      this.host.logger.info('election won', { epoch, granted: granted.size, needed })
      // Until the role has changed this node is neither a replica nor the
      // master: it must not vote meanwhile, or it could hold a lease in
      // `epoch` while the candidate it voted for begins a newer one.
      this.takingOver = epoch
      try {
        await this.host.roles.takeOver(epoch, why)
      } finally {
        this.takingOver = 0
      }
      if (this.knownEpoch > epoch) this.onNewerEpoch(this.knownEpoch, 'a newer epoch began while taking over')
      this.heartbeatDue = 0
      void this.sendHeartbeats()
      return true
    } finally {
      this.electing = false
    }
  }

  /**
   * `tandem promote` on a member. When the master is reachable it is asked to
   * hand over: it stops taking writes and says where its log ends; this node
   * waits until it holds all of it, then stands with `force` (voters need
   * not have lost the master, which has already stopped). Otherwise this is
   * an ordinary election, won only if a majority has lost the master too.
   */
  async promote(): Promise<void> {
    if (this.isMaster()) return
    if (this.options.witness) throw new TandemError('INVALID', 'a witness stores no data and cannot become master')
    const masterId = this.host.topology.masterId
    const master = masterId ? this.cluster.byNodeId(masterId) : undefined
    let force = false
    if (master && this.hearsMaster()) {
      const reply = await master.request(
        { type: 'handover', epoch: this.knownEpoch, candidateId: this.host.nodeId },
        this.options.electionTimeoutMs,
      )
      if (reply?.ok && reply.seq !== undefined) {
        // The master refuses writes for 3 timeouts; catch up and win well
        // inside that window, or give up (it then takes writes again).
        const deadline = this.now() + this.options.electionTimeoutMs * 2
        while (this.host.store.lastSeq < reply.seq) {
          if (this.now() > deadline) {
            throw new TandemError('TIMEOUT', `could not catch up to the master's seq ${reply.seq} to take over`)
          }
          await new Promise((r) => setTimeout(r, 10))
        }
        force = true
      }
    }
    if (!(await this.runElection(force, 'promote'))) {
      throw new TandemError('NOMASTER', 'promotion failed: a majority of the group did not vote for this node')
    }
  }

  // ---- requests from other members ---------------------------------------------

  /** Answers a request from another member (public for the rule tests). */
  async onRequest(request: ClusterRequest): Promise<ClusterReplyBody> {
    switch (request.type) {
      case 'hello':
        if (request.epoch > this.knownEpoch) this.onNewerEpoch(request.epoch, 'hello from a member')
        return {
          epoch: this.knownEpoch,
          ok: true,
          clientAddr: this.host.address,
          respAddr: this.host.respAddress,
          witness: this.options.witness,
        }
      case 'heartbeat':
        return this.onHeartbeat(request)
      case 'prevote':
        return this.onPreVoteRequest(request)
      case 'vote':
        return this.onVoteRequest(request)
      case 'handover':
        return this.onHandover()
    }
  }

  private async onHeartbeat(hb: Extract<ClusterRequest, { type: 'heartbeat' }>): Promise<ClusterReplyBody> {
    const known = Math.max(this.knownEpoch, this.host.store.epoch)
    if (hb.epoch < known) return { epoch: known, ok: false, reason: `stale epoch ${hb.epoch} < ${known}` }
    if (hb.masterId === this.host.nodeId) return { epoch: known, ok: false, reason: 'heartbeat from myself' }
    this.knownEpoch = hb.epoch
    if (this.isMaster()) {
      if (hb.epoch > this.host.store.epoch) this.onNewerEpoch(hb.epoch, `heartbeat from ${hb.masterId}`)
      else return { epoch: known, ok: false, reason: 'two masters in one epoch' }
    }
    this.lastMasterContact = this.now()
    this.electionDue = this.lastMasterContact + this.randomTimeout()
    this.masterIs(hb.masterId, hb.masterAddr, hb.epoch)
    if (!this.options.witness) {
      const route = this.cluster.byNodeId(hb.masterId)?.route ?? hb.masterAddr
      // Not awaited: the reply must not wait for a replication link to restart.
      if (this.host.roles.following() !== route) {
        this.host.roles
          .follow(route)
          // The master's epoch, from its heartbeat: this node's log may not
          // hold an entry of that epoch yet, and clients order masters by it.
          .then(() => this.host.topology.announce(hb.masterAddr, hb.epoch))
          .catch((err) => this.host.logger.warn('could not follow the master', { err }))
      }
    }
    return { epoch: hb.epoch, ok: true, seq: this.host.store.lastSeq }
  }

  /** Records who the master of `epoch` is (topology.ts: only this manager writes it in a group). */
  private masterIs(nodeId: string, addr: string, epoch: number): void {
    const topology = this.host.topology
    topology.masterId = nodeId
    topology.master = addr
    topology.epoch = epoch
  }

  /** Would this node vote for the candidate now? Records nothing. */
  private onPreVoteRequest(req: Extract<ClusterRequest, { type: 'prevote' }>): ClusterReplyBody {
    const epoch = Math.max(this.knownEpoch, this.host.store.epoch, this.vote.epoch)
    const deny = (reason: string): ClusterReplyBody => ({ epoch, ok: false, reason })
    if (this.takingOver) return deny(`this node is taking over as master of epoch ${this.takingOver}`)
    if (this.isMaster() && this.now() < this.leaseUntil) return deny('this node is the master and holds a lease')
    if (!this.isMaster() && this.hearsMaster()) return deny('this node still hears the master') // rule 3
    const behind = this.candidateBehind(req)
    if (behind) return deny(behind) // rule 2
    return { epoch, ok: true }
  }

  /** Rule 2: why the candidate's log is less recent than this node's, or null. */
  private candidateBehind(req: { lastEpoch: number; lastSeq: number }): string | null {
    if (this.options.witness) return null
    const mine = this.myLog()
    if (req.lastEpoch < mine.lastEpoch || (req.lastEpoch === mine.lastEpoch && req.lastSeq < mine.lastSeq)) {
      return `candidate log (${req.lastEpoch}, ${req.lastSeq}) is behind this node's (${mine.lastEpoch}, ${mine.lastSeq})`
    }
    return null
  }

  private async onVoteRequest(req: Extract<ClusterRequest, { type: 'vote' }>): Promise<ClusterReplyBody> {
    const deny = (reason: string): ClusterReplyBody => {
      this.host.logger.info('vote denied', { epoch: req.epoch, candidate: req.candidateId, reason })
      return { epoch: Math.max(this.knownEpoch, this.host.store.epoch), ok: false, reason }
    }
    if (req.epoch <= this.vote.epoch) return deny(`already voted in epoch ${this.vote.epoch}`) // rule 1
    if (req.epoch <= this.host.store.epoch) return deny(`epoch ${req.epoch} is not newer than ${this.host.store.epoch}`)
    if (this.takingOver) return deny(`this node is taking over as master of epoch ${this.takingOver}`)
    if (!req.force) {
      if (this.isMaster() && this.now() < this.leaseUntil) return deny('this node is the master and holds a lease')
      if (!this.isMaster() && this.hearsMaster()) return deny('this node still hears the master') // rule 3
    }
    if (!this.options.witness && !this.isMaster() && this.host.roles.following() !== null) {
      // Rule 6: acknowledge nothing more from the old master, and judge the
      // candidate against the log as it stands once the stream has stopped.
      const heardAt = this.lastMasterContact
      await this.host.roles.stopFollowing()
      if (!req.force && this.lastMasterContact !== heardAt) return deny('heard the master again')
      if (req.epoch <= this.vote.epoch) return deny(`already voted in epoch ${this.vote.epoch}`) // rule 1
    }
    const behind = this.candidateBehind(req)
    if (behind) return deny(behind) // rule 2
    this.vote = { epoch: req.epoch, for: req.candidateId }
    this.onNewerEpoch(req.epoch, `voted for ${req.candidateId}`)
    await this.host.store.setMeta('vote', this.vote)
    this.stats.votesGranted++
    // A granted vote counts as contact with a master: this node will not vote
    // again for electionTimeoutMs (rule 3), which is what makes the lease
    // the candidate takes from its votes safe; nor will it stand against it.
    this.lastMasterContact = this.now()
    this.electionDue = this.now() + this.randomTimeout()
    this.host.logger.info('vote granted', { epoch: req.epoch, candidate: req.candidateId })
    return { epoch: req.epoch, ok: true }
  }

  private async onHandover(): Promise<ClusterReplyBody> {
    if (!this.isMaster()) return { epoch: this.knownEpoch, ok: false, reason: 'not the master' }
    this.handoverUntil = this.now() + this.options.electionTimeoutMs * 3
    await this.host.store.idle()
    return { epoch: this.host.store.epoch, ok: true, seq: this.host.store.lastSeq }
  }

  // ---- status ----------------------------------------------------------------

  status(): FailoverStatus {
    const now = this.now()
    const ago = (t: number) => (t === 0 ? null : Math.round(now - t))
    return {
      auto: this.options.auto,
      members: this.cluster.others().map((p: Peer) => ({
        nodeId: p.nodeId,
        route: p.route,
        respAddr: p.respAddr,
        witness: p.witness,
        connected: p.connected,
        lastReplyMsAgo: ago(p.lastReplyAt),
      })),
      lease: {
        held: this.isMaster() && now < this.leaseUntil,
        remainingMs: this.isMaster() ? Math.max(0, Math.round(this.leaseUntil - now)) : 0,
      },
      master: {
        nodeId: this.isMaster() ? this.host.nodeId : this.host.topology.masterId,
        addr: this.isMaster() ? this.host.address : this.host.topology.master,
        lastHeardMsAgo: this.isMaster() ? 0 : ago(this.lastMasterContact),
      },
      knownEpoch: this.knownEpoch,
      vote: this.vote.epoch === 0 ? null : this.vote,
      elections: {
        started: this.stats.electionsStarted,
        won: this.stats.electionsWon,
        preVotesLost: this.stats.preVotesLost,
      },
      votesGranted: this.stats.votesGranted,
      handingOver: now < this.handoverUntil,
    }
  }
}
