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

/**
 * Holds the store's next batch until `release`, and makes the one after
 * it fail once written when `failSecond` is set; counts batches handed to
 * LevelDB (`started`) and the most written at once.
 */
function holdBatches(store: Store, failSecond: boolean) {
  const db = (store as unknown as { db: { batch: () => HeldBatch } }).db
  const realBatch = db.batch
  const state = { started: 0, inFlight: 0, mostInFlight: 0 }
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  db.batch = function (this: unknown) {
    const batch = realBatch.call(this)
    const write = batch.write.bind(batch)
    batch.write = async (options: unknown) => {
      const n = ++state.started
      state.mostInFlight = Math.max(state.mostInFlight, ++state.inFlight)
      try {
        if (n === 1) await released
        if (n === 2 && failSecond) {
          await turn()
          throw new Error('IO error: the disk went away')
        }
        await write(options)
      } finally {
        state.inFlight--
      }
    }
    return batch
  }
  return { state, release }
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
    // Every batch from here on is counted while LevelDB writes it; the first is held until released.
    const { state, release } = holdBatches(store, false)
    const held = store.write([[OP_PUT, 'k', '1']])
    const deadline = Date.now() + 10_000
    while (state.started === 0 && Date.now() < deadline) await turn()
    expect(state.started).toBe(1)
    // Ten writes of the same key, in two turns: all join the group built on the held one.
    const later: Promise<number>[] = []
    for (let i = 2; i <= 6; i++) later.push(store.write([[OP_PUT, 'k', String(i)]]))
    await turn()
    for (let i = 7; i <= 11; i++) later.push(store.write([[OP_PUT, 'k', String(i)]]))
    while (store.commitStats.overlapped === 0 && Date.now() < deadline) await turn()
    expect(store.commitStats.overlapped).toBe(1)
    // That group is built; it gets many turns in which it could be handed over.
    for (let i = 0; i < 50 && state.started < 2; i++) await turn()
    expect(state.started).toBe(1)
    release()
    expect(await held).toBe(2)
    expect(await Promise.all(later)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    expect(state.started).toBe(2)
    expect(state.mostInFlight).toBe(1)
    expect(await store.get('k')).toBe('11')
    const seqs: number[] = []
    for await (const [seq] of store.log.read(1)) seqs.push(seq)
    expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
  })
})

describe('store: a written group hands the one built on it over before its bookkeeping (--sync always)', () => {
  const open = (name: string, handOverFirst: number | undefined) =>
    Store.open({ dataDir: join(dir, name), sync: 'always', logRetention: 1000, pipelinedCommit: 1, handOverFirst })

  // Rule: a group built on one being written that fails before it ever
  // waits for that write (here LevelDB refusing a new batch) still lets
  // the written group finish: its write is answered, with no later write
  // needed to carry its bookkeeping.
  it('answers the written group when the group built on it throws before waiting for it (handOverFirst 1)', async () => {
    const store = await open('throws-early', 1)
    stores.push(store)
    await store.write([[OP_PUT, 'old', '0']])
    const { state, release } = holdBatches(store, false)
    const db = (store as unknown as { db: { batch: () => HeldBatch } }).db
    const counted = db.batch
    let calls = 0
    db.batch = function (this: unknown) {
      if (++calls === 2) throw new Error('Database is not open')
      return counted.call(this)
    }
    const held = store.write([[OP_PUT, 'a', '1']])
    const deadline = Date.now() + 10_000
    while (state.started === 0 && Date.now() < deadline) await turn()
    const refused = store.write([[OP_PUT, 'b', '2']]).then(
      () => 'written',
      (err: Error) => err.message,
    )
    while (calls < 2 && Date.now() < deadline) await turn()
    expect(calls).toBe(2)
    expect(await refused).toBe('Database is not open')
    release()
    let timer: NodeJS.Timeout | undefined
    const unanswered = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve('not answered'), 10_000)
    })
    const answer = await Promise.race([held, unanswered])
    clearTimeout(timer)
    expect(answer).toBe(2)
    expect(await store.write([[OP_PUT, 'c', '3']])).toBe(3)
    expect(await store.get('a')).toBe('1')
    expect(await store.get('b')).toBeUndefined()
    expect(store.keyCount).toBe(3)
  })

  // Rule: once a group's batch is written, the group built on it goes to
  // LevelDB before the written one's bookkeeping (presence, the log's
  // tail, commit listeners) and answers; the next batch carries the key
  // count as the written group left it, and answers keep their order.
  // Rule: by default (no handOverFirst given) the written group does its
  // bookkeeping before the group built on it is handed over, as with 0.
  for (const handOverFirst of [1, 0, undefined]) {
    it(`hands the next group over ${handOverFirst ? 'before' : 'after'} the written one's commit is told (handOverFirst ${handOverFirst ?? 'default'})`, async () => {
      const name = `first-${handOverFirst ?? 'default'}`
      let store = await open(name, handOverFirst)
      stores.push(store)
      await store.write([[OP_PUT, 'old', '0']])
      const { state, release } = holdBatches(store, false)
      /** Batches handed to LevelDB when each commit was told, by seq, and when each write was answered. */
      const toldAt = new Map<number, number>()
      store.onCommit((seq) => toldAt.set(seq, state.started))
      const answered: string[] = []
      const put = (key: string) =>
        store.write([[OP_PUT, key, key]]).then((seq) => {
          answered.push(key)
          return seq
        })
      const held = put('a')
      const deadline = Date.now() + 10_000
      while (state.started === 0 && Date.now() < deadline) await turn()
      // New keys and one the held group adds: the next group's key count is on top of the held one's.
      const later = [put('b'), put('c'), put('a')]
      await turn()
      later.push(put('d'))
      while (store.commitStats.overlapped === 0 && Date.now() < deadline) await turn()
      expect(store.commitStats.overlapped).toBe(1)
      // 'd' is in the group being built before the held one is let go: released first, that group may
      // end its build (its reads still on the thread pool) without taking 'd', which then forms a third.
      const committer = (store as unknown as { committer: { queued: number } }).committer
      while (committer.queued > 0 && Date.now() < deadline) await turn()
      expect(committer.queued).toBe(0)
      release()
      expect(await held).toBe(2)
      expect(await Promise.all(later)).toEqual([3, 4, 5, 6])
      expect(answered).toEqual(['a', 'b', 'c', 'a', 'd'])
      expect(state.mostInFlight).toBe(1)
      // The held group's commit was told once the group built on it was handed over (or before).
      expect(toldAt.get(2)).toBe(handOverFirst ? 2 : 1)
      expect(toldAt.get(6)).toBe(2)
      expect(store.keyCount).toBe(5)
      expect(await store.countKeys()).toBe(5)
      await store.close()
      stores = stores.filter((s) => s !== store)
      // The count each batch stored: the last one's holds both groups' new keys.
      store = await open(name, handOverFirst)
      stores.push(store)
      expect(store.keyCount).toBe(5)
      expect(store.lastSeq).toBe(6)
    })
  }

  // Rule: a failed group fails its own writes, and nothing after it is
  // answered as if it succeeded: the group before it stands (its answers
  // and counts), the group built on the failed one is built again.
  it('answers the written group and fails only the group built on it when that one fails', async () => {
    const store = await open('second-fails', 1)
    stores.push(store)
    await store.write([[OP_PUT, 'old', '0']])
    const { state, release } = holdBatches(store, true)
    const held = store.write([[OP_PUT, 'a', '1']])
    const deadline = Date.now() + 10_000
    while (state.started === 0 && Date.now() < deadline) await turn()
    const failing = [store.write([[OP_PUT, 'b', '2']]), store.write([[OP_PUT, 'a', '2']])].map((p) =>
      p.then(
        () => 'written',
        (err: Error) => err.message,
      ),
    )
    while (store.commitStats.overlapped === 0 && Date.now() < deadline) await turn()
    release()
    expect(await held).toBe(2)
    while (state.started < 2 && Date.now() < deadline) await turn()
    // Built on the group being written (the failing one), then built again once it fails.
    const after = store.write([[OP_PUT, 'c', '3']])
    expect(await Promise.all(failing)).toEqual(['IO error: the disk went away', 'IO error: the disk went away'])
    expect(await after).toBe(3)
    expect(await store.get('a')).toBe('1')
    expect(await store.get('b')).toBeUndefined()
    expect(store.keyCount).toBe(3)
    expect(await store.countKeys()).toBe(3)
    const seqs: number[] = []
    for await (const [seq] of store.log.read(1)) seqs.push(seq)
    expect(seqs).toEqual([1, 2, 3])
  })
})
