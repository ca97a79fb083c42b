import { type BatchOp, type NodeStatus, TandemClient, TandemError, type Value } from '@tandem/client'
import { Store } from '@tandem/server'
import { NodeProcess } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'

/**
 * Shared fixtures for the replication tests: a set of real tandem-server
 * processes that own their temp dirs, status over HTTP, full scans through
 * the SDK, the log read back from a stopped node's data dir, and a write
 * load from concurrent SDK clients that records what was acknowledged.
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

  /** An SDK client closed at teardown. */
  async client(options: Parameters<typeof TandemClient.connect>[0]): Promise<TandemClient> {
    const client = await TandemClient.connect({ connectTimeoutMs: 3000, ...options })
    this.clients.push(client)
    return client
  }

  async teardown(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close()))
    await Promise.all(this.nodes.map((n) => n.stop()))
    for (const d of this.dirs) d.remove()
  }
}

/** The /status fields these tests read, beyond the documented minimum. */
export interface FullStatus extends NodeStatus {
  address: string
  /** Oldest seq still in the node's log. */
  logStart: number
  history: { epoch: number; startSeq: number; by: string }[]
  /** The link to the upstream; null on a master. */
  link: { state: string; lagEntries: number; lagMs: number; refusal: string | null } | null
  sync: { fullSyncs: number; partialSyncs: number; servedFull: number; servedPartial: number }
}

/** The node's /status, read over HTTP. */
export async function statusOf(node: NodeProcess): Promise<FullStatus> {
  const res = await fetch(`http://${node.address}/status`, { signal: AbortSignal.timeout(5000) })
  if (!res.ok) throw new Error(`status of ${node.address}: HTTP ${res.status}`)
  return (await res.json()) as FullStatus
}

/** One gauge or counter from /metrics (the first series with that name). */
export async function metricOf(node: NodeProcess, name: string): Promise<number> {
  const text = await (await fetch(`http://${node.address}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
  if (!line) throw new Error(`no metric ${name} at ${node.address}`)
  return Number(line.split(' ').pop())
}

/** Sum of a metric's series whose labels contain `labels` (e.g. 'op="get"'). */
export async function metricSum(node: NodeProcess, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`http://${node.address}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
  let sum = 0
  for (const line of text.split('\n')) {
    if ((line.startsWith(`${name} `) || line.startsWith(`${name}{`)) && line.includes(labels)) {
      sum += Number(line.split(' ').pop())
    }
  }
  return sum
}

/** A value as text that keeps its type: a string and the same bytes as binary differ. */
export function typed(value: Value): string {
  return typeof value === 'string' ? `s:${value}` : `b:${Buffer.from(value).toString('hex')}`
}

/** Every key and value on one node, read from that node alone (direct). */
export async function scanAll(address: string): Promise<[string, string][]> {
  const db = await TandemClient.connect({ servers: [address], direct: true, timeoutMs: 30_000 })
  try {
    const out: [string, string][] = []
    for await (const [key, value] of db.scan()) out.push([key, typed(value)])
    return out
  } finally {
    await db.close()
  }
}

/** First difference between two scans, for a readable failure; null when equal. */
export function firstDifference(a: [string, string][], b: [string, string][]): string | null {
  const n = Math.max(a.length, b.length)
  for (let i = 0; i < n; i++) {
    if (a[i]?.[0] !== b[i]?.[0] || a[i]?.[1] !== b[i]?.[1]) {
      return `at #${i}: ${JSON.stringify(a[i])} vs ${JSON.stringify(b[i])} (lengths ${a.length}, ${b.length})`
    }
  }
  return null
}

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

/** The log of a stopped node, read from its data dir with the Store itself. */
export async function readLogOffline(dataDir: string): Promise<{ lastSeq: number; seqs: number[]; raws: Buffer[] }> {
  const store = await Store.open({ dataDir, sync: 'none', logRetention: 1e9 })
  try {
    const seqs: number[] = []
    const raws: Buffer[] = []
    for await (const [seq, raw] of store.readLog(1)) {
      seqs.push(seq)
      raws.push(raw)
    }
    return { lastSeq: store.lastSeq, seqs, raws }
  } finally {
    await store.close()
  }
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
  /** Stop after this many acknowledged writes in total (default: until stop()). */
  total?: number
  /** Key prefix. */
  prefix?: string
  /** Write concern for every write. */
  w?: number
  timeoutMs?: number
}

/**
 * Writes from concurrent SDK clients: a mix of put (70%), del (15%) and
 * batch (15%, 2..5 ops) on a shared key space. Counts what was
 * acknowledged and what failed, and can run until a total or until stopped.
 */
export class WriteLoad {
  acked = 0
  failed = 0
  readonly errors = new Map<string, number>()
  /** Keys of acknowledged puts, with the value written (when tracking). */
  private stopping = false
  private issued = 0
  private running: Promise<void>[] = []
  private clients: TandemClient[] = []

  constructor(
    private readonly servers: string[],
    private readonly options: LoadOptions,
    private readonly onAck?: (ops: BatchOp[], seq: number) => void,
  ) {}

  async start(): Promise<this> {
    this.clients = await Promise.all(
      Array.from({ length: this.options.clients }, () =>
        TandemClient.connect({ servers: this.servers, timeoutMs: this.options.timeoutMs ?? 20_000 }),
      ),
    )
    for (const [c, client] of this.clients.entries()) {
      for (let f = 0; f < (this.options.inFlight ?? 4); f++) this.running.push(this.loop(client, c * 1000 + f))
    }
    return this
  }

  /** Resolves when `total` writes are acknowledged (or the load was stopped). */
  async done(): Promise<void> {
    await Promise.all(this.running)
  }

  async stop(): Promise<void> {
    this.stopping = true
    await Promise.all(this.running)
    await Promise.all(this.clients.map((c) => c.close()))
  }

  private next(writer: number, n: number): BatchOp[] {
    const keySpace = this.options.keySpace ?? 5000
    const prefix = this.options.prefix ?? 'k:'
    const value = (i: number) => {
      const base = `${writer}.${n}.${i}|`
      return base.padEnd(this.options.valueBytes ?? 16, 'x')
    }
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

  private async loop(client: TandemClient, writer: number): Promise<void> {
    let n = 0
    while (!this.stopping && (this.options.total === undefined || this.issued < this.options.total)) {
      this.issued++
      const ops = this.next(writer, n++)
      const w = this.options.w === undefined ? {} : { w: this.options.w, timeoutMs: this.options.timeoutMs }
      try {
        const result =
          ops.length > 1
            ? await client.batch(ops, w)
            : ops[0].type === 'put'
              ? await client.put(ops[0].key, ops[0].value, w)
              : await client.del(ops[0].key, w)
        this.acked++
        this.onAck?.(ops, result.seq)
      } catch (err) {
        this.failed++
        const code = (err as { code?: string }).code ?? 'ERR'
        this.errors.set(code, (this.errors.get(code) ?? 0) + 1)
      }
    }
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
