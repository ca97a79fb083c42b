import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { decodeEntry, OP_DEL, OP_PUT } from './log-entry.js'
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
