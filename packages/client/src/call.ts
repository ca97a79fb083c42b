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
  private lastError: TandemError | undefined
  private delay = MIN_BACKOFF_MS
  private readonly timer: NodeJS.Timeout

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
    this.timer = setTimeout(onCallTimeout, timeoutMs, this)
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

  /** Marks the call settled; false when it already was. */
  private finish(): boolean {
    if (this.done) return false
    this.done = true
    this.host.finished()
    clearTimeout(this.timer)
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

function onCallTimeout(call: Call): void {
  call.timedOut()
}

/** Ops that change state: if their reply is lost, their outcome is unknown. */
const MUTATING = new Set(['put', 'del', 'batch', 'promote', 'replicaof', 'forget'])
/** Ops that write data (and carry the client's epoch). */
const WRITES = new Set(['put', 'del', 'batch'])
const MIN_BACKOFF_MS = 25
const MAX_BACKOFF_MS = 500
