import { randomFillSync } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { Level } from 'level'
import { keyName } from './keys.js'
import { type LatencySummary, newHistogram, summarize } from './load/histogram.js'

/**
 * The ceiling under tandem's write path: one LevelDB (the same `level`
 * package the server uses) written by back-to-back chained batches of
 * `batchSize` puts, each batch fsynced (with sync 'always'). tandem's group
 * committer can at best approach entriesPerSec at its own average group size.
 */

export interface RawOptions {
  batchSizes: number[]
  valueSize: number
  keys: number
  durationS: number
  sync: boolean
}

export interface RawResult {
  batchSize: number
  valueSize: number
  sync: boolean
  batches: number
  entries: number
  entriesPerSec: number
  batchesPerSec: number
  batchLatencyMs: LatencySummary
}

export async function measureRawLevelDb(
  options: RawOptions,
  onResult: (r: RawResult) => void = () => {},
): Promise<RawResult[]> {
  const dir = await mkdtemp(join(tmpdir(), 'tandem-bench-raw-'))
  const db = new Level<string, Buffer>(join(dir, 'db'), { valueEncoding: 'buffer' })
  await db.open()
  const value = randomFillSync(Buffer.alloc(options.valueSize))
  const results: RawResult[] = []
  try {
    for (const batchSize of options.batchSizes) {
      const histogram = newHistogram()
      let batches = 0
      const started = performance.now()
      const end = started + options.durationS * 1000
      while (performance.now() < end) {
        const t0 = performance.now()
        const b = db.batch()
        for (let i = 0; i < batchSize; i++) b.put(keyName(Math.floor(Math.random() * options.keys)), value)
        await b.write({ sync: options.sync })
        histogram.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)))
        batches++
      }
      const elapsedS = (performance.now() - started) / 1000
      const result: RawResult = {
        batchSize,
        valueSize: options.valueSize,
        sync: options.sync,
        batches,
        entries: batches * batchSize,
        entriesPerSec: Math.round((batches * batchSize) / elapsedS),
        batchesPerSec: Math.round(batches / elapsedS),
        batchLatencyMs: summarize(histogram),
      }
      results.push(result)
      onResult(result)
    }
  } finally {
    await db.close()
    await rm(dir, { recursive: true, force: true })
  }
  return results
}
