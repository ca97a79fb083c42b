import type { Store } from './store.js'

/**
 * For tests of a write that fails mid-commit: the store's next LevelDB
 * batch waits, when written, until the returned `fail` is called, then
 * throws an IO error, as a disk that goes away under a group commit would.
 * Later batches are LevelDB's own again. `disarm()` gives the store its own
 * batches back when no batch was taken since: a test whose writes may not
 * reach LevelDB at all (a random mix) leaves no failing batch to its next
 * round or to the store's close.
 */
export function failNextBatch(store: Store): (() => void) & { disarm: () => void } {
  const db = (store as unknown as { db: { batch: () => { write: (o: unknown) => Promise<void> } } }).db
  const realBatch = db.batch
  let fail!: () => void
  const failing = new Promise<void>((resolve) => (fail = resolve))
  const armed = function (this: unknown) {
    db.batch = realBatch
    const batch = realBatch.call(this)
    batch.write = async () => {
      await failing
      throw new Error('IO error: the disk went away')
    }
    return batch
  }
  db.batch = armed
  return Object.assign(() => fail(), {
    disarm: () => {
      if (db.batch === armed) db.batch = realBatch
    },
  })
}
