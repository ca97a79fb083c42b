import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LwwResolver } from '../multimaster/lww.js'
import { ConvergenceDigest } from './convergence.js'
import { type EntryOp, encodeEntry, OP_DEL, OP_PUT } from './log-entry.js'
import { writeRecord } from './record.js'
import { Store } from './store.js'

/**
 * Rule: a last-writer-wins store that resolves writes from LwwHeads ends
 * with the same records, digest and counts as one that reads every record,
 * whatever else writes the keys between two writes of them: tombstone
 * collection, snapshot merges, writes with an expiry; and its digest is the
 * one its records make.
 */

let dir: string
let stores: Store[] = []

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tandem-lww-heads-paths-'))
})

afterEach(async () => {
  await Promise.all(stores.map((s) => s.close()))
  stores = []
  rmSync(dir, { recursive: true, force: true })
})

async function openLww(dirName: string, lwwHeadKeys: number): Promise<Store> {
  const store = await Store.open({
    dataDir: join(dir, dirName),
    sync: 'none',
    logRetention: 100_000,
    mode: 'multi',
    conflict: 'lww',
    lwwHeadKeys,
  })
  store.resolver = new LwwResolver()
  stores.push(store)
  return store
}

const KEYS = Array.from({ length: 8 }, (_, i) => `k${i}`)

/** A small deterministic generator, so both stores get the very same script. */
function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 0x1_0000_0000
  }
}

type Step =
  | { kind: 'entries'; raws: Buffer[] }
  | { kind: 'collect'; keys: Buffer[] }
  | { kind: 'merge'; records: [Buffer, Buffer][] }
  | { kind: 'turn' }

function script(seed: number, steps: number): Step[] {
  const next = rng(seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]
  const base = Date.now() * 1024
  const seqs: Record<string, number> = { p1: 0, p2: 0 }
  let merged = 0
  const out: Step[] = []
  for (let t = 0; t < steps; t++) {
    const r = next()
    if (r < 0.6) {
      const origin = pick(['p1', 'p2'])
      const raws: Buffer[] = []
      const n = 1 + Math.floor(next() * 3)
      for (let i = 0; i < n; i++) {
        const k = pick(KEYS)
        const hlc = base + t * 8 + Math.floor(next() * 64) - 32
        const c = next()
        const op: EntryOp =
          c < 0.3
            ? [OP_DEL, k]
            : c < 0.45
              ? [OP_PUT, k, `ttl ${t}`, { x: Date.now() + 3_600_000 }]
              : [OP_PUT, k, `v ${t}`]
        raws.push(encodeEntry({ seq: 1, epoch: 1, origin, originSeq: ++seqs[origin], hlc, ops: [op] }))
      }
      out.push({ kind: 'entries', raws })
    } else if (r < 0.75) {
      out.push({ kind: 'collect', keys: KEYS.map((k) => Buffer.from(k)) })
    } else if (r < 0.9) {
      const k = pick(KEYS)
      const hlc = base + t * 8 + Math.floor(next() * 64) - 32
      const version = { hlc, counter: ++merged, origin: 'p3' }
      const record =
        next() < 0.3
          ? writeRecord({ version, body: { kind: 'tombstone' } })
          : writeRecord({ version, body: { kind: 'value', value: `merged ${t}` } })
      out.push({ kind: 'merge', records: [[Buffer.from(k), record]] })
    } else out.push({ kind: 'turn' })
  }
  return out
}

async function run(store: Store, steps: Step[]): Promise<void> {
  const resolver = store.resolver as LwwResolver
  const pending: Promise<unknown>[] = []
  // Every tombstone is stable: all three origins' writes are covered.
  const stable = { p1: 1e9, p2: 1e9, p3: 1e9 }
  for (const step of steps) {
    if (step.kind === 'entries') pending.push(store.applyEncoded(step.raws, resolver, 'append'))
    else if (step.kind === 'collect') pending.push(store.collect(step.keys, stable))
    else if (step.kind === 'merge') pending.push(store.merge(step.records))
    else {
      await Promise.all(pending)
      pending.length = 0
    }
  }
  await Promise.all(pending)
}

async function stateOf(store: Store) {
  const records: Record<string, unknown> = {}
  for (const k of KEYS) records[k] = await store.getRecord(k)
  return { records, digest: store.keys?.digest.hex, counts: store.keys?.counts, keyCount: store.keyCount }
}

/** The digest made from the store's records as they are on disk. */
async function digestFromRecords(store: Store): Promise<string> {
  const data = (store as unknown as { data: { get(key: Buffer): Promise<Buffer | undefined> } }).data
  const digest = new ConvergenceDigest()
  for (const k of KEYS) {
    const raw = await data.get(Buffer.from(k))
    if (raw !== undefined) digest.change(Buffer.from(k), undefined, raw)
  }
  return digest.hex
}

describe('store: LwwHeads against other writers of the same keys', () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    it(`seed ${seed}: collections, merges and expiring writes leave the same state as a store that reads every record`, async () => {
      const steps = script(seed, 400)
      const withHeads = await openLww('heads', 100_000)
      const reading = await openLww('reading', 0)
      await run(withHeads, steps)
      await run(reading, steps)
      expect(withHeads.headStats.hits).toBeGreaterThan(0)
      expect(reading.headStats.hits).toBe(0)
      expect(await stateOf(withHeads)).toEqual(await stateOf(reading))
      expect(withHeads.keys?.digest.hex).toBe(await digestFromRecords(withHeads))
    })
  }
})
