import { randomFillSync } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { RawLayout } from '@tandem/server'
import { Level } from 'level'
import { keyName } from './keys.js'
import { type LatencySummary, newHistogram, summarize } from './load/histogram.js'

/**
 * The ceiling under tandem's write path: one LevelDB (the same `level`
 * package the server uses) written by back-to-back chained batches of
 * `batchSize` puts, each batch fsynced (with sync 'always'). tandem's group
 * committer can at best approach entriesPerSec at its own average group size.
 */

interface RawOptions {
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

interface RawApplyOptions {
  /** Puts written before counting starts, so the LevelDB is past its first, cheapest levels. */
  warmupPuts: number
  /** Puts counted. */
  puts: number
  valueSize: number
  keys: number
  /** Puts per fsynced batch (a replica's group). */
  batchSize: number
  /**
   * Distinct values the puts cycle through: the load generator gives each
   * request slot (clients x pipeline) a random value of its own, so a
   * group's values do not repeat and LevelDB's compression finds nothing
   * in them. With one value for every put, blocks compress to a fraction
   * and compaction costs less than tandem's traffic does.
   */
  distinctValues: number
  /**
   * How the log is laid out: 'block' is tandem's (one record per batch, see
   * the server's log-block.ts); 'entry' one record per put (bare entries,
   * which the server still reads); 'none' no log at all (data records only).
   */
  logLayout?: 'block' | 'entry' | 'none'
}

export interface RawApplyResult extends RawApplyOptions {
  /** CPU of this process (every thread: JavaScript, LevelDB's writer and compaction threads) per put, in microseconds. */
  cpuUsPerPut: number
  /** Of cpuUsPerPut, what LevelDB spent after the last batch on compactions the puts left owed. */
  owedCompactionUsPerPut: number
  /** False when LevelDB was still busy after a minute of waiting, at the start or the end of the counted puts. */
  settled: boolean
  elapsedMs: number
}

/**
 * Bytes a tandem log entry adds around its key and value: seq, epoch,
 * origin node id (16 hex chars), origin seq, HLC timestamp and the msgpack
 * headers of the entry and its op (measured on encoded entries: 53-57).
 */
const LOG_ENTRY_OVERHEAD = 55

/**
 * The least CPU a node can spend applying one replicated put with tandem's
 * storage layout: for each put, a data record (tag byte + value) under a
 * random key; for each batch, one log block (every entry, length-prefixed)
 * under its first seq, and the last seq; batches fsynced. Counted from
 * `warmupPuts` (a fresh LevelDB compacts less per put than one with a few
 * levels) until LevelDB has worked off the compactions those puts left
 * owed (the process idle for a while), so every byte the puts brought is
 * paid for. A replica's JavaScript (decoding frames, acks) comes on top.
 */
export async function measureRawApplyCpu(options: RawApplyOptions): Promise<RawApplyResult> {
  const dir = await mkdtemp(join(tmpdir(), 'tandem-bench-apply-'))
  const db = new Level<Buffer, Buffer>(join(dir, 'db'), { keyEncoding: 'buffer', valueEncoding: 'buffer' })
  await db.open()
  const keys = new RawLayout(db)
  // Records (tag byte + value) and log entries (header + key + value) made
  // up front, so that the loop's own JavaScript stays out of the figure.
  const records: Buffer[] = []
  const entries: Buffer[] = []
  for (let i = 0; i < options.distinctValues; i++) {
    const record = randomFillSync(Buffer.alloc(options.valueSize + 1))
    const entry = randomFillSync(Buffer.alloc(options.valueSize + LOG_ENTRY_OVERHEAD + 16))
    record.copy(entry, entry.length - options.valueSize, 1)
    records.push(record)
    entries.push(entry)
  }
  let started = performance.now()
  let cpu = process.cpuUsage()
  const total = options.warmupPuts + options.puts
  const layout = options.logLayout ?? 'block'
  let writing: NodeJS.CpuUsage | null = null
  let settled = true
  try {
    let seq = 0
    while (seq < total) {
      if (seq === options.warmupPuts) {
        // The warm-up's own owed compactions are not the counted puts' cost.
        settled = (await untilIdle()) && settled
        started = performance.now()
        cpu = process.cpuUsage()
      }
      const b = db.batch()
      const first = seq + 1
      const group: Buffer[] = []
      for (let i = 0; i < options.batchSize && seq < total; i++) {
        const pick = seq++ % records.length
        b.put(keys.dataKey(keyName(Math.floor(Math.random() * options.keys))), records[pick])
        group.push(entries[pick])
      }
      if (layout === 'block') keys.logBlocks(first, group, (key, block) => b.put(key, block))
      else if (layout === 'entry') for (let i = 0; i < group.length; i++) b.put(keys.logKey(first + i), group[i])
      b.put(keys.lastSeqKey, Buffer.from(String(seq)))
      await b.write({ sync: true })
    }
    writing = process.cpuUsage(cpu)
    settled = (await untilIdle()) && settled
  } finally {
    await db.close()
  }
  const used = process.cpuUsage(cpu)
  const elapsedMs = performance.now() - started
  const owed = used.user + used.system - (writing ? writing.user + writing.system : 0)
  await rm(dir, { recursive: true, force: true })
  return {
    ...options,
    logLayout: layout,
    cpuUsPerPut: Math.round(((used.user + used.system) / options.puts) * 100) / 100,
    owedCompactionUsPerPut: Math.round((owed / options.puts) * 100) / 100,
    settled,
    elapsedMs: Math.round(elapsedMs),
  }
}

/**
 * Resolves true once this process has used under 2% of a core in each of
 * three consecutive quarter-seconds (LevelDB has no compaction left to
 * run), or false after 60 s of waiting.
 */
async function untilIdle(): Promise<boolean> {
  const deadline = performance.now() + 60_000
  let quiet = 0
  while (quiet < 3 && performance.now() < deadline) {
    const before = process.cpuUsage()
    await new Promise((resolve) => setTimeout(resolve, 250))
    const used = process.cpuUsage(before)
    quiet = used.user + used.system < 5_000 ? quiet + 1 : 0
  }
  return quiet >= 3
}
