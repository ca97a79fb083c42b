import type { Store } from './store.js'

/**
 * For tests of a write that fails mid-commit: the store's next LevelDB
 * batch waits, when written, until the returned `fail` is called, then
 * throws an IO error, as a disk that goes away under a group commit would.
 * Later batches are LevelDB's own again.
 */
export function failNextBatch(store: Store): () => void {
  const db = (store as unknown as { db: { batch: () => { write: (o: unknown) => Promise<void> } } }).db
  const realBatch = db.batch
  let fail!: () => void
  const failing = new Promise<void>((resolve) => (fail = resolve))
  db.batch = function (this: unknown) {
    db.batch = realBatch
    const batch = realBatch.call(this)
    batch.write = async () => {
      await failing
      throw new Error('IO error: the disk went away')
    }
    return batch
  }
  return fail
}
