import { type Consistency, isHostPort, type NodeStatus, TandemError } from '@tandem/protocol'
import type { Route } from './call.js'
import type { Topology } from './options.js'

/** What the router needs of its client: connections, and where to say what it learned. */
interface RouterHost {
  /** Opens the connection to `address` (or finds it open); rejects when it cannot. */
  connect(address: string): Promise<unknown>
  /** An address whose connection is open, if any. */
  anyOpen(): string | undefined
  /** The node's own status, asked on its connection alone (no routing). */
  statusOf(address: string): Promise<NodeStatus>
  /** The master changed: a topology event. */
  topology(topology: Topology): void
  /** A failure no call reports (a discovery that reached no node). */
  report(err: TandemError): void
}

interface RouterSettings {
  /** Seed addresses, well-formed, in the caller's order. */
  servers: string[]
  direct: boolean
  readFrom: 'master' | 'replica' | 'any'
}

/**
 * Which node a request goes to. It keeps what the client knows of the
 * group: the master (in a multi-master group, the peer writes go to), its
 * replicas, the newest fail-over epoch seen, and whether the nodes are a
 * fail-over group. It learns them from discovery (every known node asked
 * for its status, the master of the highest epoch taken), from the nodes'
 * topology pushes and from refusals that name the master; it forgets a
 * master whose connection is lost or that refuses a write.
 */
export class Router {
  /** The master's address, once known (in a multi-master group: the peer writes go to). */
  private master: string | null = null
  /** Whether the nodes are a fail-over group (--cluster); null until a node says. */
  private group: boolean | null = null
  /** Whether discovery found a multi-master group. */
  private multi = false
  private replicas: string[] = []
  private nextReplica = 0
  /** The newest fail-over epoch any node has shown this client; sent with writes (a stale master steps down). */
  private newestEpoch = 0
  private discovering: Promise<void> | null = null
  /** The last master and epoch reported in a topology event. */
  private topology: { master: string; epoch: number } | null = null

  constructor(
    private readonly settings: RouterSettings,
    private readonly host: RouterHost,
  ) {}

  get epoch(): number {
    return this.newestEpoch
  }

  /** Whether the nodes are a fail-over group (--cluster); null until a node says. */
  get clusterGroup(): boolean | null {
    return this.group
  }

  /** The address a request of this kind goes to when that is known without asking anyone, else null. */
  readyAddress(route: Route): string | null {
    if (this.settings.direct || route === 'admin') return this.settings.servers[0]
    if (route === 'write' || (route === 'read' && this.settings.readFrom === 'master')) return this.master
    return null
  }

  /** The address a request of this kind goes to now. */
  async target(route: Route): Promise<string> {
    const { servers, readFrom } = this.settings
    if (this.settings.direct) return servers[0]
    if (route === 'read') {
      if (readFrom === 'any') {
        const open = this.host.anyOpen()
        if (open !== undefined) return open
      }
      if (readFrom === 'replica') {
        if (this.replicas.length === 0 && this.master === null) await this.discover()
        if (this.replicas.length > 0) return this.replicas[this.nextReplica++ % this.replicas.length]
      }
    }
    if (route === 'admin') return servers[0]
    if (route === 'seed') {
      const open = this.host.anyOpen()
      if (open !== undefined) return open
      // All seeds at once: one that accepts TCP but never answers (paused,
      // or cut off by a partition) must not hold up the others.
      return Promise.any(servers.map((address) => this.host.connect(address).then(() => address))).catch(
        (err: AggregateError) => {
          const last = err.errors[err.errors.length - 1]
          // One seed: its own error. Several that were all unreachable: say so of all of them, not of the last alone.
          if (servers.length === 1 || !err.errors.every((e) => e instanceof TandemError && e.code === 'UNAVAILABLE')) {
            throw err.errors.find((e) => e instanceof TandemError && e.code === 'UNAUTHORIZED') ?? last
          }
          const each = servers.map((address, i) => `${address} (${unreachableWhy(err.errors[i])})`)
          throw new TandemError('UNAVAILABLE', `cannot reach any of ${each.join(', ')}`, { cause: last })
        },
      )
    }
    if (this.master !== null) return this.master
    await this.discover()
    if (this.master !== null) return this.master
    throw new TandemError('NOMASTER', `no master among ${this.known().join(', ')}`)
  }

  /**
   * Whether a refusal means the request may go to another node: it was
   * not the master (or, in a multi-master group, a peer that refuses writes
   * for now: just started, restoring its writes, shutting down), so nothing
   * was applied. Never for direct clients and admin requests, which name
   * their node.
   */
  reroutes(route: Route, err: TandemError): boolean {
    return (
      !this.settings.direct &&
      route !== 'admin' &&
      (REROUTE.has(err.code) || (this.multi && err.code === 'UNAVAILABLE'))
    )
  }

  noteEpoch(epoch: unknown): void {
    if (typeof epoch === 'number' && Number.isSafeInteger(epoch) && epoch > this.newestEpoch) this.newestEpoch = epoch
  }

  /** A node refused a write as not the master: forget it as master, and take its hint. */
  noteNotMaster(address: string | undefined, err: TandemError): void {
    const hint = isHostPort(err.details.master) ? err.details.master : null
    if (hint && hint !== address) this.master = hint
    else if (this.master === address || this.master === hint) this.master = null
    // A master learnt from a hint skips discovery, which says whether this is a fail-over group.
    if (this.group === null) this.discover().catch(() => {})
  }

  /** The node at `address` cannot be reached (its connection failed or was lost): not the master to write to. */
  forget(address: string): void {
    if (this.master === address) this.master = null
  }

  /**
   * A message a node pushed (a new master after a fail-over). True when it
   * named a master: calls waiting out a backoff can go now.
   */
  onPush(message: Record<string, unknown>): boolean {
    this.noteEpoch(message.epoch)
    if (message.push !== 'topology' || !isHostPort(message.master)) return false
    // Only the members of a fail-over group push topology changes.
    this.group = true
    this.master = message.master
    if (typeof message.epoch === 'number') this.learnMaster(message.master, message.epoch)
    return true
  }

  /**
   * Asks every known node for its status and takes the master with the
   * highest epoch. One discovery runs at a time; callers share it.
   */
  discover(): Promise<void> {
    if (!this.discovering) {
      this.discovering = this.runDiscovery().finally(() => {
        this.discovering = null
      })
    }
    return this.discovering
  }

  private async runDiscovery(): Promise<void> {
    const statuses: NodeStatus[] = []
    const errors: TandemError[] = []
    const asked = new Set<string>()
    let pending = 0
    let grace: NodeJS.Timeout | undefined
    let done!: () => void
    const finished = new Promise<void>((resolve) => {
      done = resolve
    })
    const ask = (address: string) => {
      if (asked.has(address)) return
      asked.add(address)
      pending++
      this.host
        .statusOf(address)
        .then(
          (s) => {
            statuses.push(s)
            // A replica names its master; ask it too.
            if (isHostPort(s.master)) ask(s.master)
            // A node that does not answer (paused, cut off) must not hold
            // up the others: once a master that takes writes has answered,
            // wait only briefly for one of a newer epoch.
            if ((s.role === 'master' || s.role === 'peer') && !s.readOnly && grace === undefined) {
              grace = setTimeout(done, DISCOVERY_GRACE_MS)
            }
          },
          (err) => errors.push(err as TandemError),
        )
        .finally(() => {
          if (--pending === 0) done()
        })
    }
    for (const address of this.known()) ask(address)
    await finished
    clearTimeout(grace)
    if (statuses.length > 0) this.group = statuses.some((s) => s.failover != null)
    for (const s of statuses) this.noteEpoch(s.epoch)
    const { servers } = this.settings
    const peers = statuses.filter((s) => s.role === 'peer' && !s.readOnly)
    // Multi-master: every peer takes writes; the first in the caller's order wins.
    const rank = (s: NodeStatus) => {
      const i = servers.indexOf(String(s.address ?? ''))
      return i < 0 ? servers.length : i
    }
    peers.sort((a, b) => rank(a) - rank(b))
    const masters = statuses.filter((s) => s.role === 'master' && !s.readOnly).sort((a, b) => b.epoch - a.epoch)
    const master = peers[0] ?? masters[0]
    this.multi = statuses.some((s) => s.role === 'peer')
    // Addresses come from the nodes: only well-formed ones are ever dialled.
    if (master) {
      this.master = isHostPort(master.address) ? master.address : null
      this.replicas = master.replicas.map((r) => r.addr).filter(isHostPort)
      if (this.master) this.learnMaster(this.master, master.epoch)
    } else {
      this.master = null
      this.replicas = statuses
        .filter((s) => s.role === 'replica')
        .map((s) => s.address)
        .filter(isHostPort)
    }
    if (statuses.length === 0 && errors.length > 0) {
      const unauthorized = errors.find((e) => e.code === 'UNAUTHORIZED')
      const err =
        unauthorized ??
        new TandemError('UNAVAILABLE', `cannot reach any of ${this.known().join(', ')}: ${errors[0].message}`)
      this.host.report(err)
      throw err
    }
  }

  /** Every address the client knows of: seeds first, then what the group told it. */
  private known(): string[] {
    return [...new Set([...this.settings.servers, ...(this.master ? [this.master] : []), ...this.replicas])]
  }

  /** A master (and its epoch) learned from a push or a discovery: a topology event when it is news. */
  private learnMaster(master: string, epoch: number): void {
    const last = this.topology
    if (last && (epoch < last.epoch || (epoch === last.epoch && master === last.master))) return
    this.topology = { master, epoch }
    this.host.topology({ master, epoch, previous: last })
  }
}

/** Lease and linearizable reads only the master serves. */
export function readRoute(consistency: Consistency | undefined): Route {
  return consistency === 'linearizable' || consistency === 'lease' ? 'write' : 'read'
}

/** Errors that mean "not the master" (or a peer that refuses writes for its clock): nothing was applied, it may go elsewhere. */
const REROUTE = new Set(['READONLY', 'NOMASTER', 'FENCED', 'CLOCKSKEW'])
/** How long discovery waits for other nodes once a writable master has answered (one of a newer epoch may too). */
const DISCOVERY_GRACE_MS = 100

/** Why a seed could not be reached, in a few words: its socket's errno (ECONNREFUSED, ENOTFOUND, ...) when it has one. */
function unreachableWhy(err: unknown): string {
  const cause = (err as { cause?: unknown }).cause
  const code = (cause as NodeJS.ErrnoException | undefined)?.code
  if (typeof code === 'string') return code
  return cause instanceof Error ? cause.message : (err as Error).message
}
