import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { failNextBatch } from './failing-batch.js'
import { decodeEntry, OP_DEL, OP_PUT } from './log-entry.js'
import { packChunk } from './snapshot-chunk.js'
import { Store } from './store.js'

let dir: string
let stores: Store[] = []

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tandem-pipelined-presence-'))
})

afterEach(async () => {
  await Promise.all(stores.map((s) => s.close()))
  stores = []
  rmSync(dir, { recursive: true, force: true })
})

const turn = () => new Promise((resolve) => setImmediate(resolve))

describe('store: key presence across writes that join a group (--sync always)', () => {
  // Rule: the key count is exact. A group built while the one before it is
  // written takes the writes of several turns, each read on its own; what
  // the group leaves for EVERY key it wrote must be what the presence cache
  // remembers, or the next write of a key it forgot counts it again.
  // A small cache swaps its generations between the joins: a lookup's ticket is then stale.
  for (const presenceKeys of [100_000, 12]) {
    it(`keeps the key count exact when keys deleted, then put by several joins of one group, are put again (presence cache ${presenceKeys})`, async () => {
      const store = await Store.open({
        dataDir: join(dir, `joins-${presenceKeys}`),
        sync: 'always',
        logRetention: 100_000,
        presenceKeys,
        pipelinedCommit: 1,
      })
      stores.push(store)
      // Groups built during the write before (a store that pipelines counts them; else 40 rounds).
      const overlapped = () => (store.commitStats as { overlapped?: number }).overlapped ?? Number.POSITIVE_INFINITY
      const deadline = Date.now() + 60_000
      for (let rounds = 0; rounds < 40 || (overlapped() < 20 && Date.now() < deadline); rounds++) {
        const keys = Array.from({ length: 8 }, (_, i) => `r${rounds % 5}-k${i}`)
        // Known absent to the presence cache (a group wrote each as deleted).
        await Promise.all(keys.map((key) => store.write([[OP_DEL, key]])))
        // One write to start a group, then a key a turn: the group built during
        // its write takes them in as many joins as turns pass meanwhile.
        const puts: Promise<number>[] = [store.write([[OP_PUT, `r${rounds}-start`, 's']])]
        for (const key of keys) {
          await turn()
          puts.push(store.write([[OP_PUT, key, 'a']]))
        }
        await Promise.all(puts)
        // Each key exists now: putting it again must not count it again.
        await Promise.all(keys.map((key) => store.write([[OP_PUT, key, 'b']])))
        expect(store.keyCount).toBe(await store.countKeys())
      }
      // The log holds every write once, in seq order, however many joins packed its groups' blocks.
      const raws = await store.log.readBatch(1, 1_000_000, 1024 * 1024 * 1024)
      expect(raws.map((raw) => decodeEntry(raw).seq)).toEqual(Array.from({ length: store.lastSeq }, (_, i) => i + 1))
    })
  }
})

describe('store: key presence from an empty data dir', () => {
  /** Counts the store's reads of LevelDB records, on the event loop and on the thread pool. */
  function countReads(store: Store): { reads: number } {
    const db = (store as unknown as { db: Record<string, (...args: unknown[]) => unknown> }).db
    const counter = { reads: 0 }
    for (const method of ['getSync', 'get', 'getMany', 'hasMany', 'has']) {
      const real = db[method]
      db[method] = function (this: unknown, ...args: unknown[]) {
        counter.reads += Array.isArray(args[0]) ? args[0].length : 1
        return real.apply(this, args)
      }
    }
    return counter
  }

  const openAt = async (name: string) => {
    const store = await Store.open({ dataDir: join(dir, name), sync: 'always', logRetention: 100_000 })
    stores.push(store)
    return store
  }

  // Rule: the key count is exact. A store that opened with no data record
  // knows the keys it has not written are absent (store.test.ts), until
  // keys may exist that no group of its wrote: a full sync's, or those of a
  // group whose write failed (LevelDB may have taken it whole). Those are read.
  it('reads the keys a full sync brought, though the store opened empty', async () => {
    const store = await openAt('empty-then-synced')
    await store.write([[OP_PUT, 'before', 'x']])
    const db = (store as unknown as { db: { sublevel: (name: string) => { prefix: string } } }).db
    const prefix = Buffer.from(db.sublevel('data').prefix)
    await store.beginFullSync()
    const records = Array.from({ length: 50 }, (_, i): [Buffer, Buffer] => [
      Buffer.concat([prefix, Buffer.from(`s${i}`)]),
      Buffer.from([0, ...Buffer.from(`value-${i}`)]),
    ])
    await store.applySnapshotChunk(packChunk(records, prefix.length), 50)
    await store.finishFullSync(50, [{ epoch: 1, startSeq: 1, by: 'up' }], { hlc: 5000 * 1024, vv: { up: 50 } })
    const counted = countReads(store)
    await Promise.all(Array.from({ length: 60 }, (_, i) => store.write([[OP_PUT, `s${i}`, 'y']])))
    expect(counted.reads).toBe(60)
    expect(store.keyCount).toBe(60)
    expect(await store.countKeys()).toBe(60)
  })

  it('reads the keys of a group whose write failed, though the store opened empty', async () => {
    const store = await openAt('empty-then-failed')
    await store.write([[OP_PUT, 'first', 'x']])
    const fail = failNextBatch(store)
    const failed = Promise.allSettled(['f0', 'f1', 'f2'].map((key) => store.write([[OP_PUT, key, 'x']])))
    fail()
    const settled = await failed
    expect(settled.every((s) => s.status === 'rejected')).toBe(true)
    const counted = countReads(store)
    await Promise.all(['f0', 'f1', 'f2', 'first'].map((key) => store.write([[OP_PUT, key, 'y']])))
    // The cache let go of what it held: the failed group's keys are read, and 'first' too.
    expect(counted.reads).toBe(4)
    expect(store.keyCount).toBe(4)
    expect(await store.countKeys()).toBe(4)
  })
})
