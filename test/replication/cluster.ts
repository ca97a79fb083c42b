import { statusOf } from '@tandem/bench/fixtures'
import { type BatchOp, TandemClient, TandemError } from '@tandem/client'
import { NodeProcess } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'
import { WriteLoops } from '../helpers/write-loops.js'

export { type FullStatus, firstDifference, metricSum, scanAll, statusOf, typed } from '@tandem/bench/fixtures'

/**
 * Fixtures for the replication tests: a set of real tandem-server
 * processes that own their temp dirs, and a write load from concurrent SDK
 * clients that records what was acknowledged. Status, metrics and full scans are the
 * shared ones (@tandem/bench/fixtures), re-exported.
 */
export class Cluster {
  readonly nodes: NodeProcess[] = []
  private readonly dirs: { path: string; remove(): void }[] = []
  private readonly clients: TandemClient[] = []

  /** Starts a node in a fresh data dir with the given flags. */
  async start(args: string[] = []): Promise<NodeProcess> {
    const node = new NodeProcess(this.dir(), args)
    this.nodes.push(node)
    await node.start()
    return node
  }

  /** A node that is not started yet (to set its port or start it later). */
  create(args: string[] = [], dataDir = this.dir()): NodeProcess {
    const node = new NodeProcess(dataDir, args)
    this.nodes.push(node)
    return node
  }

  dir(): string {
    const dir = tempDir('tandem-repl-')
    this.dirs.push(dir)
    return dir.path
  }

  /**
   * An SDK client closed at teardown. No replication test is about the
   * client's liveness check, and a master busy with a full sync on a loaded
   * machine can be silent for its default 2 s: that would fail a write in
   * flight with UNCERTAIN, which these tests count as a failure.
   */
  async client(options: Parameters<typeof TandemClient.connect>[0]): Promise<TandemClient> {
    const client = await TandemClient.connect({
      connectTimeoutMs: 3000,
      livenessTimeoutMs: LOAD_LIVENESS_MS,
      ...options,
    })
    this.clients.push(client)
    return client
  }

  /**
   * A tree of depth 2: a master, replicas r1 and r2 of it, and sub, a
   * replica of r1. Resolves once the master lists two replicas, r1 lists
   * sub and sub's link streams.
   */
  async startTree(): Promise<{ master: NodeProcess; r1: NodeProcess; r2: NodeProcess; sub: NodeProcess }> {
    const master = await this.start()
    const r1 = await this.start(['--replicaof', master.address])
    const r2 = await this.start(['--replicaof', master.address])
    const sub = await this.start(['--replicaof', r1.address])
    await waitFor(
      async () =>
        (await statusOf(master)).replicas.length === 2 &&
        (await statusOf(r1)).replicas.length === 1 &&
        (await statusOf(sub)).link?.state === 'streaming',
      { what: 'the master to list r1 and r2, r1 to list sub, and sub to stream' },
    )
    return { master, r1, r2, sub }
  }

  async teardown(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close()))
    await Promise.all(this.nodes.map((n) => n.stop()))
    for (const d of this.dirs) d.remove()
  }
}

/** The liveness timeout of the tests' clients (see Cluster.client): a stall, not a dead node, on a loaded machine. */
const LOAD_LIVENESS_MS = 10_000

/** Waits until every node's seq equals the master's (writes must have stopped). */
export async function waitCaughtUp(master: NodeProcess, nodes: NodeProcess[], timeoutMs = 30_000): Promise<number> {
  const head = (await statusOf(master)).seq
  await waitFor(
    async () => {
      for (const n of nodes) if ((await statusOf(n)).seq !== head) return false
      return true
    },
    { timeoutMs, intervalMs: 100, what: `every node at the master's seq ${head}` },
  )
  return head
}

export interface LoadOptions {
  /** Concurrent SDK clients. */
  clients: number
  /** Requests each client keeps in flight. */
  inFlight?: number
  /** Distinct keys written: a small space makes puts and dels overwrite each other, so order matters. */
  keySpace?: number
  /** Bytes per value (string). */
  valueBytes?: number
  /** Stop after this many writes were sent in all (default: until stop()). */
  total?: number
  /** Key prefix. */
  prefix?: string
  /** Write concern for every write. */
  w?: number
  timeoutMs?: number
}

/**
 * Writes from concurrent SDK clients: a mix of put (70%), del (15%) and
 * batch (15%, 2..5 ops) on a shared key space, so that order matters.
 * Counts what was acknowledged and what failed (by error code), and runs
 * until a total or until stopped.
 */
export class WriteLoad {
  acked = 0
  failed = 0
  readonly errors = new Map<string, number>()
  private clients: TandemClient[] = []
  private loops: WriteLoops | null = null

  constructor(
    private readonly servers: string[],
    private readonly options: LoadOptions,
    private readonly onAck?: (ops: BatchOp[], seq: number) => void,
  ) {}

  async start(): Promise<this> {
    const o = this.options
    this.clients = await Promise.all(
      Array.from({ length: o.clients }, () =>
        TandemClient.connect({
          servers: this.servers,
          timeoutMs: o.timeoutMs ?? 20_000,
          livenessTimeoutMs: LOAD_LIVENESS_MS,
        }),
      ),
    )
    this.loops = new WriteLoops(this.clients, {
      loopsPerClient: o.inFlight ?? 4,
      next: mixedWrites(o.keySpace ?? 5000, o.valueBytes ?? 16, o.prefix ?? 'k:'),
      w: o.w === undefined ? undefined : () => o.w,
      timeoutMs: o.w === undefined ? undefined : o.timeoutMs,
      total: o.total,
      // Failures are counted; a loop pauses after one so that a call failing
      // at once (the master gone) cannot starve the test's event loop.
      onError: 'pause',
      onAnswered: (write) => {
        if (write.seq !== undefined) {
          this.acked++
          this.onAck?.(write.ops, write.seq)
          return
        }
        this.failed++
        const code = write.error ?? 'ERR'
        this.errors.set(code, (this.errors.get(code) ?? 0) + 1)
      },
    }).start()
    return this
  }

  /** Resolves once `total` writes were sent and answered (or the load was stopped). */
  async done(): Promise<void> {
    await this.loops?.done()
  }

  async stop(): Promise<void> {
    await this.loops?.stop()
    await Promise.all(this.clients.map((c) => c.close()))
  }
}

/** Writer w's n-th write of the mixed load: a put, a del or a batch on random keys of the space. */
function mixedWrites(keySpace: number, valueBytes: number, prefix: string): (writer: number, n: number) => BatchOp[] {
  return (writer, n) => {
    const value = (i: number) => `${writer}.${n}.${i}|`.padEnd(valueBytes, 'x')
    const key = () => `${prefix}${String(Math.floor(Math.random() * keySpace)).padStart(6, '0')}`
    const r = Math.random()
    if (r < 0.7) return [{ type: 'put', key: key(), value: value(0) }]
    if (r < 0.85) return [{ type: 'del', key: key() }]
    const size = 2 + Math.floor(Math.random() * 4)
    return Array.from(
      { length: size },
      (_, i): BatchOp => (i % 3 === 2 ? { type: 'del', key: key() } : { type: 'put', key: key(), value: value(i) }),
    )
  }
}

/** The TandemError a call fails with, or null when it succeeds; any other error is rethrown. */
export async function errorOf(p: Promise<unknown>): Promise<TandemError | null> {
  try {
    await p
    return null
  } catch (err) {
    if (err instanceof TandemError) return err
    throw err
  }
}
