import { typed } from '@tandem/bench/fixtures'
import type { Value } from '@tandem/client'
import { decodeEntry, type LogEntry, Store } from '@tandem/server'
import { expect } from 'vitest'

export { typed }

/** What a stopped node's data dir holds, read straight from LevelDB. */
export interface OfflineStore {
  nodeId: string
  lastSeq: number
  /** Every log entry, in the order the log iterator yields them. */
  entries: LogEntry[]
  /** The same entries as stored, byte for byte. */
  raws: Buffer[]
  /** Log key of each entry, as read (the seq the entry is filed under). */
  logSeqs: number[]
  /** The data sublevel, key -> value. */
  data: Map<string, Value>
}

/**
 * Opens a data dir with the Store itself (the server must not be running:
 * LevelDB holds a lock) and reads the whole log and data out of it.
 */
export async function readOffline(dataDir: string): Promise<OfflineStore> {
  const store = await Store.open({ dataDir, sync: 'none', logRetention: 1e9 })
  try {
    const entries: LogEntry[] = []
    const raws: Buffer[] = []
    const logSeqs: number[] = []
    for await (const [seq, raw] of store.log.read(1)) {
      logSeqs.push(seq)
      raws.push(Buffer.from(raw))
      entries.push(decodeEntry(raw))
    }
    const data = new Map<string, Value>()
    for await (const [key, value] of store.scan({})) data.set(key, value)
    return { nodeId: store.nodeId, lastSeq: store.lastSeq, entries, raws, logSeqs, data }
  } finally {
    await store.close()
  }
}

/** Applies the log's ops in seq order to an empty map. */
export function replay(entries: LogEntry[]): Map<string, string> {
  const state = new Map<string, string>()
  for (const entry of entries) {
    for (const op of entry.ops) {
      if (op[0] === 0) state.set(op[1], typed(op[2])!)
      else state.delete(op[1])
    }
  }
  return state
}

/**
 * The log rules every data dir must satisfy after any stop or crash, with
 * the whole log retained:
 * - the log holds seqs 1..lastSeq, each once, consecutive, filed under its own seq;
 * - HLC timestamps strictly increase along the log (commit order is clock order);
 * - replaying the ops in seq order reproduces the data exactly, no more, no less.
 */
export function expectLogMatchesData(offline: OfflineStore): void {
  const { entries, logSeqs, lastSeq, data } = offline
  const expected = Array.from({ length: lastSeq }, (_, i) => i + 1)
  expect(logSeqs).toEqual(expected)
  expect(entries.map((e) => e.seq)).toEqual(expected)
  for (let i = 1; i < entries.length; i++) {
    if (!(entries[i].hlc > entries[i - 1].hlc)) {
      throw new Error(
        `hlc not strictly increasing at seq ${entries[i].seq}: ${entries[i - 1].hlc} then ${entries[i].hlc}`,
      )
    }
  }
  const stored = new Map([...data].map(([k, v]) => [k, typed(v)!]))
  const replayed = replay(entries)
  // Compare as sorted lists so a failure shows the first differing key.
  expect([...replayed].sort(byKey)).toEqual([...stored].sort(byKey))
}

const byKey = (a: [string, string], b: [string, string]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
