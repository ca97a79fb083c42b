import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { prng as rng } from '@tandem/protocol'
import { Level } from 'level'
import { afterEach, beforeEach, expect, it } from 'vitest'
import type { LwwResolver } from '../multimaster/lww.js'
import { type EntryOp, OP_DEL, OP_PUT } from './log-entry.js'
import { type LwwHeads, UNKNOWN } from './lww-heads.js'
import { openLwwStore } from './lww-store.js'
import { isLiveRecord, recordVersion } from './record.js'
import type { Store } from './store.js'
import { TextBytes } from './text-bytes.js'

/**
 * Rule: on last-writer-wins nodes, a client's put (built in place by
 * versionPutRecord, its digest span and LwwHeads version taken as built)
 * and the same write applied from a peer's entry (utf8LwwRecord, its span
 * named by the resolver) leave the same record bytes and the same digest
 * term; and the digest kept write by write is the digest made anew from the
 * records (Store.rebuildDigest, which reads every record's span back).
 * Values of every shape: ASCII, multi-byte and lone-surrogate strings,
 * TextBytes, binary, empty, and over the digest's scratch (70,000 bytes);
 * a heads table of 16 keys, so most writes replace records LwwHeads knows
 * as stubs and its generations swap often. Every key LwwHeads holds at the
 * end has its record's version (a client's put and a peer's value both
 * hand theirs to it as given, LwwHeads.setValue).
 */

let dir: string
const open: Store[] = []

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tandem-lww-paths-test-'))
})

afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()))
  rmSync(dir, { recursive: true, force: true })
})

async function openLww(name: string): Promise<Store> {
  const store = await openLwwStore(join(dir, name), { sync: 'none', logRetention: 1_000_000, lwwHeadKeys: 16 })
  open.push(store)
  return store
}

async function close(store: Store): Promise<void> {
  open.splice(open.indexOf(store), 1)
  await store.close()
}

function randomValue(random: () => number): string | Buffer | TextBytes {
  const r = random()
  const n = Math.floor(random() * 1e6)
  if (r < 0.2) return `ascii-${n}`
  if (r < 0.35) return `nœud-é-${'𝄞'.repeat(n % 5)}`
  if (r < 0.45) return `lone-\ud800-${n}`
  if (r < 0.6) return new TextBytes(Buffer.from(`text-bytes-é-${n}`))
  if (r < 0.75) return Buffer.from([0xff, 0xfe, n & 0xff])
  if (r < 0.8) return 'x'.repeat(70_000 + (n % 10))
  return r < 0.9 ? '' : Buffer.alloc(0)
}

/** Every entry of `from`'s log after `after`, applied on `to` as a peer's frames of 17. */
async function ship(from: Store, to: Store, after: number): Promise<number> {
  const raws: Buffer[] = []
  for await (const [, raw] of from.log.read(after + 1)) raws.push(raw)
  for (let i = 0; i < raws.length; i += 17) {
    await to.applyEncoded(raws.slice(i, i + 17), to.resolver as LwwResolver, 'append')
  }
  return from.lastSeq
}

/** Every data record of a closed store, as key=record in hex, from its LevelDB. */
async function records(name: string): Promise<string[]> {
  const db = new Level<Buffer, Buffer>(join(dir, name, 'db'), { keyEncoding: 'buffer', valueEncoding: 'buffer' })
  await db.open()
  const out: string[] = []
  for await (const [key, record] of db.iterator({ gte: Buffer.from('!data!'), lt: Buffer.from('!data"') })) {
    out.push(`${key.toString('hex')}=${record.toString('hex')}`)
  }
  await db.close()
  return out
}

/** How many of `keys` the store's LwwHeads holds, each checked against its record: the same version, value or tombstone. */
async function headsMatchRecords(store: Store, keys: string[]): Promise<number> {
  const inner = store as unknown as {
    heads: LwwHeads
    dataPrefix: Buffer
    db: { get(key: Buffer): Promise<Buffer | undefined> }
  }
  let held = 0
  for (const key of keys) {
    const full = Buffer.concat([inner.dataPrefix, Buffer.from(key)])
    const head = inner.heads.lookup(full.toString('latin1'))
    if (head === UNKNOWN) continue
    held++
    const record = await inner.db.get(full)
    if (head === undefined) {
      expect(record).toBeUndefined()
      continue
    }
    expect(record).toBeDefined()
    expect([key, recordVersion(head), isLiveRecord(head)]).toEqual([
      key,
      recordVersion(record as Buffer),
      isLiveRecord(record as Buffer),
    ])
  }
  return held
}

/** Reopens a store as after an older build's write (sums under `digest`): its digest is made anew from its records. */
async function rebuilt(store: Store, name: string): Promise<string | undefined> {
  const inner = store as unknown as {
    db: { put(key: Buffer, value: Buffer): Promise<void> }
    metaPrefix: Buffer
  }
  await inner.db.put(Buffer.concat([inner.metaPrefix, Buffer.from('digest')]), Buffer.alloc(2048, 0x5a))
  await close(store)
  const again = await openLww(name)
  expect(again.digestRebuiltKeys).toBeGreaterThan(0)
  const digest = again.keys?.digest.hex
  await close(again)
  return digest
}

it.each([1, 2, 3])(
  'client puts and peer entries leave the same records and digest, equal to the digest made anew (seed %i)',
  async (seed) => {
    const random = rng(seed)
    const a = await openLww('a')
    const b = await openLww('b')
    let shippedA = 0
    let shippedB = 0
    for (let round = 0; round < 30; round++) {
      const writes: Promise<unknown>[] = []
      for (let i = 0; i < 40; i++) {
        const store = random() < 0.5 ? a : b
        const key = `k${Math.floor(random() * 60)}${random() < 0.1 ? 'é' : ''}`
        const op: EntryOp = random() < 0.15 ? [OP_DEL, key] : [OP_PUT, key, randomValue(random)]
        writes.push(store.writeWithIdentity([op]))
      }
      await Promise.all(writes)
      if (random() < 0.7) {
        shippedA = await ship(a, b, shippedA)
        shippedB = await ship(b, a, shippedB)
      }
    }
    await ship(a, b, shippedA)
    await ship(b, a, shippedB)
    const names = Array.from({ length: 60 }, (_, i) => [`k${i}`, `k${i}é`]).flat()
    // b took a's last entries from the log, a b's: most of what each holds came from the other.
    expect(await headsMatchRecords(a, names)).toBeGreaterThan(0)
    expect(await headsMatchRecords(b, names)).toBeGreaterThan(0)
    const digest = a.keys?.digest.hex
    expect(b.keys?.digest.hex).toBe(digest)
    expect(await rebuilt(a, 'a')).toBe(digest)
    expect(await rebuilt(b, 'b')).toBe(digest)
    const held = await records('a')
    expect(held.length).toBeGreaterThan(30)
    expect(await records('b')).toEqual(held)
  },
  60_000,
)
