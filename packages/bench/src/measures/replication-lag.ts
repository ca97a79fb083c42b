import { performance } from 'node:perf_hooks'
import { type Driver, type DriverSpec, openDriver } from '../drivers/driver.js'
import { type LatencySummary, newHistogram, summarize } from '../load/histogram.js'

/**
 * Replication lag, sampled while the load runs: every `intervalMs` the probe
 * writes a marker key on the master and then reads it back from each replica
 * (a direct connection) until it is there. Lag = time from the master's
 * acknowledgement to the first read that sees it on the replica, so it has
 * the resolution of one read round trip. Works the same for tandem and Redis.
 */

export interface ReplicaLag {
  replica: string
  samples: number
  /** Markers not seen on the replica within the give-up time. */
  missed: number
  lagMs: LatencySummary | null
}

export class LagProbe {
  private stopped = false
  private running: Promise<ReplicaLag[]> | null = null

  constructor(
    private readonly master: DriverSpec,
    private readonly replicas: string[],
    private readonly intervalMs = 250,
    private readonly giveUpMs = 5000,
  ) {}

  start(): void {
    this.running = this.run()
  }

  async stop(): Promise<ReplicaLag[]> {
    this.stopped = true
    return this.running ?? []
  }

  private async run(): Promise<ReplicaLag[]> {
    const master = await openDriver({ ...this.master, pipeline: 1 })
    const replicas = await Promise.all(
      this.replicas.map((r) => openDriver({ ...this.master, servers: [r], direct: true, w: undefined, pipeline: 1 })),
    )
    const hists = this.replicas.map(() => newHistogram())
    const missed = this.replicas.map(() => 0)
    try {
      for (let n = 0; !this.stopped; n++) {
        const key = `bench-lag:${n}`
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
