import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LwwResolver } from '../multimaster/lww.js'
import { OP_DEL, OP_PUT } from './log-entry.js'
import { Store } from './store.js'

/**
 * Rule: a data dir whose persisted digest sums are of the older hash
 * (SHA-256, meta key `digest`; see convergence.ts) gets its digest made
 * anew from its records at the first open by this build, persisted under
 * `digest2` in place of the old sums: the same digest a store that
 * hashed every change with this build's hash holds.
 */

let dir: string
let stores: Store[] = []

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tandem-digest-rebuild-test-'))
})

afterEach(async () => {
  await Promise.all(stores.map((s) => s.close()))
  stores = []
  rmSync(dir, { recursive: true, force: true })
})

async function open(): Promise<Store> {
  const store = await Store.open({
    dataDir: join(dir, 'd'),
    sync: 'none',
    logRetention: 100_000,
    mode: 'multi',
    conflict: 'lww',
  })
  store.resolver = new LwwResolver()
  stores.push(store)
  return store
}

async function close(store: Store): Promise<void> {
  await store.close()
  stores = stores.filter((s) => s !== store)
}

/** The store's LevelDB and meta key names, for what an older build left on disk. */
function raw(store: Store) {
  const inner = store as unknown as {
    db: {
      get(key: Buffer): Promise<Buffer | undefined>
      batch(): { put(k: Buffer, v: Buffer): void; del(k: Buffer): void; write(): Promise<void> }
    }
    metaPrefix: Buffer
  }
  const key = (name: string) => Buffer.concat([inner.metaPrefix, Buffer.from(name)])
  return { db: inner.db, oldKey: key('digest'), newKey: key('digest2') }
}

describe('store: a digest persisted with the older hash', () => {
  it('is made anew from the records at open, once, equal to the digest kept write by write', async () => {
    const store = await open()
    for (let i = 0; i < 60; i++) await store.writeWithIdentity([[OP_PUT, `k${i % 40}`, `v${i}`]])
    for (let i = 0; i < 10; i++) await store.writeWithIdentity([[OP_DEL, `k${i * 3}`]])
    const digest = store.keys?.digest.hex
    const counts = store.keys?.counts
    expect(counts?.tombstones).toBe(10)
    expect(store.digestRebuiltKeys).toBeNull()

    // What an older build leaves: its sums (whatever they are) under `digest`, none under `digest2`.
    const { db, oldKey, newKey } = raw(store)
    const batch = db.batch()
    batch.put(oldKey, Buffer.alloc(2048, 0x5a))
    batch.del(newKey)
    await batch.write()
    await close(store)

    const upgraded = await open()
    // 40 keys, 10 of them tombstones: every record is read.
    expect(upgraded.digestRebuiltKeys).toBe(40)
    expect(upgraded.keys?.digest.hex).toBe(digest)
    expect(upgraded.keys?.counts).toEqual(counts)
    const after = raw(upgraded)
    expect(await after.db.get(after.oldKey)).toBeUndefined()
    expect(await after.db.get(after.newKey)).toBeDefined()
    // Writes go on from the rebuilt sums.
    await upgraded.writeWithIdentity([[OP_PUT, 'k0', 'again']])
    const moved = upgraded.keys?.digest.hex
    expect(moved).not.toBe(digest)
    await close(upgraded)

    const again = await open()
    expect(again.digestRebuiltKeys).toBeNull()
    expect(again.keys?.digest.hex).toBe(moved)
  })

  // Rule: sums of the older hash beside `digest2` mean an older build wrote
  // last (a node downgraded, then upgraded again): it kept `digest` and
  // left `digest2` as this build last wrote it, without its own writes.
  it('is made anew when an older build wrote after this one (its sums beside stale digest2)', async () => {
    const store = await open()
    for (let i = 0; i < 20; i++) await store.writeWithIdentity([[OP_PUT, `k${i}`, `v${i}`]])
    const { db, oldKey, newKey } = raw(store)
    const before = await db.get(newKey)
    expect(before).toBeDefined()
    // The writes of the older build: this build's digest follows them, its digest2 on disk must not.
    for (let i = 10; i < 30; i++) await store.writeWithIdentity([[OP_PUT, `k${i}`, `w${i}`]])
    for (let i = 0; i < 5; i++) await store.writeWithIdentity([[OP_DEL, `k${i}`]])
    const digest = store.keys?.digest.hex
    const batch = db.batch()
    batch.put(newKey, before as Buffer)
    batch.put(oldKey, Buffer.alloc(2048, 0x5a))
    await batch.write()
    await close(store)

    const upgraded = await open()
    expect(upgraded.digestRebuiltKeys).toBe(30)
    expect(upgraded.keys?.digest.hex).toBe(digest)
    const after = raw(upgraded)
    expect(await after.db.get(after.oldKey)).toBeUndefined()
  })

  it('is not made anew for a new data dir', async () => {
    const store = await open()
    expect(store.digestRebuiltKeys).toBeNull()
    expect(store.keys?.digest.hex).toBe('0000000000000000')
  })
})

/** The meta keys each batch handed to LevelDB from now on puts, batch by batch. */
function watchPuts(store: Store): Buffer[][] {
  const inner = store as unknown as { db: { batch(...args: unknown[]): { put(k: Buffer, v: Buffer): unknown } } }
  const seen: Buffer[][] = []
  const batch = inner.db.batch.bind(inner.db)
  inner.db.batch = (...args: unknown[]) => {
    const made = batch(...args)
    if (args.length > 0) return made
    const keys: Buffer[] = []
    seen.push(keys)
    const put = made.put.bind(made)
    made.put = (k: Buffer, v: Buffer) => {
      keys.push(Buffer.from(k))
      return put(k, v)
    }
    return made
  }
  return seen
}

describe('store: the key counts (tombstones, keys with concurrent values)', () => {
  // Rule: a group whose keys change no count (puts over keys that were
  // neither tombstones nor held concurrent values) leaves the persisted
  // counts as they are; one that changes them writes them.
  it('are written by a group that changes them only, and read back at open as kept write by write', async () => {
    const store = await open()
    const countsKey = Buffer.concat([(store as unknown as { metaPrefix: Buffer }).metaPrefix, Buffer.from('keys')])
    const writesCounts = (batches: Buffer[][]) => batches.some((keys) => keys.some((k) => k.equals(countsKey)))
    for (let i = 0; i < 30; i++) await store.writeWithIdentity([[OP_PUT, `k${i}`, `v${i}`]])
    let batches = watchPuts(store)
    for (let i = 0; i < 30; i++) await store.writeWithIdentity([[OP_PUT, `k${i}`, `w${i}`]])
    expect(batches.length).toBeGreaterThan(0)
    expect(writesCounts(batches)).toBe(false)

    batches = watchPuts(store)
    await store.writeWithIdentity([[OP_DEL, 'k3']])
    expect(writesCounts(batches)).toBe(true)
    batches = watchPuts(store)
    await store.writeWithIdentity([[OP_PUT, 'k4', 'again']])
    expect(writesCounts(batches)).toBe(false)
    // A tombstone written over: the count goes down, and is written.
    batches = watchPuts(store)
    await store.writeWithIdentity([[OP_PUT, 'k3', 'back']])
    expect(writesCounts(batches)).toBe(true)
    for (let i = 10; i < 15; i++) await store.writeWithIdentity([[OP_DEL, `k${i}`]])
    await store.writeWithIdentity([[OP_PUT, 'k20', 'last']])
    const counts = store.keys?.counts
    expect(counts?.tombstones).toBe(5)
    await close(store)

    const again = await open()
    expect(again.keys?.counts).toEqual(counts)
  })
})
