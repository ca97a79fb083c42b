import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LwwResolver } from '../multimaster/lww.js'
import { VclockResolver } from '../multimaster/vclock.js'
import { readForApply } from './entry-scan.js'
import { failNextBatch } from './failing-batch.js'
import { type EntryOp, encodeEntry, type LogEntry, OP_DEL, OP_PUT } from './log-entry.js'
import type { ConflictResolver } from './resolver.js'
import { Store } from './store.js'

/**
 * Pipelined group commit on a multi-master node: a group is read, resolved
 * and built while the one before it is written. Rule: every write resolves
 * against what the group before leaves (which LevelDB does not show yet),
 * so the node ends as it would had each group waited: the same records,
 * digest and counts as the same log applied one group at a time.
 */

let dir: string
let stores: Store[] = []

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tandem-pipelined-multi-test-'))
})

afterEach(async () => {
  await Promise.all(stores.map((s) => s.close()))
  stores = []
  rmSync(dir, { recursive: true, force: true })
})

type Conflict = 'lww' | 'vclock'

async function openMulti(name: string, conflict: Conflict, multiPipelinedCommit: number): Promise<Store> {
  const store = await Store.open({
    dataDir: join(dir, name),
    sync: 'always',
    logRetention: 100_000,
    mode: 'multi',
    conflict,
    multiPipelinedCommit,
  })
  store.resolver = resolverOf(conflict)
  stores.push(store)
  return store
}

function resolverOf(conflict: Conflict): ConflictResolver {
  return conflict === 'lww' ? new LwwResolver() : new VclockResolver(16)
}

const turn = () => new Promise((r) => setImmediate(r))

/** Every entry of a store's log, as written there. */
async function logOf(store: Store): Promise<Buffer[]> {
  const out: Buffer[] = []
  for await (const [, raw] of store.log.read(1)) out.push(raw)
  return out
}

/** The same log applied to an empty store that does not pipeline, a frame at a time, each awaited. */
async function replay(raws: Buffer[], name: string, conflict: Conflict): Promise<Store> {
  const ref = await openMulti(name, conflict, 0)
  for (let i = 0; i < raws.length; i += 7) {
    await ref.applyRemote(raws.slice(i, i + 7).map(readForApply), ref.resolver as ConflictResolver, 'append')
  }
  expect(ref.commitStats.overlapped).toBe(0)
  return ref
}

const KEYS = Array.from({ length: 12 }, (_, i) => `k${i}`)

/** What the two stores hold, key by key and in total, to compare. */
async function stateOf(store: Store) {
  const records: Record<string, unknown> = {}
  for (const key of KEYS) records[key] = await store.getRecord(key)
  return {
    records,
    digest: store.keys?.digest.hex,
    counts: store.keys?.counts,
    keyCount: store.keyCount,
    lastSeq: store.lastSeq,
  }
}

describe('store: pipelined group commit on a multi-master node (--sync always)', () => {
  for (const conflict of ['lww', 'vclock'] as const) {
    it(`${conflict}: resolves local writes and peers' entries against the group being written, as if each group had waited`, async () => {
      const store = await openMulti(`piped-${conflict}`, conflict, 1)
      const resolver = store.resolver as ConflictResolver
      const pending: Promise<unknown>[] = []
      const counters = { p: 0, q: 0 }
      /** LWW: per key, the greatest (hlc, origin, counter) written and its value (undefined: deleted). */
      const model = new Map<string, { hlc: number; origin: string; value: string | undefined }>()
      const see = (key: string, hlc: number, origin: string, value: string | undefined) => {
        const had = model.get(key)
        // Equal stamps of one origin: its later write wins (the greater counter; seen here in counter order).
        if (had === undefined || hlc > had.hlc || (hlc === had.hlc && origin >= had.origin)) {
          model.set(key, { hlc, origin, value })
        }
      }
      /**
       * vclock: per key, how many values it holds, from the writes in the order they were submitted (the
       * committer takes them in that order): a put adds one (blind: it replaces nothing; a local one past the
       * cap of 16 drops the oldest), a local delete removes every value the node holds then (the group being
       * written included), a peer's delete (no context) none. 0: a tombstone.
       */
      const held = new Map<string, number>()
      const deadline = Date.now() + 30_000
      for (let t = 0; t < 80 || (store.commitStats.overlapped < 10 && Date.now() < deadline); t++) {
        // A run of local puts and deletes on a few keys.
        const ops: EntryOp[] = []
        for (let i = 0; i < 3; i++) {
          const key = KEYS[(t * 5 + i * 3) % KEYS.length]
          ops.push((t + i) % 4 === 0 ? [OP_DEL, key] : [OP_PUT, key, `local ${t}.${i}`])
          held.set(key, (t + i) % 4 === 0 ? 0 : Math.min((held.get(key) ?? 0) + 1, 16))
        }
        pending.push(
          store.writeEachWithIdentity(ops).then((results) => {
            results.forEach((r, i) => {
              if (r instanceof Error) throw r
              const op = ops[i]
              see(op[1], r.hlc, r.origin, op[0] === OP_PUT ? (op[2] as string) : undefined)
            })
          }),
        )
        // A frame from a peer on the same keys, stamped around this node's clock: some win, some lose.
        const origin = t % 2 === 0 ? 'p' : 'q'
        const frame: Buffer[] = []
        for (let i = 0; i < 2; i++) {
          const key = KEYS[(t * 7 + i) % KEYS.length]
          const hlc = (Date.now() + ((t * 13 + i * 29) % 9) - 4) * 1024
          const value = (t + i) % 5 === 0 ? undefined : `${origin} ${t}.${i}`
          const op: LogEntry['ops'][number] = value === undefined ? [OP_DEL, key] : [OP_PUT, key, value]
          const originSeq = ++counters[origin]
          frame.push(encodeEntry({ seq: 999, epoch: 9, origin, originSeq, hlc, ops: [op] }))
          see(key, hlc, origin, value)
          held.set(key, (held.get(key) ?? 0) + (value === undefined ? 0 : 1))
        }
        pending.push(store.applyEncoded(frame, resolver, 'append'))
        await turn()
      }
      await Promise.all(pending)
      expect(store.commitStats.overlapped).toBeGreaterThan(0)
      expect(store.vv.get('p')).toBe(counters.p)
      expect(store.vv.get('q')).toBe(counters.q)

      const raws = await logOf(store)
      expect(raws.length).toBe(store.lastSeq)
      const ref = await replay(raws, `ref-${conflict}`, conflict)
      const piped = await stateOf(store)
      expect(piped).toEqual(await stateOf(ref))
      if (conflict === 'lww') {
        for (const key of KEYS) expect(await store.get(key)).toBe(model.get(key)?.value)
        expect(piped.counts?.tombstones).toBe([...model.values()].filter((m) => m.value === undefined).length)
      } else {
        // Not the LWW model: under vclock a blind put (local or a peer's) is kept beside the values before it.
        for (const key of KEYS) {
          const body = (await store.getRecord(key))?.body
          expect({ key, values: body?.kind === 'siblings' ? body.siblings.length : body?.kind }).toEqual({
            key,
            values: held.get(key),
          })
        }
        expect(piped.counts?.tombstones).toBe([...held.values()].filter((n) => n === 0).length)
      }

      // What it persisted with its last group is what it held.
      await store.close()
      stores = stores.filter((s) => s !== store)
      const again = await openMulti(`piped-${conflict}`, conflict, 1)
      expect(await stateOf(again)).toEqual(piped)
    })
  }

  // Rule: a group built on one that fails is built again on what the store
  // then holds; nothing of the failed group counts in the digest or counts.
  it('builds the group again, digest and counts too, when the write it was built on fails', async () => {
    const store = await openMulti('failure', 'lww', 1)
    const resolver = store.resolver as ConflictResolver
    await store.writeEachWithIdentity([[OP_PUT, 'k0', 'first']])
    const fail = failNextBatch(store)
    const lost = store.writeEachWithIdentity([
      [OP_DEL, 'k0'],
      [OP_PUT, 'k1', 'lost'],
    ])
    const outcome = lost.then(
      () => 'written',
      (err: Error) => err.message,
    )
    await turn()
    await turn()
    // Built on the failing group: a peer's put of k1 that loses to nothing there, and a local put of k2.
    const hlc = (Date.now() + 1) * 1024
    const peer = store.applyEncoded(
      [encodeEntry({ seq: 999, epoch: 9, origin: 'p', originSeq: 1, hlc, ops: [[OP_PUT, 'k1', 'peer']] })],
      resolver,
      'append',
    )
    const local = store.writeEachWithIdentity([[OP_PUT, 'k2', 'local']])
    const deadline = Date.now() + 10_000
    while (store.commitStats.overlapped === 0 && Date.now() < deadline) await turn()
    expect(store.commitStats.overlapped).toBe(1)
    fail()
    expect(await outcome).toContain('the disk went away')
    await Promise.all([peer, local])
    expect(await store.get('k0')).toBe('first')
    expect(await store.get('k1')).toBe('peer')
    expect(await store.get('k2')).toBe('local')
    expect(store.vv.get(store.origin)).toBe(2)
    expect(store.keys?.counts.tombstones).toBe(0)
    const ref = await replay(await logOf(store), 'failure-ref', 'lww')
    expect(await stateOf(store)).toEqual(await stateOf(ref))
  })
})
