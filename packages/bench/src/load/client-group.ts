import { randomFillSync } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { type Driver, type DriverSpec, openDriver } from '../drivers/driver.js'
import { chooser, keyName, keyNamer } from '../keys.js'
import type { LoadWorkloadName } from '../options.js'
import { READ_FRACTION } from '../workloads.js'
import { type Histogram, newHistogram } from './histogram.js'

/** What one thread's share of the clients does. Plain data: it crosses into worker threads. */
export interface GroupSpec {
  driver: DriverSpec
  clients: number
  pipeline: number
  workload: LoadWorkloadName
  distribution: 'uniform' | 'zipfian'
  keys: number
  valueSize: number
  /** Measured requests this group makes before it stops by itself; unbounded when absent. */
  requests?: number
  /**
   * Open loop: requests per second this group offers, on a fixed schedule
   * whatever the answers do. `pipeline` then caps the requests in flight per
   * connection; a request due while every slot is busy waits for one, and
   * its latency counts from when it was due (no coordinated omission).
   */
  rate?: number
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
  /** keyName over the group's keyspace (made in open: a table for all its loops). */
  private keyName: (i: number) => string = keyName

  constructor(private readonly spec: GroupSpec) {}

  async open(): Promise<void> {
    this.keyName = keyNamer(this.spec.keys)
    this.drivers = await Promise.all(
      Array.from({ length: this.spec.clients }, (_, i) => {
        const driver = this.spec.driver
        if (!driver.spread) return openDriver({ ...driver, pipeline: this.spec.pipeline })
        const server = driver.servers[i % driver.servers.length]
        return openDriver({ ...driver, servers: [server], direct: true, spread: false, pipeline: this.spec.pipeline })
      }),
    )
  }

  /** Starts the load; nothing is recorded until measure(). */
  start(): void {
    if (this.spec.rate !== undefined) {
      this.loops.push(this.openLoop(this.spec.rate))
      return
    }
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

  private async openLoop(rate: number): Promise<void> {
    const { workload, keys, distribution, valueSize, pipeline } = this.spec
    const readFraction = READ_FRACTION[workload]
    const nextKey = chooser(distribution, keys)
    const value = randomFillSync(Buffer.alloc(valueSize))
    const quota = this.spec.requests ?? Number.POSITIVE_INFINITY
    const inFlight = this.drivers.map(() => 0)
    const running = new Set<Promise<void>>()
    const start = performance.now()
    let issued = 0
    let next = 0
    const one = async (d: number, due: number): Promise<void> => {
      const driver = this.drivers[d]
      const key = this.keyName(nextKey())
      const read = readFraction === 1 || (readFraction > 0 && Math.random() < readFraction)
      try {
        await (read ? driver.get(key) : driver.put(key, value))
        if (this.measuring) {
          this.histogram.recordValue(Math.max(1, Math.round((performance.now() - due) * 1000)))
          if (++this.ops >= quota) {
            this.stopping = true
            this.onQuota?.()
          }
        }
      } catch (err) {
        if (this.measuring) this.errors++
        this.firstError ??=
          err instanceof Error ? `${(err as { code?: string }).code ?? err.name}: ${err.message}` : String(err)
      } finally {
        inFlight[d]--
      }
    }
    while (!this.stopping) {
      const due = Math.floor(((performance.now() - start) * rate) / 1000)
      while (issued < due && !this.stopping) {
        // Round-robin over the connections that have a free slot.
        let d = -1
        for (let i = 0; i < this.drivers.length; i++) {
          const c = (next + i) % this.drivers.length
          if (inFlight[c] < pipeline) {
            d = c
            break
          }
        }
        if (d < 0) break
        next = (d + 1) % this.drivers.length
        inFlight[d]++
        const p = one(d, start + (issued * 1000) / rate)
        running.add(p)
        void p.finally(() => running.delete(p))
        issued++
      }
      // Timers fire about once a millisecond: requests due in between go out together.
      await new Promise((r) => setTimeout(r, 1))
    }
    await Promise.all(running)
  }

  private async loop(driver: Driver): Promise<void> {
    const { workload, keys, distribution, valueSize } = this.spec
    const readFraction = READ_FRACTION[workload]
    const nextKey = chooser(distribution, keys)
    const value = randomFillSync(Buffer.alloc(valueSize))
    const quota = this.spec.requests ?? Number.POSITIVE_INFINITY
    while (!this.stopping) {
      const key = this.keyName(nextKey())
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
