import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { OP_PUT } from './log-entry.js'
import { Store } from './store.js'

let dir: string
let stores: Store[] = []

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tandem-pipelined-conditions-'))
})

afterEach(async () => {
  await Promise.all(stores.map((s) => s.close()))
  stores = []
  rmSync(dir, { recursive: true, force: true })
})

const turn = () => new Promise((resolve) => setImmediate(resolve))

describe('store: conditions of writes that join a group (pipelined, --sync always)', () => {
  // Rule: a group that takes writes in several reads checks each write's
  // conditions against the key's record, as a group read at once does
  // ("read records win over PRESENT"): a key an earlier read of the group
  // only knew to exist (a write refused) must not stand for its record.
  it('checks a later write’s ifSeq against the record, not against an earlier read that only knew the key exists', async () => {
    const store = await Store.open({
      dataDir: join(dir, 'conditions'),
      sync: 'always',
      logRetention: 1000,
      pipelinedCommit: 1,
    })
    stores.push(store)
    const k2At = await store.write([[OP_PUT, 'k2', 'x']])
    await store.write([[OP_PUT, 'k1', 'a']])
    // The next batch's write is held until released: the group after it is built meanwhile.
    const db = (store as unknown as { db: { batch: () => { write: (o: unknown) => Promise<void> } } }).db
    const realBatch = db.batch
    let release!: () => void
    const released = new Promise<void>((resolve) => (release = resolve))
    db.batch = function (this: unknown) {
      db.batch = realBatch
      const batch = realBatch.call(this)
      const write = batch.write.bind(batch)
      batch.write = async (options: unknown) => {
        await released
        return write(options)
      }
      return batch
    }
    const held = store.write([[OP_PUT, 'start', 's']])
    await turn()
    // Read first: k2 known to exist (presence), its write refused (k1 is not absent).
    const refused = store.write([[OP_PUT, 'k2', 'y']], [{ key: 'k1', ifAbsent: true }]).then(
      () => 'written',
      (err: { code?: string }) => err.code,
    )
    await turn()
    await turn()
    // Joins the same group in a read of its own: k2's record says seq k2At.
    const conditional = store.write([[OP_PUT, 'k2', 'z']], [{ key: 'k2', ifSeq: k2At }]).then(
      (seq) => seq,
      (err: Error) => err.message,
    )
    const deadline = Date.now() + 10_000
    while (store.commitStats.overlapped === 0 && Date.now() < deadline) await turn()
    for (let i = 0; i < 5; i++) await turn()
    release()
    await held
    expect(store.commitStats.overlapped).toBe(1)
    expect(await refused).toBe('CONFLICT')
    expect(typeof (await conditional)).toBe('number')
    expect(await store.get('k2')).toBe('z')
  })
})
