import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { OP_PUT } from './log-entry.js'
import { Store } from './store.js'

let dir: string
let stores: Store[] = []

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tandem-pipelined-order-'))
})

afterEach(async () => {
  await Promise.all(stores.map((s) => s.close()))
  stores = []
  rmSync(dir, { recursive: true, force: true })
})

const turn = () => new Promise((resolve) => setImmediate(resolve))

interface HeldBatch {
  write: (options: unknown) => Promise<void>
}

describe('store: the order in which pipelined groups reach LevelDB (--sync always)', () => {
  // Rule: a group built while the one before it is written is handed to
  // LevelDB only once that write is done, never beside it. Two batch
  // writes in flight at once run on two threads of the pool, and LevelDB
  // queues writers in the order they take its lock, not the order they
  // were handed over: the later group could land first (a key's older
  // value over its newer one, the stored lastSeq going back).
  it('hands no group to LevelDB while the group it was built on is being written', async () => {
    const store = await Store.open({
      dataDir: join(dir, 'order'),
      sync: 'always',
      logRetention: 1000,
      pipelinedCommit: 1,
    })
    stores.push(store)
    await store.write([[OP_PUT, 'k', '0']])
    const db = (store as unknown as { db: { batch: () => HeldBatch } }).db
    const realBatch = db.batch
    let started = 0
    let inFlight = 0
    let mostInFlight = 0
    let release!: () => void
    const released = new Promise<void>((resolve) => (release = resolve))
    // Every batch from here on is counted while LevelDB writes it; the first is held until released.
    db.batch = function (this: unknown) {
      const batch = realBatch.call(this)
      const write = batch.write.bind(batch)
      batch.write = async (options: unknown) => {
        const first = ++started === 1
        mostInFlight = Math.max(mostInFlight, ++inFlight)
        try {
          if (first) await released
          await write(options)
        } finally {
          inFlight--
        }
      }
      return batch
    }
    const held = store.write([[OP_PUT, 'k', '1']])
    const deadline = Date.now() + 10_000
    while (started === 0 && Date.now() < deadline) await turn()
    expect(started).toBe(1)
    // Ten writes of the same key, in two turns: all join the group built on the held one.
    const later: Promise<number>[] = []
    for (let i = 2; i <= 6; i++) later.push(store.write([[OP_PUT, 'k', String(i)]]))
    await turn()
    for (let i = 7; i <= 11; i++) later.push(store.write([[OP_PUT, 'k', String(i)]]))
    while (store.commitStats.overlapped === 0 && Date.now() < deadline) await turn()
    expect(store.commitStats.overlapped).toBe(1)
    // That group is built; it gets many turns in which it could be handed over.
    for (let i = 0; i < 50 && started < 2; i++) await turn()
    expect(started).toBe(1)
    release()
    expect(await held).toBe(2)
    expect(await Promise.all(later)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    expect(started).toBe(2)
    expect(mostInFlight).toBe(1)
    expect(await store.get('k')).toBe('11')
    const seqs: number[] = []
    for await (const [seq] of store.log.read(1)) seqs.push(seq)
    expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
  })
})
