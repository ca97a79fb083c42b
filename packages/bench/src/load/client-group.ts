import { randomFillSync } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { type Driver, type DriverSpec, openDriver } from '../drivers/driver.js'
import { chooser, keyName } from '../keys.js'
import type { WorkloadName } from '../options.js'
import { READ_FRACTION } from '../workloads.js'
import { type Histogram, newHistogram } from './histogram.js'

/** What one thread's share of the clients does. Plain data: it crosses into worker threads. */
export interface GroupSpec {
  driver: DriverSpec
  clients: number
  pipeline: number
  workload: WorkloadName
  distribution: 'uniform' | 'zipfian'
  keys: number
  valueSize: number
  /** Measured requests this group makes before it stops by itself; unbounded when absent. */
  requests?: number
}

export interface GroupSnapshot {
  ops: number
  errors: number
  firstError?: string
  histogram: Histogram
}

/**
 * A closed loop: `clients` connections, each with `pipeline` requests in
 * flight; every slot sends its next request as soon as its last one is
 * answered. Latency is the time from sending to the answer (service time;
 * a closed loop does not model arrivals that would have queued).
 */
export class ClientGroup {
  private drivers: Driver[] = []
  private loops: Promise<void>[] = []
  private stopping = false
  private measuring = false
  private histogram = newHistogram()
  private ops = 0
  private errors = 0
  private firstError: string | undefined
  private onQuota: (() => void) | null = null

  constructor(private readonly spec: GroupSpec) {}

  async open(): Promise<void> {
    this.drivers = await Promise.all(
      Array.from({ length: this.spec.clients }, () =>
        openDriver({ ...this.spec.driver, pipeline: this.spec.pipeline }),
      ),
    )
  }

  /** Starts the load; nothing is recorded until measure(). */
  start(): void {
    for (const driver of this.drivers) {
      for (let i = 0; i < this.spec.pipeline; i++) this.loops.push(this.loop(driver))
    }
  }

  /** Starts recording from now (after the warm-up). Resolves when the request quota, if any, is used up. */
  measure(): Promise<void> {
    this.histogram.reset()
    this.ops = 0
    this.errors = 0
    this.measuring = true
    if (this.spec.requests === undefined) return new Promise(() => {})
    if (this.spec.requests === 0) {
      this.stopping = true
      return Promise.resolve()
    }
    return new Promise((resolve) => (this.onQuota = resolve))
  }

  snapshot(): GroupSnapshot {
    return { ops: this.ops, errors: this.errors, firstError: this.firstError, histogram: this.histogram }
  }

  /** Stops sending and waits for the requests in flight to be answered. */
  async stop(): Promise<GroupSnapshot> {
    this.stopping = true
    await Promise.all(this.loops)
    this.measuring = false
    return this.snapshot()
  }

  async close(): Promise<void> {
    this.stopping = true
    await Promise.all(this.drivers.map((d) => d.close()))
  }

  private async loop(driver: Driver): Promise<void> {
    const { workload, keys, distribution, valueSize } = this.spec
    const readFraction = READ_FRACTION[workload]
    const nextKey = chooser(distribution, keys)
    const value = randomFillSync(Buffer.alloc(valueSize))
    const quota = this.spec.requests ?? Number.POSITIVE_INFINITY
    while (!this.stopping) {
      const key = keyName(nextKey())
      const read = readFraction === 1 || (readFraction > 0 && Math.random() < readFraction)
      const started = performance.now()
      try {
        await (read ? driver.get(key) : driver.put(key, value))
        if (this.measuring) {
          this.histogram.recordValue(Math.max(1, Math.round((performance.now() - started) * 1000)))
          if (++this.ops >= quota) {
            this.stopping = true
            this.onQuota?.()
          }
        }
      } catch (err) {
        if (this.measuring) this.errors++
        this.firstError ??=
          err instanceof Error ? `${(err as { code?: string }).code ?? err.name}: ${err.message}` : String(err)
        // A failing target answers at once; do not spin.
        await new Promise((r) => setTimeout(r, 5))
      }
    }
  }
}

/** Writes every key of the keyspace once, so that reads find values. */
export async function preload(spec: DriverSpec, keys: number, valueSize: number, connections = 4): Promise<void> {
  const drivers = await Promise.all(Array.from({ length: connections }, () => openDriver({ ...spec, pipeline: 8 })))
  const value = randomFillSync(Buffer.alloc(valueSize))
  const chunk = Math.max(1, Math.min(500, Math.floor((256 * 1024) / (valueSize + 32))))
  let next = 0
  try {
    await Promise.all(
      drivers.map(async (d) => {
        while (next < keys) {
          const from = next
          next = Math.min(keys, next + chunk)
          const entries: [string, Uint8Array][] = []
          for (let i = from; i < next; i++) entries.push([keyName(i), value])
          await d.putMany(entries)
        }
      }),
    )
  } finally {
    await Promise.all(drivers.map((d) => d.close()))
  }
}
