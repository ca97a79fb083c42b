import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { scanAll, statusOf } from '@tandem/bench/fixtures'
import { type ConnectOptions, TandemClient } from '@tandem/client'
import type { Value, WriteConcern } from '@tandem/protocol'
import { type CutMode, FaultProxy, freePort } from '../helpers/fault-proxy.js'
import { NodeProcess } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'
import { type WriteAttempt, WriteLoops } from '../helpers/write-loops.js'

export { scanAll, statusOf } from '@tandem/bench/fixtures'

/**
 * A fail-over group of real tandem-server processes whose member links all
 * go through FaultProxy instances: node X's `--cluster` list holds its own
 * address and, for every other member Y, the proxy X->Y; `--advertise` is
 * its real address (what clients use). Cluster links and replication links
 * (a replica follows the master at the route in its own list) are both
 * proxied, so cutting the proxies makes a real partition, while test
 * clients still reach every node directly.
 */
export interface GroupOptions {
  size: number
  /** Indexes of members started with --witness. */
  witnesses?: number[]
  args?: string[]
  /** Extra environment for member i (e.g. TANDEM_TEST_CLOCK_FILE, the test clock). */
  env?: (i: number) => Record<string, string>
  /** Data dir of member i, when the caller owns it (e.g. on a small tmpfs); else a temp dir. */
  dataDir?: (i: number) => string
  /** [i, j]: node i's `--cluster` list ends with a second route (a proxy of its own) to node j. */
  aliases?: [number, number][]
}

export class FailoverGroup {
  readonly nodes: NodeProcess[] = []
  /** proxies[i][j]: the link from node i to node j. */
  readonly proxies: FaultProxy[][] = []
  /** The second routes of GroupOptions.aliases: node `from`'s link to node `to` through `proxy`. */
  readonly aliasProxies: { from: number; to: number; proxy: FaultProxy }[] = []
  private readonly dirs: { path: string; remove(): void }[] = []
  private readonly clients: TandemClient[] = []
  private readonly extras: NodeProcess[] = []
  /** Data dir of each member. */
  readonly dataDirs: string[] = []
  /** (epoch, node index) pairs seen in "became master" log lines. */
  readonly mastersByEpoch = new Map<number, Set<number>>()

  async start(options: GroupOptions): Promise<this> {
    const n = options.size
    // Proxies first (on ports of their own), retargeted once each node has its port.
    for (let i = 0; i < n; i++) {
      this.proxies[i] = []
      for (let j = 0; j < n; j++) {
        if (i !== j) this.proxies[i][j] = await new FaultProxy('127.0.0.1', 0, `${i}->${j}`).start()
      }
    }
    for (const [from, to] of options.aliases ?? []) {
      this.aliasProxies.push({ from, to, proxy: await new FaultProxy('127.0.0.1', 0, `${from}->${to}'`).start() })
    }
    const dirs = Array.from({ length: n }, (_, i) => {
      const own = options.dataDir?.(i)
      return own === undefined ? tempDir('tandem-failover-') : { path: own, remove: () => {} }
    })
    this.dirs.push(...dirs)
    this.dataDirs.push(...dirs.map((d) => d.path))
    // A port found free can be taken by another process before the node
    // binds it (tests run in parallel): then that node tries another.
    const startOne = async (i: number) => {
      for (let attempt = 1; ; attempt++) {
        const port = await freePort()
        for (let k = 0; k < n; k++) if (k !== i) this.proxies[k][i].targetPort = port
        for (const a of this.aliasProxies) if (a.to === i) a.proxy.targetPort = port
        const cluster = [...Array(n).keys()].map((j) => (i === j ? `127.0.0.1:${port}` : this.proxies[i][j].address))
        for (const a of this.aliasProxies) if (a.from === i) cluster.push(a.proxy.address)
        const args = [
          '--cluster',
          cluster.join(','),
          '--advertise',
          `127.0.0.1:${port}`,
          '--failover',
          'auto',
          ...(options.witnesses?.includes(i) ? ['--witness'] : []),
          ...(options.args ?? []),
        ]
        const node = new NodeProcess(dirs[i].path, args, options.env?.(i) ?? {})
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
    return this
  }

  index(node: NodeProcess): number {
    return this.nodes.indexOf(node)
  }

  /** Cuts every link between node i and the others, both ways. */
  isolate(i: number, mode?: CutMode): void {
    for (let j = 0; j < this.nodes.length; j++) if (j !== i) this.cut(i, j, mode)
  }

  /** Cuts the links between i and j, both ways. */
  cut(i: number, j: number, mode?: CutMode): void {
    this.proxies[i][j].cut(mode)
    this.proxies[j][i].cut(mode)
    for (const a of this.aliasProxies) {
      if ((a.from === i && a.to === j) || (a.from === j && a.to === i)) a.proxy.cut(mode)
    }
  }

  healAll(): void {
    for (const row of this.proxies) for (const p of row) p?.heal()
    for (const a of this.aliasProxies) a.proxy.heal()
  }

  /** Collects "became master" log lines into mastersByEpoch (call before logs are trimmed). */
  harvestMasters(): void {
    this.nodes.forEach((node, i) => {
      for (const line of node.logs) {
        if (line.msg !== 'became master' && line.msg !== 'began a new epoch as master') continue
        const epoch = Number(line.epoch)
        if (!this.mastersByEpoch.has(epoch)) this.mastersByEpoch.set(epoch, new Set())
        this.mastersByEpoch.get(epoch)?.add(i)
      }
    })
  }

  /** Epochs in which more than one node became master (must be empty). */
  epochsWithTwoMasters(): [number, number[]][] {
    this.harvestMasters()
    return [...this.mastersByEpoch].filter(([, who]) => who.size > 1).map(([e, who]) => [e, [...who]])
  }

  /** The one running node that is master and takes writes now, if any. */
  async writableMaster(among: NodeProcess[] = this.nodes): Promise<NodeProcess | undefined> {
    const statuses = await Promise.all(
      among.map((n) => (n.running ? statusOf(n, { timeoutMs: 500 }).catch(() => null) : null)),
    )
    const masters = among.filter((_, i) => statuses[i]?.role === 'master' && statuses[i]?.readOnly === false)
    return masters.length === 1 ? masters[0] : undefined
  }

  /**
   * Waits for one writable master among `among`. The deadline is generous:
   * an election usually takes a second or two, but on a loaded machine a
   * pre-vote can be lost to late heartbeats several rounds in a row.
   */
  async waitForMaster(
    among: NodeProcess[] = this.nodes,
    what = 'a writable master',
    timeoutMs = 60_000,
  ): Promise<NodeProcess> {
    return waitFor(() => this.writableMaster(among), { what, timeoutMs, intervalMs: 50 })
  }

  async client(options: Partial<ConnectOptions> = {}): Promise<TandemClient> {
    const client = await TandemClient.connect({
      servers: this.nodes.map((n) => n.address),
      connectTimeoutMs: 2000,
      ...options,
    })
    this.clients.push(client)
    return client
  }

  /** A replica outside the group, following `upstream` (a read replica). */
  async extraReplica(upstream: string): Promise<NodeProcess> {
    const dir = tempDir('tandem-failover-extra-')
    this.dirs.push(dir)
    const node = new NodeProcess(dir.path, ['--replicaof', upstream])
    this.extras.push(node)
    return node.start()
  }

  /** Rollback files (parsed) in node i's data dir: entry lines only (see rollbackGaps for the rest). */
  rollbackEntries(i: number): { seq: number; epoch: number; ops: { type: string; key: string; value?: unknown }[] }[] {
    return this.rollbackLines(i).filter((line) => Array.isArray(line.ops))
  }

  /** Ranges a rollback file could only name, not hold: the node's log no longer had them (rollback.ts). */
  rollbackGaps(i: number): { fromSeq: number; toSeq: number; why: string }[] {
    return this.rollbackLines(i)
      .map((line) => line.missing)
      .filter((gap) => gap !== undefined)
  }

  /** Every line after the header of every rollback file in node i's data dir, parsed. */
  // biome-ignore lint/suspicious/noExplicitAny: JSON lines of two shapes, told apart by the callers
  private rollbackLines(i: number): any[] {
    const dir = join(this.dirs[i].path, 'rollback')
    let files: string[]
    try {
      files = readdirSync(dir).filter((f) => f.endsWith('.jsonl'))
    } catch {
      return []
    }
    return files.flatMap((f) =>
      readFileSync(join(dir, f), 'utf8')
        .split('\n')
        .filter(Boolean)
        .slice(1)
        .map((line) => JSON.parse(line)),
    )
  }

  /** Waits until every data node holds the same data, and returns it. */
  async waitConverged(timeoutMs = 30_000): Promise<Map<string, Value>> {
    const data = this.nodes.filter((_, i) => !this.isWitness(i))
    let last: Map<string, Value> | undefined
    await waitFor(
      async () => {
        const scans = await Promise.all(data.map((n) => scanAll(n.address)))
        const first = JSON.stringify([...scans[0]])
        if (!scans.every((s) => JSON.stringify([...s]) === first)) return false
        const seqs = await Promise.all(data.map((n) => statusOf(n).then((s) => s.seq)))
        if (!seqs.every((s) => s === seqs[0])) return false
        last = scans[0]
        return true
      },
      { what: 'every data node to hold the same data', timeoutMs, intervalMs: 200 },
    ).catch(async (err) => {
      throw new Error(`${(err as Error).message}\n${await this.describe()}`)
    })
    return last as Map<string, Value>
  }

  /** One line per node: role, epoch, seq, link, master as it sees it (for failure messages). */
  async describe(): Promise<string> {
    const lines = await Promise.all(
      this.nodes.map(async (n, i) => {
        const s = await statusOf(n, { timeoutMs: 1000 }).catch(() => null)
        if (!s) return `node ${i} ${n.address}: no status (running ${n.running})`
        return `node ${i} ${n.address} ${s.nodeId}: ${s.role} epoch ${s.epoch} seq ${s.seq} readOnly ${s.readOnly} upstream ${s.upstream} link ${JSON.stringify(s.link)} master ${JSON.stringify(s.failover?.master)} history ${JSON.stringify(s.history)}\n  ${n.tail(6).replaceAll('\n', '\n  ')}`
      }),
    )
    return lines.join('\n')
  }

  isWitness(i: number): boolean {
    return this.nodes[i].args.includes('--witness')
  }

  async teardown(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close()))
    await Promise.all([...this.nodes, ...this.extras].map((n) => n.stop()))
    await Promise.all(this.proxies.flat().map((p) => p?.close()))
    await Promise.all(this.aliasProxies.map((a) => a.proxy.close()))
    for (const d of this.dirs) d.remove()
  }
}

export interface WriteRecord {
  key: string
  value: string
  w: WriteConcern | undefined
  client: number
  /** Node the client was pinned to (direct clients), else -1. */
  node: number
  sentAt: number
  ackedAt: number
  seq: number
}

/**
 * A write load: each client writes fresh keys (`u:<run>:<client>:<n>`) and,
 * every fourth write, a hot key shared by all, always with a value used
 * once, so that a read can be traced to the one write that produced it.
 * Every attempt is recorded; acknowledged writes with their times.
 */
export class WriteLoad {
  readonly acked: WriteRecord[] = []
  /** Writes whose outcome is unknown (UNCERTAIN, TIMEOUT). */
  readonly uncertain: string[] = []
  /** Every value ever sent, by key (acknowledged or not), by any load in this process (hot keys are shared). */
  static readonly attempted = new Map<string, Set<string>>()
  readonly attempted = WriteLoad.attempted
  readonly errors = new Map<string, number>()
  readonly badReads: string[] = []
  reads = 0
  private stopped = false
  private readers: Promise<void>[] = []
  private static runs = 0
  private readonly run = ++WriteLoad.runs
  private readonly loops: WriteLoops

  constructor(
    private readonly clients: { db: TandemClient; node: number }[],
    private readonly options: { w?: WriteConcern | 'alternate'; timeoutMs?: number; reads?: boolean } = {},
  ) {
    const w = options.w
    this.loops = new WriteLoops(
      clients.map((c) => c.db),
      {
        next: (client, n) => {
          const key = n % 4 === 3 ? `hot:${n % 16}` : `u:${this.run}:${client}:${n}`
          return [{ type: 'put', key, value: `v:${this.run}:${client}:${n}` }]
        },
        w: w === 'alternate' ? (n) => (n % 2 === 0 ? 1 : 'majority') : () => w,
        timeoutMs: options.timeoutMs ?? 2000,
        onError: 'pause',
        onSent: (write) => {
          const { key, value } = putOf(write)
          if (!this.attempted.has(key)) this.attempted.set(key, new Set())
          this.attempted.get(key)?.add(value)
        },
        onAnswered: (write) => this.onAnswered(write),
      },
    )
  }

  start(): this {
    this.loops.start()
    if (this.options.reads) this.readers = this.clients.map((c) => this.readLoop(c.db))
    return this
  }

  async stop(): Promise<void> {
    this.stopped = true
    await Promise.all([this.loops.stop(), ...this.readers])
  }

  ackedBy(client: number, after = 0): number {
    return this.acked.filter((r) => r.client === client && r.ackedAt > after).length
  }

  private onAnswered(write: WriteAttempt): void {
    const { key, value } = putOf(write)
    const { writer, w, sentAt, ackedAt, seq } = write
    if (seq !== undefined && ackedAt !== undefined) {
      this.acked.push({ key, value, w, client: writer, node: this.clients[writer].node, sentAt, ackedAt, seq })
      return
    }
    const code = write.error ?? 'ERROR'
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1)
    if (code === 'UNCERTAIN' || code === 'TIMEOUT') this.uncertain.push(key)
  }

  /** Reads keys already written and checks every value read was written to that key. */
  private async readLoop(db: TandemClient): Promise<void> {
    const keys: string[] = []
    while (!this.stopped) {
      if (keys.length < this.attempted.size) keys.push(...[...this.attempted.keys()].slice(keys.length))
      if (keys.length === 0) {
        await new Promise((r) => setTimeout(r, 20))
        continue
      }
      const key = keys[Math.floor(Math.random() * keys.length)]
      try {
        const value = await db.get(key, { timeoutMs: 2000 })
        this.reads++
        if (value !== undefined && !this.attempted.get(key)?.has(String(value))) {
          this.badReads.push(`${key}=${String(value)}`)
        }
      } catch {
        await new Promise((r) => setTimeout(r, 20))
      }
    }
  }
}

/** The key and value of a load's write (always one put). */
function putOf(write: WriteAttempt): { key: string; value: string } {
  const op = write.ops[0] as { key: string; value: string }
  return { key: op.key, value: op.value }
}

export { prng } from '@tandem/protocol'
