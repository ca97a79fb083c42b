import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LwwResolver } from '../multimaster/lww.js'
import { ConvergenceDigest, lastTermHigh, lastTermLow } from './convergence.js'
import { readForApply } from './entry-scan.js'
import { failNextBatch } from './failing-batch.js'
import { type EntryOp, encodeEntry, OP_DEL, OP_PUT } from './log-entry.js'
import { isStub, LwwHeads, NO_HEAD_TICKET, UNKNOWN } from './lww-heads.js'
import { openLwwStore } from './lww-store.js'
import {
  isLiveRecord,
  isTombstoneRecord,
  recordExpiresAt,
  recordHlc,
  recordVersion,
  sealRecord,
  siblingCountOf,
  versionPutRecord,
  versionRecord,
  writeRecord,
} from './record.js'
import { Store } from './store.js'
import { TextBytes } from './text-bytes.js'

/**
 * LwwHeads keeps, for recently written keys of a last-writer-wins node,
 * what resolving the next write and keeping the digest need, and hands it
 * to a group as a stub record. Rules: a stub reads as the record it stands
 * for wherever a header is read, and carries its digest term; a record of
 * any other shape leaves the key unknown; a store that uses it ends with
 * the same records, digest and counts as one that reads every record, a
 * failed group included.
 */

const key = Buffer.from('user-key')
const name = (k: string) => `d!${k}`

function termOf(record: Buffer): [number, number] {
  new ConvergenceDigest().change(key, undefined, record)
  return [lastTermHigh(), lastTermLow()]
}

/** The digest of one key going from `before` to nothing. */
function removed(before: Buffer): string {
  const d = new ConvergenceDigest()
  d.change(key, before, undefined)
  return d.hex
}

const version = { hlc: 7_000_000_123, counter: 42, origin: 'node-a' }
const sealed = (r: Buffer) => sealRecord(key, 0, r)

describe('LwwHeads', () => {
  const kept: [string, Buffer][] = [
    ['a string value', versionRecord(version, Buffer.from('hello'), false, key) as Buffer],
    ['a binary value', versionRecord(version, Buffer.from([0xff, 0, 1]), true, key) as Buffer],
    ['an empty value', versionRecord(version, Buffer.alloc(0), false, key) as Buffer],
    ['a tombstone', versionRecord(version, null, false, key) as Buffer],
    ['a long origin', versionRecord({ ...version, origin: 'o'.repeat(200) }, Buffer.from('v'), false, key) as Buffer],
  ]
  for (const [what, record] of kept) {
    it(`hands back ${what} as a stub that reads as the record and carries its digest term`, () => {
      const heads = new LwwHeads(16)
      const [high, low] = termOf(record)
      heads.set(name('k'), record, high, low)
      const stub = heads.lookup(name('k'))
      if (stub === UNKNOWN || stub === undefined) throw new Error('not known')
      expect(isStub(stub)).toBe(true)
      expect(isStub(record)).toBe(false)
      // A record whose checksum field happens to be 0, as a stub's is, is still not one.
      const zeroSum = Buffer.from(record)
      zeroSum.fill(0, 2, 6)
      expect(isStub(zeroSum)).toBe(false)
      expect(recordVersion(stub)).toEqual(recordVersion(record))
      expect(recordHlc(stub)).toBe(recordHlc(record))
      expect(isLiveRecord(stub)).toBe(isLiveRecord(record))
      expect(isTombstoneRecord(stub)).toBe(isTombstoneRecord(record))
      expect(siblingCountOf(stub)).toBe(siblingCountOf(record))
      expect(recordExpiresAt(stub)).toBe(recordExpiresAt(record))
      // The digest sees the stub as the record: removing either leaves the same sums.
      expect(removed(stub)).toBe(removed(record))
      expect(heads.hits).toBe(1)
    })
  }

  const unknown: [string, Buffer][] = [
    ['a value with an expiry', sealed(writeRecord({ version, expiresAt: 9e12, body: { kind: 'value', value: 'v' } }))],
    ['an unsealed value', writeRecord({ version, body: { kind: 'value', value: 'v' } })],
    ['a value with a modification seq', sealed(writeRecord({ modSeq: 3, body: { kind: 'value', value: 'v' } }))],
    ['a plain value', Buffer.from([0, 0x61])],
    [
      'siblings',
      sealed(
        writeRecord({
          body: { kind: 'siblings', siblings: [{ ...version, value: 'v' }], context: { 'node-a': 42 } },
        }),
      ),
    ],
  ]
  for (const [what, record] of unknown) {
    it(`leaves a key holding ${what} unknown, also where it knew the key before`, () => {
      const heads = new LwwHeads(16)
      const before = kept[0][1]
      heads.set(name('k'), before, ...termOf(before))
      heads.set(name('k'), record, ...termOf(record))
      expect(heads.lookup(name('k'))).toBe(UNKNOWN)
    })
  }

  it("takes a client put's version as given (setValue) as it takes the record versionPutRecord builds for it (set)", () => {
    for (const origin of ['node-a', 'ünï-node', 'o'.repeat(200)]) {
      const record = versionPutRecord(version.hlc, version.counter, origin, 'hello', key, 0)
      const [high, low] = termOf(record)
      const fromRecord = new LwwHeads(16)
      fromRecord.set(name('k'), record, high, low)
      const given = new LwwHeads(16)
      // Another origin first, then this one twice: the origin numbers it remembers are each one's own.
      given.setValue(name('other'), NO_HEAD_TICKET, 5, 1, 'node-z', 1, 2)
      given.setValue(name('k'), NO_HEAD_TICKET, version.hlc + 1, 1, origin, 3, 4)
      given.setValue(name('k'), NO_HEAD_TICKET, version.hlc, version.counter, origin, high, low)
      expect(given.lookup(name('k'))).toEqual(fromRecord.lookup(name('k')))
      expect(recordVersion(given.lookup(name('other')) as Buffer)).toEqual({ hlc: 5, counter: 1, origin: 'node-z' })
      // A record of another shape over it leaves the key unknown, as set() does.
      given.set(name('k'), sealed(writeRecord({ version, expiresAt: 9e12, body: { kind: 'value', value: 'v' } })), 0, 0)
      expect(given.lookup(name('k'))).toBe(UNKNOWN)
    }
  })

  it("writes a client put in place by its lookup's ticket while nothing moved, and by name after a swap or a clear", () => {
    const heads = new LwwHeads(4)
    const versionOf = (k: string) => recordVersion(heads.lookup(name(k)) as Buffer)
    heads.setValue(name('a'), NO_HEAD_TICKET, 1, 1, 'node-a', 1, 1)
    heads.lookup(name('a'))
    const ticket = heads.lastTicket
    expect(ticket).not.toBe(NO_HEAD_TICKET)
    heads.setValue(name('a'), ticket, 2, 2, 'node-a', 2, 2)
    expect(versionOf('a')).toEqual({ hlc: 2, counter: 2, origin: 'node-a' })
    expect(heads.size).toBe(1)
    // 'b' fills the generation (2 keys): it swaps out, and 'c' takes the entry 'a' had in the new one.
    heads.setValue(name('b'), NO_HEAD_TICKET, 3, 3, 'node-a', 3, 3)
    heads.setValue(name('c'), NO_HEAD_TICKET, 4, 4, 'node-b', 4, 4)
    // The stale ticket names that entry: 'a' is set by name, 'c' keeps its own version.
    heads.setValue(name('a'), ticket, 5, 5, 'node-a', 5, 5)
    expect(versionOf('c')).toEqual({ hlc: 4, counter: 4, origin: 'node-b' })
    expect(versionOf('a')).toEqual({ hlc: 5, counter: 5, origin: 'node-a' })
    // A key found only in the older generation, or not at all, gives no ticket.
    heads.lookup(name('b'))
    expect(heads.lastTicket).toBe(NO_HEAD_TICKET)
    heads.lookup(name('never'))
    expect(heads.lastTicket).toBe(NO_HEAD_TICKET)
    // After a clear, a ticket taken before it is set by name too.
    heads.lookup(name('c'))
    const beforeClear = heads.lastTicket
    heads.clear()
    heads.setValue(name('d'), NO_HEAD_TICKET, 6, 6, 'node-a', 6, 6)
    heads.setValue(name('c'), beforeClear, 7, 7, 'node-b', 7, 7)
    expect(versionOf('d')).toEqual({ hlc: 6, counter: 6, origin: 'node-a' })
    expect(versionOf('c')).toEqual({ hlc: 7, counter: 7, origin: 'node-b' })
  })

  it("writes a peer's record (set) in place by its lookup's ticket while nothing moved, and by name after a swap or a clear", () => {
    const heads = new LwwHeads(4)
    const record = (hlc: number, origin: string) => versionPutRecord(hlc, hlc, origin, `v${hlc}`, key, 0)
    const put = (k: string, hlc: number, origin: string, ticket = NO_HEAD_TICKET) => {
      const r = record(hlc, origin)
      heads.set(name(k), r, ...termOf(r), ticket)
    }
    const versionOf = (k: string) => recordVersion(heads.lookup(name(k)) as Buffer)
    put('a', 1, 'node-a')
    heads.lookup(name('a'))
    const ticket = heads.lastTicket
    expect(ticket).not.toBe(NO_HEAD_TICKET)
    put('a', 2, 'node-a', ticket)
    expect(versionOf('a')).toEqual({ hlc: 2, counter: 2, origin: 'node-a' })
    expect(heads.size).toBe(1)
    // A tombstone by the ticket too: the key is known to hold no record.
    heads.lookup(name('a'))
    heads.set(name('a'), undefined, 0, 0, heads.lastTicket)
    expect(heads.lookup(name('a'))).toBeUndefined()
    expect(heads.size).toBe(1)
    // 'b' fills the generation (2 keys): it swaps out, and 'c' takes the entry 'a' had in the new one.
    put('b', 3, 'node-a')
    put('c', 4, 'node-b')
    // The stale ticket names that entry: 'a' is set by name, 'c' keeps its own record.
    put('a', 5, 'node-a', ticket)
    expect(versionOf('c')).toEqual({ hlc: 4, counter: 4, origin: 'node-b' })
    expect(versionOf('a')).toEqual({ hlc: 5, counter: 5, origin: 'node-a' })
    // After a clear, a ticket taken before it is set by name too.
    heads.lookup(name('c'))
    const beforeClear = heads.lastTicket
    heads.clear()
    put('d', 6, 'node-a')
    put('c', 7, 'node-b', beforeClear)
    expect(versionOf('d')).toEqual({ hlc: 6, counter: 6, origin: 'node-a' })
    expect(versionOf('c')).toEqual({ hlc: 7, counter: 7, origin: 'node-b' })
  })

  it('knows a key with no record as such, and nothing of keys never set', () => {
    const heads = new LwwHeads(16)
    heads.set(name('gone'), undefined, 0, 0)
    expect(heads.lookup(name('gone'))).toBeUndefined()
    expect(heads.lookup(name('never'))).toBe(UNKNOWN)
    heads.clear()
    expect(heads.lookup(name('gone'))).toBe(UNKNOWN)
  })

  it('holds at most its bound of keys, answering each it holds with its latest record', () => {
    const heads = new LwwHeads(10)
    const records = new Map<string, Buffer>()
    for (let i = 0; i < 200; i++) {
      const k = name(`k${i % 37}`)
      const record = versionRecord({ ...version, hlc: version.hlc + i, counter: i }, Buffer.from(`v${i}`), false, key)
      if (record === null) throw new Error('not UTF-8')
      heads.set(k, record, ...termOf(record))
      records.set(k, record)
      expect(heads.size).toBeLessThanOrEqual(10)
    }
    let known = 0
    for (const [k, record] of records) {
      const stub = heads.lookup(k)
      if (stub === UNKNOWN) continue
      known++
      expect(recordVersion(stub as Buffer)).toEqual(recordVersion(record))
      expect(removed(stub as Buffer)).toBe(removed(record))
    }
    expect(known).toBeGreaterThan(0)
    expect(heads.lookup(name('k-other'))).toBe(UNKNOWN)
  })

  it('answers a key never set as absent while complete, through a swap that drops nothing, and not after one that does', () => {
    const heads = new LwwHeads(4)
    heads.beginComplete()
    const record = kept[0][1]
    expect(heads.lookup(name('never'))).toBeUndefined()
    heads.set(name('a'), record, ...termOf(record))
    heads.set(name('b'), record, ...termOf(record))
    // The first swap moved a and b to the older generation and dropped nothing.
    expect(heads.lookup(name('never'))).toBeUndefined()
    expect(heads.lookup(name('a'))).not.toBe(UNKNOWN)
    heads.set(name('c'), record, ...termOf(record))
    heads.set(name('d'), record, ...termOf(record))
    // The second dropped a and b: a key not held may have a record now.
    expect(heads.lookup(name('a'))).toBe(UNKNOWN)
    expect(heads.lookup(name('never'))).toBe(UNKNOWN)
    heads.clear()
    heads.beginComplete()
    // Only an empty table may begin complete again, and a clear() does not.
    expect(heads.lookup(name('never'))).toBeUndefined()
    heads.set(name('e'), record, ...termOf(record))
    heads.clear()
    expect(heads.lookup(name('never'))).toBe(UNKNOWN)
  })

  it('is off with a bound of 0', () => {
    const heads = new LwwHeads(0)
    const record = kept[0][1]
    heads.set(name('k'), record, ...termOf(record))
    expect(heads.lookup(name('k'))).toBe(UNKNOWN)
  })
})

let dir: string
let stores: Store[] = []

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tandem-lww-heads-test-'))
})

afterEach(async () => {
  await Promise.all(stores.map((s) => s.close()))
  stores = []
  rmSync(dir, { recursive: true, force: true })
})

async function openLww(dirName: string, lwwHeadKeys: number, sync: 'always' | 'none'): Promise<Store> {
  const store = await openLwwStore(join(dir, dirName), { sync, logRetention: 100_000, lwwHeadKeys })
  stores.push(store)
  return store
}

const KEYS = Array.from({ length: 20 }, (_, i) => `k${i}`)

async function stateOf(store: Store, keys = KEYS) {
  const records: Record<string, unknown> = {}
  for (const k of keys) records[k] = await store.getRecord(k)
  return {
    records,
    digest: store.keys?.digest.hex,
    counts: store.keys?.counts,
    keyCount: store.keyCount,
  }
}

async function logOf(store: Store): Promise<Buffer[]> {
  const out: Buffer[] = []
  for await (const [, raw] of store.log.read(1)) out.push(raw)
  return out
}

/** The same log applied a few entries at a time to a store that reads every record (no heads). */
async function replayWithoutHeads(raws: Buffer[], dirName: string): Promise<Store> {
  const ref = await openLww(dirName, 0, 'none')
  for (let i = 0; i < raws.length; i += 5) {
    await ref.applyRemote(raws.slice(i, i + 5).map(readForApply), ref.resolver as LwwResolver, 'append')
  }
  expect(ref.headStats.hits).toBe(0)
  return ref
}

const turn = () => new Promise((r) => setImmediate(r))

describe('store: a client put under last-writer-wins', () => {
  it('logs the entry encodeEntry makes and stores the record of its version and value, for a string, its UTF-8 and bytes', async () => {
    const store = await openLww('bytes', 100_000, 'none')
    const values = ['plain', 'ünïcødé ✓ 𝄞', new TextBytes(Buffer.from('as utf-8')), Buffer.from([0, 0xff, 7])]
    const ops: EntryOp[] = values.map((v, i) => [OP_PUT, `b${i}`, v])
    // Each alone (writeEachWithIdentity), and once more as one write each (writeWithIdentity), over what they wrote.
    const each = await store.writeEachWithIdentity(ops)
    const alone = await Promise.all(ops.map((op) => store.writeWithIdentity([op])))
    const raws = await logOf(store)
    expect(raws).toHaveLength(ops.length * 2)
    for (const [i, result] of [...each, ...alone].entries()) {
      if (result instanceof Error) throw result
      const op = ops[i % ops.length]
      const { seq, origin, originSeq, hlc } = result
      expect(raws[seq - 1].equals(encodeEntry({ seq, epoch: store.epoch, origin, originSeq, hlc, ops: [op] }))).toBe(
        true,
      )
    }
    for (const [i, result] of alone.entries()) {
      const record = await store.getRecord(`b${i}`)
      const value = values[i]
      expect(record).toEqual({
        version: { hlc: result.hlc, counter: result.originSeq, origin: result.origin },
        body: { kind: 'value', value: value instanceof TextBytes ? value.toString() : value },
      })
    }
    const ref = await replayWithoutHeads(raws, 'ref')
    expect(await stateOf(store, ['b0', 'b1', 'b2', 'b3'])).toEqual(await stateOf(ref, ['b0', 'b1', 'b2', 'b3']))
  })
})

describe('store: last-writer-wins writes resolved from LwwHeads', () => {
  for (const [sync, bound] of [
    ['none', 100_000],
    ['none', 6],
    ['always', 100_000],
    ['always', 6],
  ] as const) {
    it(`--sync ${sync}, ${bound} keys kept: the same records, digest and counts as a store that reads them`, async () => {
      const store = await openLww('heads', bound, sync)
      const resolver = store.resolver as LwwResolver
      const pending: Promise<unknown>[] = []
      let peerSeq = 0
      for (let t = 0; t < 150; t++) {
        const ops: EntryOp[] = []
        for (let i = 0; i < 3; i++) {
          const k = KEYS[(t * 7 + i * 5) % KEYS.length]
          ops.push((t + i) % 5 === 0 ? [OP_DEL, k] : [OP_PUT, k, `local ${t}.${i}`])
        }
        pending.push(store.writeEachWithIdentity(ops))
        // A peer's entry on one key, stamped around this node's clock: some win, some lose.
        const k = KEYS[(t * 3) % KEYS.length]
        const hlc = (Date.now() + ((t * 13) % 9) - 4) * 1024
        const op: EntryOp = t % 4 === 0 ? [OP_DEL, k] : [OP_PUT, k, `peer ${t}`]
        const raw = encodeEntry({ seq: 999, epoch: 9, origin: 'peer', originSeq: ++peerSeq, hlc, ops: [op] })
        pending.push(store.applyEncoded([raw], resolver, 'append'))
        if (t % 3 === 0) await turn()
      }
      await Promise.all(pending)
      expect(store.headStats.hits).toBeGreaterThan(0)
      const ref = await replayWithoutHeads(await logOf(store), 'ref')
      expect(await stateOf(store)).toEqual(await stateOf(ref))
    })
  }

  // Rule: on a data dir that was empty when it opened, a key the heads do
  // not hold has no record (no read); on one that held records, it is read.
  it('reads no record for the first writes of keys on a new data dir, and reads them on one that held records', async () => {
    const store = await openLww('complete', 100_000, 'none')
    const resolver = store.resolver as LwwResolver
    for (let i = 0; i < 30; i++) await store.writeEachWithIdentity([[OP_PUT, `k${i % 20}`, `v${i}`]])
    expect(store.headStats).toMatchObject({ hits: 30, misses: 0 })
    // A peer's put stamped an hour ago, of a key this node wrote since: it loses here.
    const old = (Date.now() - 3_600_000) * 1024
    const stale = (originSeq: number, key: string) =>
      encodeEntry({ seq: 999, epoch: 9, origin: 'peer', originSeq, hlc: old, ops: [[OP_PUT, key, 'stale']] })
    await store.applyEncoded([stale(1, 'k3')], resolver, 'append')
    expect(await store.get('k3')).toBe('v23')
    await store.close()
    stores = stores.filter((s) => s !== store)

    const reopened = await openLww('complete', 100_000, 'none')
    await reopened.applyEncoded([stale(2, 'k4')], resolver, 'append')
    expect(await reopened.get('k4')).toBe('v24')
    expect(reopened.headStats).toMatchObject({ hits: 0, misses: 1 })
  })

  // Rule: a failed group's clear leaves the heads incomplete for good: the
  // keys written before it are read again, not taken for absent.
  for (const sync of ['none', 'always'] as const) {
    it(`--sync ${sync}: after a failed group on a new data dir, an old peer write of a key written before loses`, async () => {
      const store = await openLww('complete-failure', 100_000, sync)
      const resolver = store.resolver as LwwResolver
      await store.writeEachWithIdentity([
        [OP_PUT, 'k0', 'kept'],
        [OP_DEL, 'k1'],
      ])
      const fail = failNextBatch(store)
      const lost = store.writeEachWithIdentity([[OP_PUT, 'k2', 'lost']]).then(
        () => 'written',
        (err: Error) => err.message,
      )
      await turn()
      fail()
      expect(await lost).toContain('the disk went away')
      const old = (Date.now() - 3_600_000) * 1024
      await store.applyEncoded(
        [
          encodeEntry({ seq: 1, epoch: 1, origin: 'peer', originSeq: 1, hlc: old, ops: [[OP_PUT, 'k0', 'stale']] }),
          encodeEntry({ seq: 2, epoch: 1, origin: 'peer', originSeq: 2, hlc: old, ops: [[OP_PUT, 'k1', 'stale']] }),
        ],
        resolver,
        'append',
      )
      expect(await store.get('k0')).toBe('kept')
      expect(await store.get('k1')).toBeUndefined()
      expect(store.headStats.misses).toBe(2)
      expect(store.keys?.digest.hex).toBe(await digestFromRecords(store))
    })
  }

  // Rule: a snapshot joined into a new data dir (a peer's, Store.merge)
  // sets the heads of what it writes: the node stays complete, and what it
  // took from the snapshot is known, not taken for absent.
  it('on a new data dir that joins a snapshot, an old peer write of a merged key loses', async () => {
    const store = await openLww('complete-merge', 100_000, 'always')
    const resolver = store.resolver as LwwResolver
    const hlc = (Date.now() - 60_000) * 1024
    await store.merge([
      [
        Buffer.from('k0'),
        writeRecord({ version: { hlc, counter: 1, origin: 'p3' }, body: { kind: 'value', value: 'm' } }),
      ],
      [Buffer.from('k1'), writeRecord({ version: { hlc, counter: 2, origin: 'p3' }, body: { kind: 'tombstone' } })],
    ])
    const old = hlc - 3_600_000 * 1024
    await store.applyEncoded(
      [
        encodeEntry({ seq: 1, epoch: 1, origin: 'peer', originSeq: 1, hlc: old, ops: [[OP_DEL, 'k0']] }),
        encodeEntry({ seq: 2, epoch: 1, origin: 'peer', originSeq: 2, hlc: old, ops: [[OP_PUT, 'k1', 'stale']] }),
        encodeEntry({ seq: 3, epoch: 1, origin: 'peer', originSeq: 3, hlc: old, ops: [[OP_PUT, 'k2', 'new']] }),
      ],
      resolver,
      'append',
    )
    expect(await store.get('k0')).toBe('m')
    expect(await store.get('k1')).toBeUndefined()
    expect(await store.get('k2')).toBe('new')
    // Every key known: the merged ones from their heads, k2 absent as never written.
    expect(store.headStats).toMatchObject({ hits: 3, misses: 0 })
    expect(store.keys?.digest.hex).toBe(await digestFromRecords(store))
  })

  // Rule: what a group that is not written set in the heads is forgotten,
  // so the next write of its keys resolves against what LevelDB holds.
  for (const sync of ['none', 'always'] as const) {
    it(`--sync ${sync}: forgets a failed group's records; the next writes of its keys resolve against what is stored`, async () => {
      const store = await openLww('failure', 100_000, sync)
      await store.writeEachWithIdentity([
        [OP_PUT, 'k0', 'first'],
        [OP_PUT, 'k1', 'first'],
      ])
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
      fail()
      expect(await outcome).toContain('the disk went away')
      await store.writeEachWithIdentity([[OP_PUT, 'k1', 'second']])
      await store.writeEachWithIdentity([[OP_DEL, 'k0']])
      expect(await store.get('k0')).toBeUndefined()
      expect(await store.get('k1')).toBe('second')
      expect(store.keys?.counts.tombstones).toBe(1)
      expect(store.keyCount).toBe(1)
      const ref = await replayWithoutHeads(await logOf(store), 'failure-ref')
      expect(await stateOf(store)).toEqual(await stateOf(ref))
    })
  }
})

// Rule: whatever else writes a key between two writes of it (tombstone
// collection, snapshot merges, writes with an expiry), a store resolving
// from LwwHeads ends as one that reads every record, and its digest is the
// one its records make.
const PATH_KEYS = KEYS.slice(0, 8)

/** A small deterministic generator, so both stores get the very same script. */
function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 0x1_0000_0000
  }
}

type Step =
  | { kind: 'entries'; raws: Buffer[] }
  | { kind: 'collect'; keys: Buffer[] }
  | { kind: 'merge'; records: [Buffer, Buffer][] }
  | { kind: 'turn' }

function script(seed: number, steps: number): Step[] {
  const next = rng(seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]
  const base = Date.now() * 1024
  const seqs: Record<string, number> = { p1: 0, p2: 0 }
  let merged = 0
  const out: Step[] = []
  for (let t = 0; t < steps; t++) {
    const r = next()
    if (r < 0.6) {
      const origin = pick(['p1', 'p2'])
      const raws: Buffer[] = []
      const n = 1 + Math.floor(next() * 3)
      for (let i = 0; i < n; i++) {
        const k = pick(PATH_KEYS)
        const hlc = base + t * 8 + Math.floor(next() * 64) - 32
        const c = next()
        const op: EntryOp =
          c < 0.3
            ? [OP_DEL, k]
            : c < 0.45
              ? [OP_PUT, k, `ttl ${t}`, { x: Date.now() + 3_600_000 }]
              : [OP_PUT, k, `v ${t}`]
        raws.push(encodeEntry({ seq: 1, epoch: 1, origin, originSeq: ++seqs[origin], hlc, ops: [op] }))
      }
      out.push({ kind: 'entries', raws })
    } else if (r < 0.75) {
      out.push({ kind: 'collect', keys: PATH_KEYS.map((k) => Buffer.from(k)) })
    } else if (r < 0.9) {
      const k = pick(PATH_KEYS)
      const hlc = base + t * 8 + Math.floor(next() * 64) - 32
      const version = { hlc, counter: ++merged, origin: 'p3' }
      const record =
        next() < 0.3
          ? writeRecord({ version, body: { kind: 'tombstone' } })
          : writeRecord({ version, body: { kind: 'value', value: `merged ${t}` } })
      out.push({ kind: 'merge', records: [[Buffer.from(k), record]] })
    } else out.push({ kind: 'turn' })
  }
  return out
}

async function run(store: Store, steps: Step[]): Promise<void> {
  const resolver = store.resolver as LwwResolver
  const pending: Promise<unknown>[] = []
  // Every tombstone is stable: all three origins' writes are covered.
  const stable = { p1: 1e9, p2: 1e9, p3: 1e9 }
  for (const step of steps) {
    if (step.kind === 'entries') pending.push(store.applyEncoded(step.raws, resolver, 'append'))
    else if (step.kind === 'collect') pending.push(store.collect(step.keys, stable))
    else if (step.kind === 'merge') pending.push(store.merge(step.records))
    else {
      await Promise.all(pending)
      pending.length = 0
    }
  }
  await Promise.all(pending)
}

/** The digest made from the store's records as they are on disk. */
async function digestFromRecords(store: Store): Promise<string> {
  const data = (store as unknown as { data: { get(key: Buffer): Promise<Buffer | undefined> } }).data
  const digest = new ConvergenceDigest()
  for (const k of PATH_KEYS) {
    const raw = await data.get(Buffer.from(k))
    if (raw !== undefined) digest.change(Buffer.from(k), undefined, raw)
  }
  return digest.hex
}

// Rule: only a --mode multi node keeps heads. A replica of a multi-master
// node holds lww records too, but once promoted (replicaof no one) it
// writes them by the single-master path, which sets no heads: a head kept
// from the entries it applied would be stale after its first local write.
describe('store: a replica of a last-writer-wins node', () => {
  it('counts its keys from its records: local writes after applied deletes keep the key count exact', async () => {
    const store = await Store.open({ dataDir: join(dir, 'replica'), sync: 'none', logRetention: 100_000 })
    stores.push(store)
    await store.adoptPolicy('lww')
    const resolver = new LwwResolver()
    let seq = 0
    const hlc = Date.now() * 1024
    for (const op of ['put', 'del'] as const) {
      for (const k of KEYS) {
        const ops: EntryOp[] = [op === 'put' ? [OP_PUT, k, `up ${k}`] : [OP_DEL, k]]
        const raw = encodeEntry({ seq: ++seq, epoch: 1, origin: 'up', originSeq: seq, hlc: hlc + seq, ops })
        await store.applyEncoded([raw], resolver, 'append')
      }
    }
    expect(store.keyCount).toBe(0)
    // Promoted: each key put, then deleted, by local writes.
    for (const k of KEYS) await store.write([[OP_PUT, k, `local ${k}`]])
    expect(store.keyCount).toBe(KEYS.length)
    for (const k of KEYS) await store.write([[OP_DEL, k]])
    expect(store.keyCount).toBe(0)
    for (const k of KEYS) expect(await store.get(k)).toBeUndefined()
  })
})

describe('store: LwwHeads against other writers of the same keys', () => {
  for (const [seed, sync] of [1, 2, 3, 4, 5, 6].flatMap((n) =>
    [n, n + 6].map((m, i) => [m, i === 0 ? 'none' : 'always'] as const),
  )) {
    // --sync always: groups pipelined, each built while the one before is written.
    it(`seed ${seed}, --sync ${sync}: collections, merges and expiring writes leave the same state as a store that reads every record`, async () => {
      const steps = script(seed, 400)
      const withHeads = await openLww('paths-heads', 100_000, sync)
      const reading = await openLww('paths-reading', 0, sync)
      await run(withHeads, steps)
      await run(reading, steps)
      expect(withHeads.headStats.hits).toBeGreaterThan(0)
      expect(reading.headStats.hits).toBe(0)
      expect(await stateOf(withHeads)).toEqual(await stateOf(reading))
      expect(withHeads.keys?.digest.hex).toBe(await digestFromRecords(withHeads))
    })
  }
})
