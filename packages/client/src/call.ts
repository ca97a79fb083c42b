import { performance } from 'node:perf_hooks'
import { TandemError } from '@tandem/protocol'
import type { NodeConnection, PendingRequest } from './connection.js'

/**
 * Where a request goes. read: per readFrom; write: the master (writes, and
 * lease or linearizable reads); admin: the first server (the node the
 * caller named); seed: any reachable server.
 */
export type Route = 'read' | 'write' | 'admin' | 'seed'

/** What a Call needs of its client. */
export interface CallHost {
  /** A call has settled (one fewer outstanding). */
  finished(): void
  readyConnection(route: Route): NodeConnection | undefined
  connect(route: Route): Promise<NodeConnection>
  /** Whether a refusal means "not the master here": nothing was applied, so the call may go elsewhere. */
  reroutes(route: Route, err: TandemError): boolean
  noteNotMaster(address: string | undefined, err: TandemError): void
  /** The newest epoch the client has seen, and a way to tell it of one. */
  epoch(): number
  noteEpoch(epoch: unknown): void
  /** Multi-master: the greatest stamp of the client's writes (0: none), and a way to tell it of a write's result. */
  stamp(): number
  noteStamp(result: unknown): void
  /** Wake-ups of calls waiting out a backoff (a pushed master change runs them at once). */
  waiting: Set<() => void>
  /** The client's calls' deadlines. */
  deadlines: Deadlines
  /** Whether the nodes are a fail-over group (--cluster); null until a node says. */
  clusterGroup(): boolean | null
  /** The client is closed: whatever went wrong, the call fails with CLOSED. */
  closed(): boolean
  /** Whether a call that could not be sent (or lost its connection) tries again; false: it fails at once. */
  retries: boolean
}

/**
 * A host for a request to `conn` and no other node, sent once (discovery
 * asks each node itself): no re-routing, no retry, no epoch or stamp noted; the
 * call keeps its timeout and fails with CLOSED once the client is closed.
 * It counts for no drain: the calls it serves do.
 */
export function pinnedTo(host: CallHost, conn: NodeConnection): CallHost {
  return {
    finished() {},
    readyConnection: () => (conn.state === 'closed' ? undefined : conn),
    connect: () =>
      conn.state === 'closed'
        ? Promise.reject(new TandemError('UNAVAILABLE', `lost connection to ${conn.address}`))
        : Promise.resolve(conn),
    reroutes: () => false,
    noteNotMaster() {},
    epoch: () => 0,
    noteEpoch() {},
    stamp: () => 0,
    noteStamp() {},
    waiting: host.waiting,
    deadlines: host.deadlines,
    clusterGroup: () => host.clusterGroup(),
    closed: () => host.closed(),
    retries: false,
  }
}

/**
 * One request from the call to its answer: sent on a connection (the
 * connection calls resolve/reject), retried with backoff when it could not
 * be, failed with TIMEOUT at its deadline. When its connection is lost, a
 * write that was sent fails with UNCERTAIN (it may or may not have been
 * applied: sending it again could apply it twice, so the caller decides);
 * anything else is sent again. A class, not a set of closures: with
 * hundreds in flight, every object a request keeps alive is copied by each
 * young-generation collection.
 */
export class Call implements PendingRequest {
  readonly id: number
  readonly mutates: boolean
  /** put, del or batch: carries the client's epoch. */
  private readonly writes: boolean
  private done = false
  private current: NodeConnection | null = null
  /**
   * A read sent as linearizable only because the client did not know yet
   * whether the nodes are a fail-over group: once discovery says they are
   * not, it goes without, as the client's later reads do (a multi-master
   * peer refuses linearizable reads with INVALID).
   */
  defaultRead = false
  private lastError: TandemError | undefined
  private delay = MIN_BACKOFF_MS
  /** performance.now() at which the call fails with TIMEOUT. */
  readonly deadline: number

  constructor(
    private readonly host: CallHost,
    readonly message: Record<string, unknown>,
    private readonly route: Route,
    private readonly timeoutMs: number,
    private readonly settle: (result: unknown) => void,
    private readonly fail: (err: TandemError) => void,
  ) {
    this.id = message.id as number
    this.mutates = MUTATING.has(String(message.op))
    this.writes = WRITES.has(String(message.op))
    this.deadline = performance.now() + timeoutMs
    host.deadlines.add(this, timeoutMs)
  }

  resolve(result: unknown): void {
    if (this.writes) this.host.noteStamp(result)
    if (this.finish()) this.settle(result)
  }

  reject(err: TandemError): void {
    this.host.noteEpoch(err.details.epoch)
    // Refused because the node is not (or no longer) the master: nothing
    // was applied, so it is safe to find the master and send it there.
    if (this.host.reroutes(this.route, err)) {
      this.host.noteNotMaster(this.current?.address, err)
      return this.retryLater(err)
    }
    if (this.finish()) this.fail(err)
  }

  connectionLost(address: string, cause: TandemError, sent: boolean): void {
    if (this.host.closed()) return this.reject(new TandemError('CLOSED', 'client closed'))
    if (sent && this.mutates) {
      return this.reject(
        new TandemError(
          'UNCERTAIN',
          `connection to ${address} was lost after ${this.message.op} was sent (${cause.message}); it may or may not have been applied`,
        ),
      )
    }
    this.retryLater(this.lastError ?? new TandemError('UNAVAILABLE', `lost connection to ${address}`))
  }

  attempt(): void {
    if (this.done) return
    if (this.writes) {
      const epoch = this.host.epoch()
      if (epoch > 0) this.message.epoch = epoch
      const stamp = this.host.stamp()
      if (stamp > 0) this.message.after = stamp
    }
    // Fast path: the target is known and its connection open, so the
    // request joins this turn's frame with no promise hops.
    const ready = this.host.readyConnection(this.route)
    if (ready) {
      this.current = ready
      if (this.defaultRead) this.settleDefaultRead()
      try {
        ready.send(this)
        return
      } catch {
        // fall through to the full path
      }
    }
    this.host.connect(this.route).then(
      (conn) => {
        if (this.done) return
        this.current = conn
        if (this.defaultRead) this.settleDefaultRead()
        try {
          conn.send(this)
        } catch (err) {
          this.retryLater(err as TandemError)
        }
      },
      (err: TandemError) => {
        if (this.done) return
        if (this.host.closed()) {
          if (this.finish()) this.fail(new TandemError('CLOSED', 'client closed'))
          return
        }
        if (err.code === 'UNAUTHORIZED' || err.code === 'CLOSED') {
          if (this.finish()) this.fail(err)
          return
        }
        this.retryLater(err)
      },
    )
  }

  timedOut(): void {
    this.current?.forget(this.id)
    // Never sent anywhere: say why (no server, no master) rather than just "timeout".
    const err =
      this.current === null && this.lastError
        ? this.lastError
        : new TandemError(
            'TIMEOUT',
            `no reply to ${this.message.op} within ${this.timeoutMs} ms${this.mutates ? '; the write may or may not have been applied' : ''}`,
          )
    if (this.finish()) this.fail(err)
  }

  /** Whether the call has settled. */
  get settled(): boolean {
    return this.done
  }

  /** Drops the client-chosen linearizable of a read once the nodes are known not to be a fail-over group. */
  private settleDefaultRead(): void {
    if (this.host.clusterGroup() !== false) return
    delete this.message.consistency
    this.defaultRead = false
  }

  /** Marks the call settled; false when it already was. */
  private finish(): boolean {
    if (this.done) return false
    this.done = true
    this.host.finished()
    this.host.deadlines.settled(this.timeoutMs)
    return true
  }

  private retryLater(err: TandemError): void {
    this.lastError = err
    this.current = null
    if (this.done) return
    if (!this.host.retries) {
      if (this.finish()) this.fail(err)
      return
    }
    // Retried after the backoff, or at once when a server pushes a new
    // master (a fail-over ended): the backoff must not add to the outage.
    const waiting = this.host.waiting
    const wake = () => {
      clearTimeout(backoffTimer)
      waiting.delete(wake)
      this.attempt()
    }
    const backoffTimer = setTimeout(wake, this.delay)
    waiting.add(wake)
    this.delay = Math.min(MAX_BACKOFF_MS, this.delay * 2) * (0.75 + Math.random() * 0.5)
  }
}

/** A run of calls with one timeout, in the order they began (so in deadline order), from `head` on. */
interface DeadlineQueue {
  calls: (Call | undefined)[]
  head: number
  /** Calls in it not settled. */
  waiting: number
}

/** setTimeout's longest delay: a longer one fires at once. */
const MAX_TIMER_MS = 0x7fffffff

/**
 * A client's calls' timeouts, without a timer each. Calls with the same
 * timeout reach their deadlines in the order they began, so each such run
 * is a queue, and one timer, set for the earliest deadline at the queues'
 * heads, serves them all; a settled call leaves its queue when the calls
 * before it have (at once, when they settle in order, as pipelined calls
 * on one connection do). A Timeout per call (with its arguments, and its
 * place in Node's timer list) was a measurable share of the SDK's CPU a
 * pipelined put, and of what every young-generation collection copies
 * while the call waits. The timer is cleared when every call has settled:
 * it keeps the process alive only while a call waits, as a call's own
 * Timeout did.
 */
export class Deadlines {
  private readonly queues = new Map<number, DeadlineQueue>()
  private timer: NodeJS.Timeout | null = null
  private timerAt = Number.POSITIVE_INFINITY

  add(call: Call, timeoutMs: number): void {
    let queue = this.queues.get(timeoutMs)
    if (queue === undefined) {
      queue = { calls: [], head: 0, waiting: 0 }
      this.queues.set(timeoutMs, queue)
    }
    queue.calls.push(call)
    queue.waiting++
    if (call.deadline < this.timerAt) this.arm(call.deadline)
  }

  /** A call of this timeout settled: the settled calls at its queue's head leave it. */
  settled(timeoutMs: number): void {
    const queue = this.queues.get(timeoutMs)
    if (queue === undefined) return
    queue.waiting--
    const { calls } = queue
    let head = queue.head
    while (head < calls.length && (calls[head] as Call).settled) calls[head++] = undefined
    if (head === calls.length) {
      calls.length = 0
      queue.head = 0
      this.queues.delete(timeoutMs)
      if (this.queues.size === 0 && this.timer !== null) {
        clearTimeout(this.timer)
        this.timer = null
        this.timerAt = Number.POSITIVE_INFINITY
      }
      return
    }
    // Settled calls behind one that waits (a node that does not answer) stay until it settles or
    // times out; once they outnumber the waiting ones, only the waiting ones are kept, in order.
    if (calls.length - head > 2 * queue.waiting + 1024) {
      let kept = 0
      for (let i = head; i < calls.length; i++) {
        const call = calls[i] as Call
        if (!call.settled) calls[kept++] = call
      }
      calls.length = kept
      head = 0
    }
    queue.head = head
  }

  private arm(at: number): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timerAt = at
    this.timer = setTimeout(() => this.expire(), Math.min(MAX_TIMER_MS, Math.max(0, Math.ceil(at - performance.now()))))
  }

  /** Fails the calls whose deadlines have passed, and sets the timer for the next. */
  private expire(): void {
    this.timer = null
    this.timerAt = Number.POSITIVE_INFINITY
    const now = performance.now()
    let next = Number.POSITIVE_INFINITY
    for (const [timeoutMs, queue] of [...this.queues]) {
      while (queue.head < queue.calls.length) {
        const call = queue.calls[queue.head] as Call
        if (!call.settled && call.deadline > now) break
        queue.calls[queue.head++] = undefined
        // Settling calls back into settled(), which finds this queue's head moved on.
        if (!call.settled) call.timedOut()
      }
      const head = queue.calls[queue.head]
      if (head === undefined) {
        if (this.queues.get(timeoutMs) === queue) this.queues.delete(timeoutMs)
      } else if (head.deadline < next) next = head.deadline
    }
    if (next !== Number.POSITIVE_INFINITY && next < this.timerAt) this.arm(next)
  }
}

/** Ops that change state: if their reply is lost, their outcome is unknown. */
const MUTATING = new Set(['put', 'del', 'batch', 'promote', 'replicaof', 'forget'])
/** Ops that write data (and carry the client's epoch). */
const WRITES = new Set(['put', 'del', 'batch'])
const MIN_BACKOFF_MS = 25
const MAX_BACKOFF_MS = 500
