import { randomFillSync } from 'node:crypto'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { TandemClient } from '@tandem/client'
import { keyName } from '../keys.js'
import { type Histogram, newHistogram } from '../load/histogram.js'
import type { SampleSummary } from '../report/result.js'

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits

/** A client that talks to exactly `address`, whatever its role (for status and replica reads). */
export function directClient(address: string, authToken?: string, timeoutMs = 5000): Promise<TandemClient> {
  return TandemClient.connect({
    servers: [address],
    direct: true,
    readFrom: 'any',
    authToken,
    timeoutMs,
    connectTimeoutMs: timeoutMs,
  })
}

/** Exact nearest-rank percentiles of a small sample (fail-over rounds), in ms. */
export function sampleSummary(values: number[]): SampleSummary | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]
  return {
    count: sorted.length,
    min: round(sorted[0]),
    p50: round(at(50)),
    p90: round(at(90)),
    p99: round(at(99)),
    max: round(sorted[sorted.length - 1]),
    mean: round(sorted.reduce((a, b) => a + b, 0) / sorted.length),
  }
}

interface LoadedKeys {
  batch: number
  connections: number
  ms: number
  keysPerSec: number
  /** Latency of each batch, in us. */
  histogram: Histogram
}

/**
 * Writes keys 0..keys-1 (`keyName`) with distinct incompressible values of
 * `valueSize` bytes, in atomic batches of `batch` puts, over `connections`
 * SDK clients with one batch in flight each.
 */
export async function loadKeys(
  master: string,
  o: { keys: number; valueSize: number; batch: number; connections?: number; authToken?: string },
  onProgress?: (done: number) => void,
): Promise<LoadedKeys> {
  const connections = o.connections ?? 4
  const clients = await Promise.all(
    Array.from({ length: connections }, () =>
      TandemClient.connect({ servers: [master], authToken: o.authToken, timeoutMs: 120_000 }),
    ),
  )
  const histogram = newHistogram()
  let done = 0
  let lastReport = 0
  let ms: number
  try {
    ms = await loadInBatches(clients, o, async (c, keys, values) => {
      const ops = keys.map((key, i) => ({ type: 'put' as const, key, value: values[i] }))
      const t = performance.now()
      await c.batch(ops)
      histogram.recordValue(Math.max(1, Math.round((performance.now() - t) * 1000)))
      done += ops.length
      if (onProgress && performance.now() - lastReport > 1000) {
        lastReport = performance.now()
        onProgress(done)
      }
    })
  } finally {
    await Promise.all(clients.map((c) => c.close()))
  }
  return { batch: o.batch, connections, ms: round(ms), keysPerSec: Math.round((o.keys / ms) * 1000), histogram }
}

/**
 * Keys 0..keys-1 (`keyName`) in batches of `batch`, one batch in flight per
 * client, each value a random slice of a pool: distinct per key and
 * incompressible, so no store's compression is flattered. The one way the
 * harness loads a master for a full sync, tandem's and Redis's alike.
 * Resolves with the milliseconds it took.
 */
export async function loadInBatches<C>(
  clients: C[],
  o: { keys: number; valueSize: number; batch: number },
  send: (client: C, keys: string[], values: Buffer[]) => Promise<void>,
): Promise<number> {
  const pool = randomFillSync(Buffer.alloc(4 * 1024 * 1024))
  let next = 0
  const started = performance.now()
  await Promise.all(
    clients.map(async (c) => {
      while (next < o.keys) {
        const from = next
        next = Math.min(o.keys, next + o.batch)
        const keys: string[] = []
        const values: Buffer[] = []
        for (let i = from; i < next; i++) {
          const at = Math.floor(Math.random() * (pool.length - o.valueSize))
          keys.push(keyName(i))
          values.push(pool.subarray(at, at + o.valueSize))
        }
        await send(c, keys, values)
      }
    }),
  )
  return performance.now() - started
}

/** Bytes under a directory (the data dir of a node), or null if it cannot be read. */
export async function dirBytes(dir: string): Promise<number | null> {
  try {
    let total = 0
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) total += (await dirBytes(path)) ?? 0
      else total += (await stat(path)).size
    }
    return total
  } catch {
    return null
  }
}
