import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { prng as rng } from '@tandem/protocol'
import { afterEach, beforeEach, expect, it } from 'vitest'
import type { LwwResolver } from '../multimaster/lww.js'
import { ConvergenceDigest } from './convergence.js'
import { failNextBatch } from './failing-batch.js'
import { type EntryOp, OP_DEL, OP_PUT } from './log-entry.js'
import { type LwwHeads, UNKNOWN } from './lww-heads.js'
import { openLwwStore } from './lww-store.js'
import { isLiveRecord, isTombstoneRecord, writeRecord } from './record.js'
import type { Store } from './store.js'
import { TextBytes } from './text-bytes.js'

/**
 * Rule: whatever LwwHeads holds for a key is the key's stored record: its
 * header (tag, flags, version) and its digest term, or no record for a key
 * it holds as absent. A client put and a peer's entry write the entry their
 * key's lookup found (a ticket, checked by a stamp every swap and clear
 * moves), so a ticket that named another key's entry, or a stale
 * generation's, would leave a key holding another write's version here
 * while its record says otherwise. Checked key by key after every round
 * of a seeded mix, on heads of 4 to 16 keys (generations swap every few
 * writes): runs of client puts and deletes with the same key more than
 * once in a run, single writes, puts that expire and their expiry, peer
 * entries in frames of 1 to 9, merged records, tombstone collections, and
 * groups whose batch fails while later ones are built on them; with --sync
 * always groups are pipelined; then on a node that joins from a snapshot
 * and writes on. At the end, the digest kept write by write is the digest
 * made anew from the records, and the key count theirs.
 */

let dir: string
const open: Store[] = []

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tandem-lww-tickets-test-'))
})

afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()))
  rmSync(dir, { recursive: true, force: true })
})

async function openLww(name: string, lwwHeadKeys: number, sync: 'none' | 'always'): Promise<Store> {
  const store = await openLwwStore(join(dir, name), { sync, logRetention: 1_000_000, lwwHeadKeys })
  open.push(store)
  return store
}

const KEYS = Array.from({ length: 24 }, (_, i) => (i % 7 === 3 ? `k${i}é` : `k${i}`))

function randomValue(random: () => number, round: number): string | Buffer | TextBytes {
  const r = random()
  if (r < 0.4) return `v${round}-${Math.floor(random() * 1e6)}`
  if (r < 0.55) return `nœud-${round}-${'𝄞'.repeat(Math.floor(random() * 3))}`
  if (r < 0.7) return new TextBytes(Buffer.from(`tb-é-${round}`))
  if (r < 0.85) return Buffer.from([0xff, round & 0xff, Math.floor(random() * 256)])
  return ''
}

function randomOp(random: () => number, round: number, now: number): EntryOp {
  const key = KEYS[Math.floor(random() * KEYS.length)]
  const r = random()
  if (r < 0.2) return [OP_DEL, key]
  // Expiring: some already past (expire() deletes them), some far off.
  if (r < 0.3) return [OP_PUT, key, randomValue(random, round), { x: random() < 0.5 ? now - 1000 : now + 3_600_000 }]
  return [OP_PUT, key, randomValue(random, round)]
}

interface Inner {
  heads: LwwHeads | null
  dataPrefix: Buffer
  data: { get(key: Buffer): Promise<Buffer | undefined> }
}

/** Every key LwwHeads holds against its stored record; returns how many it held. */
async function checkHeads(store: Store, label: string): Promise<number> {
  const inner = store as unknown as Inner
  const heads = inner.heads as LwwHeads
  let held = 0
  for (const k of KEYS) {
    const userKey = Buffer.from(k)
    const name = Buffer.concat([inner.dataPrefix, userKey]).toString('latin1')
    const head = heads.lookup(name)
    if (head === UNKNOWN) continue
    held++
    const record = await inner.data.get(userKey)
    const where = `${label}: key ${k}`
    if (head === undefined) {
      expect(record, `${where} held as absent`).toBeUndefined()
      continue
    }
    expect(record, `${where} held with a record`).toBeDefined()
    const stored = record as Buffer
    const bodyAt = 6 + 17 + head[22]
    expect(stored.subarray(0, 2).toString('hex'), `${where}: tag and flags`).toBe(head.subarray(0, 2).toString('hex'))
    expect(stored.subarray(6, bodyAt).toString('hex'), `${where}: version`).toBe(
      head.subarray(6, bodyAt).toString('hex'),
    )
    expect(isTombstoneRecord(head), `${where}: tombstone`).toBe(isTombstoneRecord(stored))
    expect(isLiveRecord(head), `${where}: live`).toBe(isLiveRecord(stored))
    const fromStub = new ConvergenceDigest()
    fromStub.change(userKey, undefined, head)
    const fromRecord = new ConvergenceDigest()
    fromRecord.change(userKey, undefined, stored)
    expect(fromStub.hex, `${where}: digest term`).toBe(fromRecord.hex)
  }
  return held
}

/** The digest and live key count made from the store's records as they are in LevelDB. */
async function fromRecords(store: Store): Promise<{ digest: string; live: number }> {
  const inner = store as unknown as Inner
  const digest = new ConvergenceDigest()
  let live = 0
  for (const k of KEYS) {
    const raw = await inner.data.get(Buffer.from(k))
    if (raw === undefined) continue
    digest.change(Buffer.from(k), undefined, raw)
    if (isLiveRecord(raw)) live++
  }
  return { digest: digest.hex, live }
}

const swallow = (p: Promise<unknown>): Promise<unknown> => p.catch((err: Error) => err)

/**
 * Every entry of `from`'s log, applied on `to` as a peer's frames of 1 to 9
 * entries, not awaited (those `to` holds are skipped; a frame lost with a
 * failed batch is sent again the next time).
 */
async function ship(from: Store, to: Store, random: () => number, pending: Promise<unknown>[]): Promise<void> {
  const raws: Buffer[] = []
  for await (const [, raw] of from.log.read(1)) raws.push(raw)
  for (let i = 0; i < raws.length; ) {
    const n = 1 + Math.floor(random() * 9)
    pending.push(swallow(to.applyEncoded(raws.slice(i, i + n), to.resolver as LwwResolver, 'append')))
    i += n
  }
}

for (const [seed, headKeys, sync] of [
  [1, 4, 'none'],
  [2, 8, 'always'],
  [3, 16, 'none'],
  [4, 4, 'always'],
  [5, 8, 'none'],
  [6, 16, 'always'],
] as const) {
  it(`seed ${seed}, heads of ${headKeys} keys, --sync ${sync}: every key LwwHeads holds is its stored record`, async () => {
    const random = rng(seed)
    const a = await openLww('a', headKeys, sync)
    const b = await openLww('b', headKeys, sync)
    let held = 0
    let merged = 0
    for (let round = 0; round < 60; round++) {
      const pending: Promise<unknown>[] = []
      const now = Date.now()
      let fail: ReturnType<typeof failNextBatch> | null = null
      for (let i = 0; i < 12; i++) {
        const store = random() < 0.6 ? a : b
        const r = random()
        if (fail === null && r < 0.04) {
          // The next batch written fails; groups built on it meanwhile are built again.
          fail = failNextBatch(store)
        }
        if (r < 0.5) {
          const ops: EntryOp[] = []
          const n = 1 + Math.floor(random() * 6)
          for (let j = 0; j < n; j++) ops.push(randomOp(random, round, now))
          // The same key twice in one run: its second op's lookup found the first's entry.
          if (n > 1 && random() < 0.5) {
            const again = ops[Math.floor(random() * n)][1]
            ops.push(random() < 0.3 ? [OP_DEL, again] : [OP_PUT, again, randomValue(random, round)])
          }
          pending.push(swallow(store.writeEachWithIdentity(ops)))
        } else if (r < 0.75) {
          pending.push(swallow(store.writeWithIdentity([randomOp(random, round, now)])))
        } else if (r < 0.85) {
          pending.push(swallow(store.expire(KEYS.filter(() => random() < 0.3))))
        } else if (r < 0.92) {
          const k = KEYS[Math.floor(random() * KEYS.length)]
          const version = { hlc: (now - Math.floor(random() * 2000)) * 1024, counter: ++merged, origin: 'p3' }
          const record =
            random() < 0.3
              ? writeRecord({ version, body: { kind: 'tombstone' } })
              : writeRecord({ version, body: { kind: 'value', value: `merged ${round}` } })
          pending.push(swallow(store.merge([[Buffer.from(k), record]])))
        } else {
          const keys = KEYS.filter(() => random() < 0.5).map((k) => Buffer.from(k))
          pending.push(swallow(store.collect(keys, { [a.nodeId]: 1e9, [b.nodeId]: 1e9, p3: 1e9 })))
        }
        if (random() < 0.3) await new Promise((r) => setImmediate(r))
      }
      if (random() < 0.6) {
        await ship(a, b, random, pending)
        await ship(b, a, random, pending)
      }
      if (fail !== null) {
        await new Promise((r) => setImmediate(r))
        ;(fail as ReturnType<typeof failNextBatch>)()
      }
      await Promise.all(pending.map(swallow))
      // A round whose writes on that store all missed LevelDB leaves no failing batch to the next (or to close()).
      ;(fail as ReturnType<typeof failNextBatch> | null)?.disarm()
      held += await checkHeads(a, `seed ${seed} round ${round} a`)
      held += await checkHeads(b, `seed ${seed} round ${round} b`)
    }
    // A third node joins from a's snapshot (chunks of a few keys), then takes writes of its own and b's entries.
    await Promise.all([a.idle(), b.idle()])
    const c = await openLww('c', headKeys, sync)
    const snapshot = a.snapshot()
    await c.beginFullSync()
    for await (const { chunk, count } of snapshot.chunks(5, 4096)) await c.applySnapshotChunk(chunk, count)
    await c.finishFullSync(await snapshot.seq, a.history, { hlc: Date.now() * 1024, vv: a.committedVv })
    await snapshot.close()
    expect(c.keys?.digest.hex).toBe((await fromRecords(a)).digest)
    for (let round = 0; round < 10; round++) {
      const pending: Promise<unknown>[] = []
      const now = Date.now()
      for (let i = 0; i < 8; i++) {
        const ops: EntryOp[] = []
        for (let j = 1 + Math.floor(random() * 4); j > 0; j--) ops.push(randomOp(random, 100 + round, now))
        pending.push(swallow(random() < 0.5 ? c.writeEachWithIdentity(ops) : c.writeWithIdentity(ops.slice(0, 1))))
      }
      await ship(b, c, random, pending)
      await Promise.all(pending)
      held += await checkHeads(c, `seed ${seed} after the snapshot, round ${round}`)
    }
    expect(held).toBeGreaterThan(100)
    for (const store of [a, b, c]) {
      const made = await fromRecords(store)
      expect(store.keys?.digest.hex).toBe(made.digest)
      expect(store.keyCount).toBe(made.live)
    }
    expect(a.headStats.hits).toBeGreaterThan(0)
    expect(b.headStats.hits).toBeGreaterThan(0)
  }, 120_000)
}
