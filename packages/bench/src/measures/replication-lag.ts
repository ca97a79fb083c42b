import { type ChildProcess, fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { type Driver, type DriverSpec, openDriver } from '../drivers/driver.js'
import { type LatencySummary, newHistogram, summarize } from '../load/histogram.js'

/**
 * Replication lag, sampled while the load runs: every `intervalMs` the probe
 * writes a marker key on the master and then reads it back from each replica
 * (a direct connection) until it is there. Lag = time from the master's
 * acknowledgement to the first read that sees it on the replica, so it has
 * the resolution of one read round trip. Works the same for tandem and Redis.
 *
 * Run it through ProcessLagProbe: in the harness process it shares an event
 * loop and a heap with the load generator, whose garbage-collection pauses
 * (a few ms, dozens of times a run) then land in the lag samples as if the
 * replica had been late.
 */

export interface ReplicaLag {
  replica: string
  samples: number
  /** Markers not seen on the replica within the give-up time (MarkerLagProbe counts them in samples too, at their age then). */
  missed: number
  lagMs: LatencySummary | null
  /** How the samples were taken, when not put-then-poll (see MarkerLagProbe). */
  method?: string
}

export class LagProbe {
  private stopped = false
  private running: Promise<ReplicaLag[]> | null = null
  private drivers: Promise<{ master: Driver; replicas: Driver[] }> | null = null
  /** Names this probe's markers apart from an earlier probe's on the same nodes, which a poll would find at once. */
  private readonly tag = randomBytes(4).toString('hex')

  constructor(
    private readonly master: DriverSpec,
    private readonly replicas: string[],
    private readonly intervalMs = 250,
    private readonly giveUpMs = 5000,
  ) {}

  /** Connects to the master and the replicas (start() does it too if this was not called). */
  async open(): Promise<void> {
    await this.connect()
  }

  private connect(): Promise<{ master: Driver; replicas: Driver[] }> {
    this.drivers ??= (async () => {
      const master = await openDriver({ ...this.master, pipeline: 1 })
      const replicas = await Promise.all(
        this.replicas.map((r) => openDriver({ ...this.master, servers: [r], direct: true, w: undefined, pipeline: 1 })),
      )
      return { master, replicas }
    })()
    return this.drivers
  }

  start(): void {
    this.running = this.run()
  }

  async stop(): Promise<ReplicaLag[]> {
    this.stopped = true
    return this.running ?? []
  }

  private async run(): Promise<ReplicaLag[]> {
    const { master, replicas } = await this.connect()
    const hists = this.replicas.map(() => newHistogram())
    const missed = this.replicas.map(() => 0)
    try {
      for (let n = 0; !this.stopped; n++) {
        const key = `bench-lag:${this.tag}:${n}`
        const marker = Buffer.from(String(n))
        await master.put(key, marker)
        const acked = performance.now()
        await Promise.all(
          replicas.map(async (r, i) => {
            if (await seen(r, key, acked + this.giveUpMs)) {
              hists[i].recordValue(Math.max(1, Math.round((performance.now() - acked) * 1000)))
            } else missed[i]++
          }),
        )
        await new Promise((r) => setTimeout(r, this.intervalMs))
      }
    } finally {
      await Promise.all([master, ...replicas].map((d: Driver) => d.close()))
    }
    return this.replicas.map((replica, i) => ({
      replica,
      samples: hists[i].totalCount,
      missed: missed[i],
      lagMs: hists[i].totalCount === 0 ? null : summarize(hists[i]),
    }))
  }
}

async function seen(replica: Driver, key: string, deadline: number): Promise<boolean> {
  while (performance.now() < deadline) {
    try {
      const v = await replica.get(key)
      if (v !== undefined && v !== null) return true
    } catch {
      // A replica that is (re)connecting answers errors for a while; keep polling.
      await new Promise((r) => setTimeout(r, 10))
    }
  }
  return false
}

/**
 * What a ProcessLagProbe runs: a LagProbe (a marker on the master, then
 * polls of each replica) or a MarkerLagProbe (markers on every writer in
 * turn, open loop, timed on the readers' watches; tandem only).
 */
export type LagProbeSpec =
  | { kind: 'poll'; master: DriverSpec; replicas: string[]; intervalMs: number }
  | { kind: 'markers'; writers: string[]; readers: string[]; authToken?: string; intervalMs: number; traceDir?: string }

/**
 * A lag probe in a child process: its event loop runs nothing else and its
 * heap holds almost nothing, so what it measures is the servers' lag. The
 * child starts and connects at construction (see whenReady) and probes from
 * start() to stop().
 */
export class ProcessLagProbe {
  private readonly child: ChildProcess
  private readonly ready: Promise<void>
  private readonly outcome: Promise<ReplicaLag[]>

  constructor(spec: LagProbeSpec) {
    this.child = fork(fileURLToPath(new URL('./lag-probe-child.js', import.meta.url)), [], {
      execArgv: [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    this.child.send({ type: 'open', spec })
    this.ready = new Promise((resolve, reject) => {
      this.child.once('error', reject)
      this.child.on('message', (m: { type: string; message?: string }) => {
        if (m.type === 'ready') resolve()
        else if (m.type === 'error') reject(new Error(`lag probe could not connect: ${m.message}`))
      })
      this.child.once('exit', (code) => reject(new Error(`lag probe exited with ${code} before starting`)))
    })
    this.ready.catch(() => {})
    this.outcome = new Promise<ReplicaLag[]>((resolve, reject) => {
      this.child.on('message', (m: { type: string; result?: ReplicaLag[]; message?: string }) => {
        if (m.type === 'result') resolve(m.result ?? [])
        else if (m.type === 'error') reject(new Error(`lag probe failed: ${m.message}`))
      })
      this.child.once('exit', (code) => reject(new Error(`lag probe exited with ${code} without a result`)))
    })
    this.outcome.catch(() => {})
  }

  /** Resolves once the child has connected to the master and the replicas. */
  whenReady(): Promise<void> {
    return this.ready
  }

  /** Starts probing (at once if the child is ready, else once it is). */
  start(): void {
    void this.ready.then(() => this.child.send({ type: 'start' })).catch(() => {})
  }

  async stop(): Promise<ReplicaLag[]> {
    await this.ready
    this.child.send({ type: 'stop' })
    return this.outcome
  }

  /** Ends the child without a result (the scenario failed). */
  kill(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL')
  }
}
