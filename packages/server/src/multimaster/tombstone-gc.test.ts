import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { OP_DEL, OP_PUT } from '../storage/log-entry.js'
import { packChunk } from '../storage/snapshot-chunk.js'
import { Store } from '../storage/store.js'
import type { VersionVectorObject } from '../storage/version-vector.js'
import { createLogger } from '../util/logger.js'
import { LwwResolver } from './lww.js'
import type { StabilityTracker } from './stability.js'
import { TombstoneCollector } from './tombstone-gc.js'

/**
 * A collection pass reads the tombstone index only when it may hold
 * something: once a round has read it empty from its start, passes read
 * nothing until a group puts a tombstone into it (or the store's tracker
 * is made anew), and a tombstone put meanwhile is still found and
 * collected once stable.
 */

const dirs: string[] = []
const stores: Store[] = []

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

async function openStore(): Promise<Store> {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-tombstone-gc-'))
  dirs.push(dir)
  const store = await Store.open({ dataDir: dir, sync: 'none', logRetention: 100_000, mode: 'multi', conflict: 'lww' })
  store.resolver = new LwwResolver()
  stores.push(store)
  return store
}

async function setUp() {
  const store = await openStore()
  // Every write is stable at once: this node is the only member (a test may add origins).
  const stableVv: VersionVectorObject = { [store.origin]: Number.MAX_SAFE_INTEGER }
  const stability = {
    stable: (): { vv: VersionVectorObject } => ({ vv: stableVv }),
    waitingFor: () => null,
  } as unknown as StabilityTracker
  // A pass that fails logs a warning and answers 0, as one that found nothing: every test requires none.
  const warnings: string[] = []
  const logger = createLogger({ level: 'warn', format: 'json', write: (line) => warnings.push(line) })
  const collector = new TombstoneCollector(store, stability, logger, 60_000, 1000)
  const tombs = store.keys!.tombs
  const open = tombs.iterator.bind(tombs)
  const reads = { count: 0 }
  tombs.iterator = ((...args: Parameters<typeof open>) => {
    reads.count++
    return open(...args)
  }) as typeof tombs.iterator
  return { store, collector, reads, warnings, stableVv }
}

describe('TombstoneCollector', () => {
  it('reads an index found empty again only after a tombstone is put, and collects that one', async () => {
    const { store, collector, reads, warnings } = await setUp()
    for (let i = 0; i < 20; i++) await store.write([[OP_PUT, `k${i}`, 'v']])
    for (let i = 0; i < 5; i++) expect(await collector.pass()).toBe(0)
    expect(reads.count).toBe(1)
    expect(collector.stats.passes).toBe(5)

    await store.write([[OP_DEL, 'k3']])
    expect(store.keys!.counts.tombstones).toBe(1)
    expect(await collector.pass()).toBe(1)
    expect(reads.count).toBe(2)
    expect(store.keys!.counts.tombstones).toBe(0)
    expect(await store.getRecord('k3')).toBeUndefined()

    // The round that collected it read one: the next reads the index again, finds it empty, and the rest read nothing.
    for (let i = 0; i < 4; i++) expect(await collector.pass()).toBe(0)
    expect(reads.count).toBe(3)

    // Puts alone leave it unread; a delete among them is found.
    for (let i = 0; i < 20; i++) await store.write([[OP_PUT, `k${i}`, 'w']])
    expect(await collector.pass()).toBe(0)
    expect(reads.count).toBe(3)
    await store.write([
      [OP_PUT, 'k1', 'x'],
      [OP_DEL, 'k2'],
    ])
    expect(await collector.pass()).toBe(1)
    expect(reads.count).toBe(4)
    expect(collector.stats.collected).toBe(2)
    expect(warnings).toEqual([])
  })

  it('collects on the next pass a tombstone whose group was written while a pass read the index empty', async () => {
    const { store, collector, reads, warnings } = await setUp()
    for (let i = 0; i < 5; i++) await store.write([[OP_PUT, `k${i}`, 'v']])
    // The next read of the index finds it empty, and only then, before the pass ends, a delete's group is written.
    const tombs = store.keys!.tombs
    const counted = tombs.iterator.bind(tombs)
    let during: (() => Promise<unknown>) | null = () => store.write([[OP_DEL, 'k3']])
    tombs.iterator = ((...args: Parameters<typeof counted>) => {
      const real = counted(...args)
      const write = during
      if (write === null) return real
      during = null
      return (async function* () {
        const read: unknown[] = []
        for await (const entry of real) read.push(entry)
        await write()
        yield* read
      })()
    }) as unknown as typeof tombs.iterator
    expect(await collector.pass()).toBe(0)
    expect(during).toBeNull()
    expect(reads.count).toBe(1)
    expect(store.keys!.counts.tombstones).toBe(1)
    // The index was read empty, but a tombstone was put since that read began: the next pass reads it again.
    expect(await collector.pass()).toBe(1)
    expect(reads.count).toBe(2)
    expect(store.keys!.counts.tombstones).toBe(0)
    expect(await store.getRecord('k3')).toBeUndefined()
    expect(warnings).toEqual([])
  })

  it('reads the index again once the store makes its tracker anew', async () => {
    const { store, collector, reads, warnings } = await setUp()
    expect(await collector.pass()).toBe(0)
    expect(await collector.pass()).toBe(0)
    expect(reads.count).toBe(1)
    // A new tracker over the same index (as a reload from disk makes): what it was found to hold no longer counts.
    const { KeyTracker } = await import('../storage/key-tracker.js')
    const old = store.keys!
    ;(store as unknown as { keys: unknown }).keys = new KeyTracker(old.tombs, old.digest, old.counts, old.maxSiblings)
    expect(await collector.pass()).toBe(0)
    expect(reads.count).toBe(2)
    expect(warnings).toEqual([])
  })

  it('reads the index again once a snapshot chunk holding a tombstone is written, though a pass found it empty while it was being written', async () => {
    const { store, collector, reads, warnings, stableVv } = await setUp()
    // A tombstone record as a peer's snapshot holds it: another store's, with the data prefix its keys have here.
    const source = await openStore()
    stableVv[source.origin] = Number.MAX_SAFE_INTEGER
    await source.write([[OP_PUT, 'gone', 'v']])
    await source.write([[OP_DEL, 'gone']])
    const db = (s: Store) =>
      (
        s as unknown as {
          db: { sublevel: (name: string) => { prefix: string }; get(k: Buffer): Promise<Buffer | undefined> }
        }
      ).db
    const prefix = Buffer.from(db(source).sublevel('data').prefix)
    const key = Buffer.concat([prefix, Buffer.from('gone')])
    const tombstone = (await db(source).get(key)) as Buffer
    expect(tombstone).toBeDefined()

    await store.beginFullSync()
    // The chunk's batch is held until let go: a pass runs while it is being written.
    const internals = store as unknown as { writeBatch: (batch: unknown, sync: boolean) => Promise<void> }
    const writeBatch = internals.writeBatch.bind(store)
    let release!: () => void
    const released = new Promise<void>((resolve) => (release = resolve))
    internals.writeBatch = async (batch, sync) => {
      internals.writeBatch = writeBatch
      await released
      return writeBatch(batch, sync)
    }
    await store.applySnapshotChunk(packChunk([[key, tombstone]], prefix.length), 1)
    expect(store.keys!.counts.tombstones).toBe(1)
    const before = reads.count
    expect(await collector.pass()).toBe(0)
    expect(reads.count).toBe(before + 1)
    release()
    await store.finishFullSync(2, [{ epoch: 1, startSeq: 1, by: source.origin }], {
      hlc: source.hlc.peek(),
      vv: source.vv.toObject(),
    })
    expect(await collector.pass()).toBe(1)
    expect(reads.count).toBe(before + 2)
    expect(store.keys!.counts.tombstones).toBe(0)
    expect(warnings).toEqual([])
  })
})
