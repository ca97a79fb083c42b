import { cpSync } from 'node:fs'
import { type ConnectOptions, type NodeStatus, TandemClient, type Value } from '@tandem/client'
import type { MultiStatus } from '@tandem/protocol'
import { decodeEntry, type LogEntry, Store } from '@tandem/server'
import { FaultProxy, freePort } from '../helpers/fault-proxy.js'
import { NodeProcess } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { setTestClock, testClockArgs } from '../helpers/test-clock.js'
import { waitFor } from '../helpers/wait.js'

/**
 * A multi-master group of real tandem-server processes whose peer links all
 * go through FaultProxy instances: node i's --peers holds, for each of its
 * neighbours j, the proxy i->j (the link on which i pulls from j). Clients
 * reach every node directly, so cutting proxies partitions the peers while
 * every side keeps taking writes.
 *
 * Topologies: mesh (everyone peers with everyone), ring (each with the next
 * and the previous), line (each with its neighbours; the ends with one).
 */
export type Topology = 'mesh' | 'ring' | 'line'

export interface PeerGroupOptions {
  size: number
  conflict: 'lww' | 'vclock'
  topology?: Topology
  args?: string[]
  /** Extra flags for one node (by index). */
  argsOf?: (i: number) => string[]
  /** ms one node's wall clock runs ahead (negative: behind), by index (its test clock, see test-clock.ts). */
  clockOffsetOf?: (i: number) => number
  /** Wait until every node takes writes (it has heard a peer since it started). Default true. */
  waitWritable?: boolean
  /** Environment of node i's process. */
  env?: (i: number) => Record<string, string>
  /** Node i's data dir (default: a temp dir removed at teardown). */
  dataDir?: (i: number) => string | undefined
}

export interface PeerStatus extends NodeStatus {
  address: string
  digest: string | null
  keys: { tombstones: number; siblingKeys: number; maxSiblings: number } | null
  vv: Record<string, number>
  multi: MultiStatus | null
}

export class PeerGroup {
  readonly nodes: NodeProcess[] = []
  /** proxies[i][j]: node i's link to node j (undefined when they are not neighbours). */
  readonly proxies: (FaultProxy | undefined)[][] = []
  readonly dirs: { path: string; remove(): void }[] = []
  /** Node i's test clock file, when the group was started with clockOffsetOf (see setClock). */
  private readonly clockFiles: string[] = []
  private readonly clients: TandemClient[] = []
  private readonly extra: NodeProcess[] = []
  options!: PeerGroupOptions

  async start(options: PeerGroupOptions): Promise<this> {
    this.options = options
    const n = options.size
    const neighbours = (i: number) => neighboursOf(options.topology ?? 'mesh', n, i)
    for (let i = 0; i < n; i++) {
      this.proxies[i] = []
      for (const j of neighbours(i)) this.proxies[i][j] = await new FaultProxy('127.0.0.1', 0, `${i}->${j}`).start()
    }
    for (let i = 0; i < n; i++) {
      const own = options.dataDir?.(i)
      this.dirs.push(own === undefined ? tempDir('tandem-mm-') : { path: own, remove: () => {} })
    }
    const clockDir = options.clockOffsetOf ? tempDir('tandem-mm-clock-') : null
    if (clockDir) this.dirs.push(clockDir)
    const startOne = async (i: number) => {
      for (let attempt = 1; ; attempt++) {
        const port = await freePort()
        for (let k = 0; k < n; k++) {
          const proxy = this.proxies[k][i]
          if (proxy) proxy.targetPort = port
        }
        const peers = neighbours(i).map((j) => this.proxies[i][j]?.address)
        const clock =
          clockDir && options.clockOffsetOf ? testClockArgs(clockDir.path, String(i), options.clockOffsetOf(i)) : []
        if (clock.length > 0) this.clockFiles[i] = clock[1]
        const args = [
          '--mode',
          'multi',
          '--conflict',
          options.conflict,
          '--advertise',
          `127.0.0.1:${port}`,
          ...(peers.length > 0 ? ['--peers', peers.join(',')] : []),
          ...(options.args ?? []),
          ...(options.argsOf?.(i) ?? []),
          ...clock,
        ]
        const node = new NodeProcess(this.dirs[i].path, args, options.env?.(i) ?? {})
        node.port = port
        this.nodes[i] = node
        try {
          await node.start()
          return
        } catch (err) {
          if (attempt >= 5 || !String(err).includes('EADDRINUSE')) throw err
        }
      }
    }
    await Promise.all([...Array(n).keys()].map(startOne))
    if (options.waitWritable !== false) {
      await waitFor(
        async () => (await Promise.all(this.nodes.map((node) => statusOf(node)))).every((s) => !s.readOnly),
        {
          what: 'every node to take writes',
        },
      )
    }
    return this
  }

  /** Another node (a read replica, say) torn down with the group. */
  async startExtra(args: string[]): Promise<NodeProcess> {
    const dir = tempDir('tandem-mm-extra-')
    this.dirs.push(dir)
    const node = new NodeProcess(dir.path, args)
    this.extra.push(node)
    await node.start()
    return node
  }

  /**
   * A copy of node i's data dir as it is now: node i stops, its dir is copied
   * to a temp dir (removed at teardown), and it starts again and takes writes.
   * Started later, the copy holds fewer of node i's own writes than its
   * peers do (a lost tail).
   */
  async copyOfDataDir(i: number): Promise<string> {
    await this.nodes[i].stop()
    const copy = tempDir('tandem-mm-copy-')
    this.dirs.push(copy)
    cpSync(this.dirs[i].path, copy.path, { recursive: true })
    await this.nodes[i].start()
    await waitFor(async () => !(await this.status(i)).readOnly, { what: `node ${i} to take writes again` })
    return copy.path
  }

  /**
   * A new run of node i from dataDir on a fresh port, not started, with the
   * group's args and args: it pulls from each of its neighbours through its
   * own proxies, and becomes
   * this.nodes[i] (the caller still holds the old run). The proxies of
   * retarget (neighbours' links to node i) lead to the new run from their
   * next connection.
   */
  async newRunOf(i: number, dataDir: string, args: string[], retarget: number[]): Promise<NodeProcess> {
    const port = await freePort()
    for (const k of retarget) this.proxies[k][i]!.targetPort = port
    const peers = neighboursOf(this.options.topology ?? 'mesh', this.options.size, i).map(
      (j) => this.proxies[i][j]!.address,
    )
    const args0 = ['--mode', 'multi', '--conflict', this.options.conflict, '--advertise', `127.0.0.1:${port}`]
    const node = new NodeProcess(dataDir, [...args0, '--peers', peers.join(','), ...(this.options.args ?? []), ...args])
    node.port = port
    this.nodes[i] = node
    return node
  }

  /** Steps node i's wall clock to real time + offsetMs (the group was started with clockOffsetOf). */
  setClock(i: number, offsetMs: number): void {
    const file = this.clockFiles[i]
    if (file === undefined) throw new Error(`node ${i} has no test clock: start the group with clockOffsetOf`)
    setTestClock(file, offsetMs)
  }

  /** Cuts the links between i and j, both ways. */
  cut(i: number, j: number): void {
    this.proxies[i][j]?.cut()
    this.proxies[j][i]?.cut()
  }

  isolate(i: number): void {
    for (let j = 0; j < this.nodes.length; j++) if (j !== i) this.cut(i, j)
  }

  healAll(): void {
    for (const row of this.proxies) for (const p of row) p?.heal()
  }

  /** A client that talks to node i alone. */
  async client(i: number, options: Partial<ConnectOptions> = {}): Promise<TandemClient> {
    const client = await TandemClient.connect({
      servers: [this.nodes[i].address],
      direct: true,
      connectTimeoutMs: 3000,
      timeoutMs: 10_000,
      ...options,
    })
    this.clients.push(client)
    return client
  }

  /** A client given every node as a seed (writes go to the first that takes them). */
  async groupClient(options: Partial<ConnectOptions> = {}): Promise<TandemClient> {
    const client = await TandemClient.connect({
      servers: this.nodes.map((n) => n.address),
      connectTimeoutMs: 3000,
      timeoutMs: 10_000,
      ...options,
    })
    this.clients.push(client)
    return client
  }

  async status(i: number): Promise<PeerStatus> {
    return statusOf(this.nodes[i])
  }

  /**
   * Waits until every running node holds the same writes (equal version
   * vectors, nothing left to pull) and reports the same digest.
   */
  async waitConverged(timeoutMs = 60_000, nodes: NodeProcess[] = this.nodes): Promise<PeerStatus[]> {
    let last: PeerStatus[] = []
    await waitFor(
      async () => {
        last = await Promise.all(nodes.map((n) => statusOf(n)))
        const vv = JSON.stringify(nonZero(last[0].vv))
        return last.every(
          (s) =>
            JSON.stringify(nonZero(s.vv)) === vv &&
            s.digest === last[0].digest &&
            (s.multi?.peers ?? []).every((p) => p.lagEntries === 0),
        )
      },
      {
        timeoutMs,
        intervalMs: 200,
        what: 'the nodes to converge',
      },
    ).catch((err) => {
      const logs = nodes.map((n, i) => `node ${i} (${n.running ? 'running' : 'down'}):\n${n.tail(8)}`).join('\n')
      throw new Error(
        `${(err as Error).message}; last: ${last.map((s) => `${JSON.stringify(nonZero(s.vv))} ${s.digest}`).join(' | ')}\n${logs}`,
      )
    })
    return last
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.clients.splice(0).map((c) => c.close()))
    await Promise.all([...this.nodes, ...this.extra].map((n) => n.stop()))
  }

  async teardown(): Promise<void> {
    await this.stopAll()
    for (const row of this.proxies) for (const p of row) await p?.close()
    for (const d of this.dirs) d.remove()
  }
}

function neighboursOf(topology: Topology, n: number, i: number): number[] {
  const all = [...Array(n).keys()].filter((j) => j !== i)
  if (topology === 'mesh' || n <= 2) return all
  if (topology === 'ring') return [(i + n - 1) % n, (i + 1) % n].filter((j, k, a) => a.indexOf(j) === k)
  return [i - 1, i + 1].filter((j) => j >= 0 && j < n)
}

export function nonZero(vv: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const k of Object.keys(vv).sort()) if (vv[k] > 0) out[k] = vv[k]
  return out
}

export async function statusOf(node: NodeProcess): Promise<PeerStatus> {
  const res = await fetch(`http://${node.address}/status`, { signal: AbortSignal.timeout(5000) })
  if (!res.ok) throw new Error(`status of ${node.address}: HTTP ${res.status}`)
  return (await res.json()) as PeerStatus
}

/** A value as text that keeps its type. */
export function typed(value: Value): string {
  return typeof value === 'string' ? `s:${value}` : `b:${Buffer.from(value).toString('hex')}`
}

/** Every key with its values (concurrent ones in dot order) on one node, read from it alone. */
export async function scanNode(node: NodeProcess): Promise<Map<string, string[]>> {
  const db = await TandemClient.connect({ servers: [node.address], direct: true, timeoutMs: 30_000 })
  try {
    const out = new Map<string, string[]>()
    for await (const [key, value] of db.scan()) {
      const values = out.get(key) ?? []
      values.push(typed(value))
      out.set(key, values)
    }
    return out
  } finally {
    await db.close()
  }
}

/** Every write (not housekeeping) in a stopped node's log, read with the Store itself. */
export async function writesOffline(dataDir: string, conflict: 'lww' | 'vclock'): Promise<LogEntry[]> {
  const store = await Store.open({ dataDir, sync: 'none', logRetention: 1e9, mode: 'multi', conflict })
  try {
    const out: LogEntry[] = []
    for await (const [, raw] of store.log.read(1)) {
      const entry = decodeEntry(raw)
      if (entry.origin !== '') out.push(entry)
    }
    return out
  } finally {
    await store.close()
  }
}

/** The writes of several logs, each once (by origin and counter). */
export function unionOfWrites(logs: LogEntry[][]): LogEntry[] {
  const seen = new Map<string, LogEntry>()
  for (const log of logs) for (const e of log) seen.set(`${e.origin}:${e.originSeq}`, e)
  return [...seen.values()]
}

const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b))

/**
 * The reference model of last-writer-wins: per key, the op with the greatest
 * (hlc, origin, counter); the key holds its value, or nothing for a delete.
 */
export function lwwModel(writes: LogEntry[]): Map<string, string[]> {
  const best = new Map<string, { hlc: number; origin: string; counter: number; value: Value | null }>()
  for (const e of writes) {
    for (const op of e.ops) {
      const key = op[1]
      const current = best.get(key)
      const greater =
        !current ||
        e.hlc > current.hlc ||
        (e.hlc === current.hlc &&
          (byBytes(e.origin, current.origin) > 0 || (e.origin === current.origin && e.originSeq > current.counter)))
      if (greater)
        best.set(key, {
          hlc: e.hlc,
          origin: e.origin,
          counter: e.originSeq,
          value: op[0] === 0 ? (op[2] as Value) : null,
        })
    }
  }
  const out = new Map<string, string[]>()
  for (const [key, b] of best) if (b.value !== null) out.set(key, [typed(b.value)])
  return out
}

/**
 * The reference model of vclock: per key, exactly the puts whose dot no
 * write's causal context covers, in dot order.
 */
export function vclockModel(writes: LogEntry[]): Map<string, string[]> {
  const byKey = new Map<
    string,
    { origin: string; counter: number; value: Value | null; ctx: Record<string, number> }[]
  >()
  for (const e of writes) {
    for (const op of e.ops) {
      const options = (op[0] === 0 ? op[3] : op[2]) as { c?: Record<string, number> } | undefined
      const list = byKey.get(op[1]) ?? []
      list.push({
        origin: e.origin,
        counter: e.originSeq,
        value: op[0] === 0 ? (op[2] as Value) : null,
        ctx: options?.c ?? {},
      })
      byKey.set(op[1], list)
    }
  }
  const out = new Map<string, string[]>()
  for (const [key, ops] of byKey) {
    const live = ops
      .filter((p) => p.value !== null)
      .filter((p) => !ops.some((q) => (q.ctx[p.origin] ?? 0) >= p.counter))
      .sort((a, b) => byBytes(a.origin, b.origin) || a.counter - b.counter)
    if (live.length > 0)
      out.set(
        key,
        live.map((p) => typed(p.value as Value)),
      )
  }
  return out
}

/** First difference between two key -> values maps, for a readable failure; null when equal. */
export function firstDifference(a: Map<string, string[]>, b: Map<string, string[]>): string | null {
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort()
  for (const key of keys) {
    const x = JSON.stringify(a.get(key) ?? null)
    const y = JSON.stringify(b.get(key) ?? null)
    if (x !== y) return `key ${JSON.stringify(key)}: ${x} vs ${y}`
  }
  return null
}
