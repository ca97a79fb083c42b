import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { prng } from '@tandem/protocol'
import { Level } from 'level'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LwwResolver } from '../multimaster/lww.js'
import { readForApply } from './entry-scan.js'
import { failNextBatch } from './failing-batch.js'
import { BlockPacker } from './log-block.js'
import { decodeEntry, type EntryOp, encodeEntry, type LogEntry, OP_DEL, OP_PUT, seqKey } from './log-entry.js'
import { openLwwStore } from './lww-store.js'
import { decodeRecord, encodeRecord, UNKNOWN_MOD_SEQ } from './record.js'
import { type ConflictResolver, KEEP, logOrderWins } from './resolver.js'
import { RunRefused } from './run-refused.js'
import { packChunk } from './snapshot-chunk.js'
import { NOT_NOW, Store } from './store.js'
import { TextBytes } from './text-bytes.js'

let dir: string
let stores: Store[] = []

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tandem-store-test-'))
})

afterEach(async () => {
  await Promise.all(stores.map((s) => s.close()))
  stores = []
  rmSync(dir, { recursive: true, force: true })
})

async function open(name: string): Promise<Store> {
  const store = await Store.open({ dataDir: join(dir, name), sync: 'always', logRetention: 1000 })
  stores.push(store)
  return store
}

/** A multi-master store resolving conflicts by last writer wins (its resolver set, as the mesh sets it). */
async function openLww(name: string, lwwHeadKeys?: number): Promise<Store & { resolver: LwwResolver }> {
  const store = await openLwwStore(join(dir, name), { sync: 'always', logRetention: 1000, lwwHeadKeys })
  stores.push(store)
  return store
}

function entry(seq: number, ops: LogEntry['ops']): Buffer {
  return encodeEntry({ seq, epoch: 0, origin: 'upstream', originSeq: seq, hlc: seq * 1024, ops })
}

async function logSeqs(store: Store): Promise<number[]> {
  const seqs: number[] = []
  for await (const [seq] of store.log.read(1)) seqs.push(seq)
  return seqs
}

/** A frame from an upstream, applied as a replica does: its seqs kept, the log's order wins. */
function applyFrame(store: Store, raws: Buffer[]): Promise<number> {
  return store.applyRemote(raws.map(readForApply), logOrderWins, 'keep')
}

describe('store: LevelDB memtable size (writeBufferBytes)', () => {
  /** LevelDB's table files in a store's data dir: written once the memtable is full. */
  const tables = (name: string) => readdirSync(join(dir, name, 'db')).filter((f) => f.endsWith('.ldb')).length

  it('writes tables once the given memtable size is passed, and none below it', async () => {
    const small = await Store.open({
      dataDir: join(dir, 'small'),
      sync: 'none',
      logRetention: 1000,
      writeBufferBytes: 64 * 1024,
    })
    const large = await Store.open({
      dataDir: join(dir, 'large'),
      sync: 'none',
      logRetention: 1000,
      writeBufferBytes: 64 * 1024 * 1024,
    })
    stores.push(small, large)
    // About 2 MB each, values and log together: 32 times the small memtable, a thirtieth of the large one.
    const value = 'v'.repeat(1000)
    for (const store of [small, large]) {
      for (let i = 0; i < 1000; i += 100) {
        await Promise.all([...Array(100).keys()].map((j) => store.write([[OP_PUT, `k${i + j}`, value]])))
      }
    }
    // The small store's memtables are written out on LevelDB's own thread: wait for its first table.
    const deadline = Date.now() + 30_000
    while (tables('small') === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    expect(tables('small')).toBeGreaterThan(0)
    expect(tables('large')).toBe(0)
  })
})

describe('store: LevelDB table compression (tableCompression)', () => {
  /** Bytes of LevelDB's table files in a store's data dir. */
  const tableBytes = (name: string) =>
    readdirSync(join(dir, name, 'db'))
      .filter((f) => f.endsWith('.ldb'))
      .reduce((sum, f) => sum + statSync(join(dir, name, 'db', f)).size, 0)

  it('stores table blocks as they are with 0, compressed with 1 (the default)', async () => {
    const names = ['compressed', 'default', 'plain']
    const settings = [1, undefined, 0]
    const opened = await Promise.all(
      names.map((name, i) =>
        Store.open({
          dataDir: join(dir, name),
          sync: 'none',
          logRetention: 1000,
          writeBufferBytes: 64 * 1024,
          tableCompression: settings[i],
        }),
      ),
    )
    stores.push(...opened)
    // About 2 MB each of values that compress well, values and log together: 32 times the memtable.
    const value = 'v'.repeat(1000)
    for (const store of opened) {
      for (let i = 0; i < 1000; i += 100) {
        await Promise.all([...Array(100).keys()].map((j) => store.write([[OP_PUT, `k${i + j}`, value]])))
      }
    }
    // Closing waits for LevelDB to finish writing out the memtables it started on.
    await Promise.all(opened.map((store) => store.close()))
    const [compressed, byDefault, plain] = names.map(tableBytes)
    expect(plain).toBeGreaterThan(1024 * 1024)
    expect(compressed * 4).toBeLessThan(plain)
    expect(byDefault * 4).toBeLessThan(plain)
    const again = await open('plain')
    expect(await again.get('k999')).toBe(value)
  })
})

describe('store: data keys', () => {
  it('stores each key as its UTF-8 bytes, ASCII or not, on both sides of the short-key loop', async () => {
    const store = await open('keys')
    const keys: string[] = []
    for (const units of [1, 63, 64, 65, 100]) {
      const body = 'k'.repeat(units - 1)
      // ASCII to the last code (0x7f), then the first characters of each UTF-8 width, at the end and the start.
      for (const c of ['a', '\u007f', '\u0080', '\u00e9', '\u20ac', '\u{1f600}']) keys.push(body + c, c + body)
    }
    const unique = [...new Set(keys)]
    await store.writeEach(unique.map((key, i): EntryOp => [OP_PUT, key, `v${i}`]))
    const scanned: string[] = []
    for await (const [key] of store.scan({})) scanned.push(key)
    // LevelDB orders keys by their bytes: the scan gives back every key as written, in UTF-8 order.
    const byBytes = [...unique].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    expect(scanned).toEqual(byBytes)
    expect(store.keyCount).toBe(unique.length)
    for (let i = 0; i < unique.length; i++) expect(await store.get(unique[i])).toBe(`v${i}`)
  })
})

describe('store: replicated frames', () => {
  it('applies a frame of entries as one write, data and log together, and returns its last seq', async () => {
    const store = await open('a')
    const last = await applyFrame(store, [
      entry(1, [[OP_PUT, 'k1', 'v1']]),
      entry(2, [[OP_PUT, 'k2', new Uint8Array([1, 2])]]),
      entry(3, [[OP_DEL, 'k1']]),
    ])
    expect(last).toBe(3)
    expect(store.lastSeq).toBe(3)
    expect(await store.get('k1')).toBeUndefined()
    expect(await store.get('k2')).toEqual(Buffer.from([1, 2]))
    expect(await logSeqs(store)).toEqual([1, 2, 3])
  })

  it('refuses a frame that does not follow lastSeq, and writes none of it', async () => {
    const store = await open('b')
    await applyFrame(store, [entry(1, [[OP_PUT, 'a', '1']])])
    await expect(
      applyFrame(store, [entry(3, [[OP_PUT, 'b', '3']]), entry(4, [[OP_PUT, 'c', '4']])]),
    ).rejects.toMatchObject({
      code: 'INVALID',
    })
    // A frame with a hole inside is refused whole too.
    await expect(
      applyFrame(store, [entry(2, [[OP_PUT, 'b', '2']]), entry(4, [[OP_PUT, 'c', '4']])]),
    ).rejects.toMatchObject({
      code: 'INVALID',
    })
    expect(store.lastSeq).toBe(1)
    expect(await store.get('b')).toBeUndefined()
    expect(await logSeqs(store)).toEqual([1])
    // The store goes on taking the entry that does follow.
    expect(await applyFrame(store, [entry(2, [[OP_PUT, 'b', '2']])])).toBe(2)
    expect(await store.get('b')).toBe('2')
  })

  it('keeps frames submitted together in order (they share groups)', async () => {
    const store = await open('c')
    const frames = [1, 3, 5].map((seq) => [
      entry(seq, [[OP_PUT, `r${seq}`, 'x']]),
      entry(seq + 1, [[OP_PUT, `r${seq + 1}`, 'x']]),
    ])
    const results = await Promise.all(frames.map((f) => applyFrame(store, f)))
    expect(results).toEqual([2, 4, 6])
    expect(await logSeqs(store)).toEqual([1, 2, 3, 4, 5, 6])
  })
})

describe('store: in-memory log tail', () => {
  /** Every entry the tail holds from `from` on: the identity it was pushed with, and the one its bytes hold. */
  function tailIdentities(store: Store, from: number): { pushed: [string | null, number][]; read: [string, number][] } {
    const tail = store.log.tail
    const raws = tail.from(from, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER) ?? []
    const pushed: [string | null, number][] = []
    const read: [string, number][] = []
    for (let i = 0; i < raws.length; i++) {
      const origin = tail.originAt(from + i)
      pushed.push([origin, origin === null ? 0 : tail.counterAt(from + i)])
      const id = readForApply(raws[i])
      read.push([id.origin, id.originSeq])
    }
    return { pushed, read }
  }

  // A peer feed filters the tail by the identity the store pushes each entry
  // with (LogTail.originAt, counterAt), never reading the entry's bytes: an
  // identity that is not the entry's own would send a peer what it holds, or
  // hold back what it lacks.
  it("keeps every entry with its own origin and counter: a multi-master node's client writes, peers' entries and housekeeping", async () => {
    const store = await openLww('ids')
    store.log.keepTail(true)
    const first = store.lastSeq + 1
    const peer = (originSeq: number, ops: LogEntry['ops']) =>
      encodeEntry({ seq: 900 + originSeq, epoch: 3, origin: 'peer-b', originSeq, hlc: Date.now() * 1024, ops })
    await Promise.all([
      store.writeEachWithIdentity([
        [OP_PUT, 'a', '1'],
        [OP_PUT, 'b', '2'],
        [OP_DEL, 'c'],
      ]),
      store.writeWithIdentity([
        [OP_PUT, 'd', '3'],
        [OP_PUT, 'e', Buffer.from([1, 2, 3])],
      ]),
      store.applyEncoded([peer(1, [[OP_PUT, 'a', 'p1']]), peer(2, [[OP_DEL, 'f']])], store.resolver, 'append'),
      store.write([[OP_PUT, 'g', '4']]),
    ])
    // A frame holding an entry this node has (skipped: no seq), then one it lacks.
    await store.applyEncoded([peer(2, [[OP_DEL, 'f']]), peer(3, [[OP_PUT, 'h', 'p3']])], store.resolver, 'append')
    await store.expire(['b'])
    await store.collect([Buffer.from('c')], store.committedVv)
    const { pushed, read } = tailIdentities(store, first)
    expect(read.length).toBe(store.lastSeq - first + 1)
    expect(read.filter(([origin]) => origin === 'peer-b').map(([, n]) => n)).toEqual([1, 2, 3])
    expect(read.some(([origin]) => origin === '')).toBe(true) // housekeeping (the expiry, the collection)
    expect(pushed).toEqual(read)
  })

  // The same, seeded: two lww masters with groups pipelined (--sync always), each taking client writes (alone,
  // several as one entry, several as one entry each) and the other's entries in frames of 1 to 9 (some it holds),
  // expiries of puts already past and collections; some rounds' next batch fails, so that the groups built on it
  // are built again. After every round, each entry of each tail answers the identity its own bytes hold.
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: keeps every entry with its own origin and counter through failed and rebuilt groups`, async () => {
      const random = prng(seed)
      const a = await openLww(`ids-a-${seed}`, 8)
      const b = await openLww(`ids-b-${seed}`, 8)
      a.log.keepTail(true)
      b.log.keepTail(true)
      const swallow = (p: Promise<unknown>): Promise<unknown> => p.catch((err: Error) => err)
      const keys = Array.from({ length: 12 }, (_, i) => `k${i}`)
      const key = () => keys[Math.floor(random() * keys.length)]
      const op = (round: number, now: number): EntryOp => {
        const r = random()
        if (r < 0.2) return [OP_DEL, key()]
        if (r < 0.3) return [OP_PUT, key(), `x${round}`, { x: random() < 0.5 ? now - 1000 : now + 3_600_000 }]
        return [OP_PUT, key(), `v${round}-${Math.floor(random() * 1000)}`]
      }
      const shipped = new Map<Store, number>([
        [a, 0],
        [b, 0],
      ])
      let checked = 0
      let failed = 0
      for (let round = 0; round < 25; round++) {
        const pending: Promise<unknown>[] = []
        const now = Date.now()
        let fail: ReturnType<typeof failNextBatch> | null = null
        if (round % 4 === 1) {
          // a's next batch fails, with a write in it at least.
          fail = failNextBatch(a)
          pending.push(swallow(a.write([op(round, now)])))
        }
        for (let i = 0; i < 10; i++) {
          const [store, other] = random() < 0.5 ? [a, b] : [b, a]
          const r = random()
          if (fail === null && r < 0.05) fail = failNextBatch(store)
          const ops = Array.from({ length: 1 + Math.floor(random() * 4) }, () => op(round, now))
          if (r < 0.3) pending.push(swallow(store.writeEachWithIdentity(ops)))
          else if (r < 0.5) pending.push(swallow(store.writeWithIdentity(ops)))
          else if (r < 0.6) pending.push(swallow(store.write([op(round, now)])))
          else if (r < 0.65) pending.push(swallow(store.expire(keys.slice(0, 6))))
          else if (r < 0.7) pending.push(swallow(store.collect([Buffer.from(key())], store.committedVv)))
          else {
            // The other's log from a little before what was shipped last (entries this one holds among them).
            const raws: Buffer[] = []
            const from = Math.max(1, (shipped.get(other) as number) - Math.floor(random() * 4))
            for await (const [, raw] of other.log.read(from)) raws.push(Buffer.from(raw))
            shipped.set(other, from + raws.length)
            for (let j = 0; j < raws.length; ) {
              const n = 1 + Math.floor(random() * 9)
              pending.push(swallow(store.applyEncoded(raws.slice(j, j + n), store.resolver, 'append')))
              j += n
            }
          }
        }
        if (fail !== null) {
          await new Promise((r) => setImmediate(r))
          ;(fail as ReturnType<typeof failNextBatch>)()
        }
        for (const outcome of await Promise.all(pending)) {
          if (outcome instanceof Error && /disk went away/.test(outcome.message)) failed++
        }
        ;(fail as ReturnType<typeof failNextBatch> | null)?.disarm()
        for (const store of [a, b]) {
          const first = store.lastSeq - store.log.tail.length + 1
          const { pushed, read } = tailIdentities(store, first)
          expect(read.length, `seed ${seed} round ${round}`).toBe(store.log.tail.length)
          expect(pushed, `seed ${seed} round ${round}`).toEqual(read)
          checked += read.length
        }
      }
      expect(checked).toBeGreaterThan(100)
      // Writes lost with a failed batch (the groups built on it were built again).
      expect(failed).toBeGreaterThan(0)
    })
  }

  it("keeps every entry with its own origin and counter: a single master's writes and a replica's kept entries", async () => {
    const master = await open('ids-master')
    master.log.keepTail(true)
    await Promise.all([
      master.write([[OP_PUT, 'a', '1']]),
      master.writeEach([
        [OP_PUT, 'b', '2'],
        [OP_DEL, 'a'],
      ]),
      master.write([
        [OP_PUT, 'c', '3'],
        [OP_PUT, 'd', '4'],
      ]),
    ])
    const ofMaster = tailIdentities(master, 1)
    expect(ofMaster.read.length).toBe(master.lastSeq)
    expect(ofMaster.pushed).toEqual(ofMaster.read)
    const replica = await open('ids-replica')
    replica.log.keepTail(true)
    const raws: Buffer[] = []
    for await (const [, raw] of master.log.read(1)) raws.push(Buffer.from(raw))
    await applyFrame(replica, raws)
    const ofReplica = tailIdentities(replica, 1)
    expect(ofReplica.read.length).toBe(raws.length)
    expect(ofReplica.pushed).toEqual(ofReplica.read)
  })

  it('holds entries only while kept, from the first commit after keepTail(true)', async () => {
    const store = await open('d')
    await store.write([[OP_PUT, 'a', '1']])
    expect(store.log.tail.length).toBe(0)
    store.log.keepTail(true)
    await store.write([[OP_PUT, 'b', '2']])
    await store.write([[OP_PUT, 'c', '3']])
    expect(store.log.tail.from(1, 100, 1 << 20)).toBeNull() // seq 1 predates the tail: read it from disk
    const kept = store.log.tail.from(2, 100, 1 << 20)
    expect(kept?.length).toBe(2)
    const fromDisk: Buffer[] = []
    for await (const [, raw] of store.log.read(2)) fromDisk.push(raw)
    expect(kept?.map((b) => b.toString('hex'))).toEqual(fromDisk.map((b) => b.toString('hex')))
    const reserved = store.log.tail.reservedBytes
    expect(reserved).toBeGreaterThan(0)
    store.log.keepTail(false)
    expect(store.log.tail.length).toBe(0)
    await store.write([[OP_PUT, 'd', '4']])
    expect(store.log.tail.length).toBe(0)
    // The memory stays for the next reader (a healed peer link), whose
    // entries go in the same ring from the first commit after it came.
    expect(store.log.tail.reservedBytes).toBe(reserved)
    store.log.keepTail(true)
    await store.write([[OP_PUT, 'e', '5']])
    expect(store.log.tail.from(4, 100, 1 << 20)).toBeNull()
    const again = store.log.tail.from(5, 100, 1 << 20)
    const onDisk: Buffer[] = []
    for await (const [, raw] of store.log.read(5)) onDisk.push(raw)
    expect(again?.map((b) => b.toString('hex'))).toEqual(onDisk.map((b) => b.toString('hex')))
    expect(store.log.tail.reservedBytes).toBe(reserved)
  })
})

describe('store: full sync chunks', () => {
  const prefix = Buffer.from('!data!')
  const chunkOf = (n: number, from = 0) =>
    packChunk(
      Array.from({ length: n }, (_, i): [Buffer, Buffer] => [
        Buffer.concat([prefix, Buffer.from(`key-${from + i}`)]),
        Buffer.from([0, ...Buffer.from(`value-${from + i}`)]),
      ]),
      prefix.length,
    )

  it('writes chunks in order and makes them the data once the sync finishes', async () => {
    const store = await open('e')
    await store.write([[OP_PUT, 'before', 'x']]) // discarded by the sync, but its counter stays used
    await store.beginFullSync()
    await store.applySnapshotChunk(chunkOf(100), 100)
    await store.applySnapshotChunk(chunkOf(100, 100), 100)
    await store.finishFullSync(42, [{ epoch: 1, startSeq: 1, by: 'up' }], { hlc: 5000 * 1024, vv: { up: 40, x: 2 } })
    expect(store.lastSeq).toBe(42)
    expect(store.vv.toObject()).toEqual({ [store.origin]: 1, up: 40, x: 2 })
    expect(store.hlc.peek()).toBeGreaterThanOrEqual(5000 * 1024)
    expect(await store.get('key-0')).toBe('value-0')
    expect(await store.get('key-199')).toBe('value-199')
    // The key written before the sync is gone; the count is the snapshot's.
    expect(store.keyCount).toBe(200)
    expect(await store.countKeys()).toBe(200)
  })

  // Tandem keys are UTF-8 text, and a snapshot reads them back as strings: a
  // key that is not UTF-8, taken from a chunk (an upstream, a peer, a
  // --restore file), would come back as other bytes, fail its checksum
  // against them and fail every later full sync, backup and peer snapshot
  // of this node with CORRUPT. Refused on arrival instead.
  it('refuses a chunk holding a key that is not UTF-8, and goes on serving snapshots', async () => {
    const store = await open('chunks-not-utf8')
    await store.beginFullSync()
    const bad = packChunk(
      [
        [Buffer.concat([prefix, Buffer.from('fine')]), Buffer.from([0, 0x76])],
        [Buffer.concat([prefix, Buffer.from([0x6b, 0xff, 0x6b])]), Buffer.from([0, 0x76])],
      ],
      prefix.length,
    )
    await expect(store.applySnapshotChunk(bad, 2)).rejects.toThrow(/not UTF-8/)
    await store.applySnapshotChunk(chunkOf(10), 10)
    await store.finishFullSync(10, [{ epoch: 1, startSeq: 1, by: 'up' }], { hlc: 5000 * 1024, vv: { up: 10 } })
    expect(await store.get('fine')).toBeUndefined()
    const snapshot = store.snapshot()
    let sent = 0
    for await (const { count } of snapshot.chunks(4096)) sent += count
    await snapshot.close()
    expect(sent).toBe(10)
  })

  // A snapshot reads its keys as strings and writes their UTF-8 into the
  // chunk (where each record's checksum is checked): keys of every UTF-8
  // length and a record larger than a chunk must arrive byte for byte.
  it('streams a snapshot into another store exactly, non-ASCII keys and a record larger than a chunk included', async () => {
    const source = await open('chunks-source')
    const keys = ['a', 'é', 'ñandú', '日本語のキー', '😀-emoji', 'z'.repeat(300), 'Ω']
    for (let i = 0; i < 400; i++) keys.push(`key-${i}-${'é😀'.repeat(i % 4)}`)
    await source.write(
      keys.map((k, i): [typeof OP_PUT, string, string] => [OP_PUT, k, `value-${i}-${'v'.repeat(i % 90)}`]),
    )
    await source.write([[OP_PUT, 'big', 'b'.repeat(20_000)]])
    const snapshot = source.snapshot()
    const maxBytes = 30_000
    const chunks: { chunk: Buffer; count: number }[] = []
    for await (const c of snapshot.chunks(4096, maxBytes)) chunks.push(c)
    const seq = await snapshot.seq
    await snapshot.close()
    expect(chunks.length).toBeGreaterThan(5)
    for (const { chunk } of chunks) expect(chunk.length).toBeLessThanOrEqual(maxBytes)
    expect(chunks.reduce((n, c) => n + c.count, 0)).toBe(keys.length + 1)
    const copy = await open('chunks-copy')
    await copy.beginFullSync()
    for (const { chunk, count } of chunks) await copy.applySnapshotChunk(chunk, count)
    await copy.finishFullSync(seq, source.history)
    const all = async (store: Store) => {
      const out: [string, unknown][] = []
      for await (const entry of store.scan({})) out.push(entry)
      return out
    }
    const copied = await all(copy)
    expect(copied).toEqual(await all(source))
    expect(copied).toHaveLength(keys.length + 1)
    expect(await copy.get('😀-emoji')).toBe(`value-4-${'v'.repeat(4)}`)
    expect(copy.keyCount).toBe(keys.length + 1)
    expect(await copy.countKeys()).toBe(keys.length + 1)
  })

  // A sync's data keys arrive in key order; a chunk write that also held a
  // meta key would stretch every LevelDB table of the sync to the meta keys,
  // so that none could be moved down a level without a merge.
  it('writes data keys only in its chunk writes; the count goes with the end, and survives a restart', async () => {
    const store = await open('chunks-data-only')
    await store.write([[OP_PUT, 'before', 'x']])
    await store.beginFullSync()
    const db = (store as unknown as { db: Level<Buffer, Buffer> }).db
    const dataPrefix = Buffer.from(db.sublevel('data').prefix)
    const written: Buffer[][] = []
    const onWrite = (ops: { key: Buffer }[]) => written.push(ops.map((op) => Buffer.from(op.key)))
    db.on('write', onWrite)
    await store.applySnapshotChunk(chunkOf(100), 100)
    await store.applySnapshotChunk(chunkOf(100, 100), 100)
    await store.idle()
    db.off('write', onWrite)
    expect(written).toHaveLength(2)
    expect(written.flat()).toHaveLength(200)
    for (const key of written.flat())
      expect(key.subarray(0, dataPrefix.length).equals(dataPrefix), String(key)).toBe(true)
    expect(store.keyCount).toBe(200)
    const largest = store.largestValue
    expect(largest).toBeGreaterThan(Buffer.byteLength('value-199'))
    await store.finishFullSync(200, [{ epoch: 1, startSeq: 1, by: 'up' }], { hlc: 5000 * 1024, vv: { up: 200 } })
    stores = stores.filter((s) => s !== store)
    await store.close()
    const again = await open('chunks-data-only')
    expect(again.discardedPartialSync).toBe(false)
    expect(again.keyCount).toBe(200)
    expect(await again.countKeys()).toBe(200)
    expect(again.largestValue).toBe(largest)
  })

  // Each page is a trip to LevelDB's thread pool and back: classic-level's
  // own bound (16 KiB) cut pages of 100-byte values at ~130 records.
  it('reads a snapshot in pages of snapshotPageRecords records, not of 16 KiB', async () => {
    const source = await Store.open({
      dataDir: join(dir, 'chunks-pages'),
      sync: 'none',
      logRetention: 1000,
      snapshotPageRecords: 500,
    })
    stores.push(source)
    const value = 'v'.repeat(100)
    await source.write(
      Array.from({ length: 2000 }, (_, i): [typeof OP_PUT, string, string] => [OP_PUT, `key-${i}`, value]),
    )
    type Iterator = { nextv(size: number): Promise<unknown[]> }
    const db = (source as unknown as { db: { iterator(...args: unknown[]): Iterator } }).db
    const iterator = db.iterator.bind(db)
    const pages: number[] = []
    db.iterator = (...args: unknown[]) => {
      const it = iterator(...args)
      const nextv = it.nextv.bind(it)
      it.nextv = async (size: number) => {
        const page = await nextv(size)
        pages.push(page.length)
        return page
      }
      return it
    }
    const snapshot = source.snapshot()
    let sent = 0
    for await (const { count } of snapshot.chunks(256 * 1024)) sent += count
    await snapshot.close()
    expect(sent).toBe(2000)
    expect(pages).toEqual([500, 500, 500, 500, 0])
  })

  // A sync's data keys arrive in key order, so each table LevelDB writes of
  // them lies past every table before it and can go below them whole. The
  // meta keys beginFullSync writes must not share a table with data keys:
  // that table would span every later one of the sync, which LevelDB then
  // keeps a level above it (level 1), to be merged into it, rewritten.
  it("writes an empty node's sync in tables that overlap none: none kept at level 0 or 1", async () => {
    const store = await Store.open({
      dataDir: join(dir, 'chunks-tables'),
      sync: 'always',
      logRetention: 1000,
      writeBufferBytes: 64 * 1024,
    })
    stores.push(store)
    await store.beginFullSync()
    const value = Buffer.alloc(100, 0x61)
    for (let c = 0; c < 40; c++) {
      const records = Array.from({ length: 500 }, (_, i): [Buffer, Buffer] => [
        Buffer.concat([prefix, Buffer.from(`key-${String(c * 500 + i).padStart(6, '0')}`)]),
        Buffer.concat([Buffer.from([0]), value]),
      ])
      await store.applySnapshotChunk(packChunk(records, prefix.length), records.length)
    }
    await store.finishFullSync(20_000, [{ epoch: 1, startSeq: 1, by: 'up' }], { hlc: 5000 * 1024, vv: { up: 1 } })
    const db = (store as unknown as { db: { getProperty(name: string): string } }).db
    const files = (level: number) => Number(db.getProperty(`leveldb.num-files-at-level${level}`))
    // ~2.5 MB through 64 KiB memtables: tens of tables, each placed at level 2.
    expect(files(2)).toBeGreaterThan(20)
    expect(files(0)).toBe(0)
    expect(files(1)).toBe(0)
    expect(store.keyCount).toBe(20_000)
    expect(await store.get('key-019999')).toBe('a'.repeat(100))
  })

  // Rule: a record from before records carried a mod seq is never taken for an absent key.
  it("gives records without a mod seq (an older build's) one seq that is not absent", async () => {
    const store = await open('legacy')
    await store.beginFullSync()
    await store.applySnapshotChunk(chunkOf(2), 2)
    await store.finishFullSync(2, [{ epoch: 1, startSeq: 1, by: 'up' }], { hlc: 5000 * 1024, vv: { up: 2 } })
    const put = (value: string, condition: object) =>
      store.write([[OP_PUT, 'key-0', value]], [{ key: 'key-0', ...condition }])
    await expect(put('lost', { ifSeq: 0 })).rejects.toMatchObject({ code: 'CONFLICT' })
    await expect(put('lost', { ifAbsent: true })).rejects.toMatchObject({ code: 'CONFLICT' })
    expect(await store.get('key-0')).toBe('value-0')
    const seq = await put('kept', { ifSeq: UNKNOWN_MOD_SEQ })
    await expect(put('again', { ifSeq: UNKNOWN_MOD_SEQ })).rejects.toMatchObject({ code: 'CONFLICT' })
    await put('again', { ifSeq: seq })
    expect(await store.get('key-0')).toBe('again')
  })

  // A linearizable get waits for the seq it depends on: a record that does not say which write made it depends on every write.
  it('reads a record without a mod seq with the head as the seq it depends on', async () => {
    const store = await open('legacy-read')
    await store.beginFullSync()
    await store.applySnapshotChunk(chunkOf(2), 2)
    await store.finishFullSync(2, [{ epoch: 1, startSeq: 1, by: 'up' }], { hlc: 5000 * 1024, vv: { up: 2 } })
    await store.write([[OP_PUT, 'other', 'x']])
    expect(await store.getWithSeq('key-0')).toEqual({ value: 'value-0', seq: 3 })
  })

  it('refuses a chunk whose record count is not the one its frame gives, writing none of it', async () => {
    const store = await open('f')
    await store.beginFullSync()
    await expect(store.applySnapshotChunk(chunkOf(10), 11)).rejects.toThrow(/holds 10 records/)
    await store.idle()
    expect(await store.get('key-0')).toBeUndefined()
  })

  it('closes cleanly with a chunk write still in flight, and discards the partial sync on reopen', async () => {
    const store = await open('g')
    await store.beginFullSync()
    // The second chunk's batch waits for the first one's write: close must
    // wait for both rather than close the second batch under it.
    const first = store.applySnapshotChunk(chunkOf(500), 500)
    const second = store.applySnapshotChunk(chunkOf(500, 500), 500)
    stores = stores.filter((s) => s !== store)
    await store.close()
    await Promise.all([first, second])
    const again = await open('g')
    expect(again.discardedPartialSync).toBe(true)
    expect(again.lastSeq).toBe(0)
    expect(await again.get('key-0')).toBeUndefined()
  })
})

describe('store: log blocks', () => {
  async function writeGroups(store: Store, groups: number, perGroup: number): Promise<void> {
    for (let g = 0; g < groups; g++) {
      // Submitted together, so they commit as one group: one block.
      await Promise.all(
        Array.from({ length: perGroup }, (_, i) => store.write([[OP_PUT, `g${g}-${i}`, 'x'.repeat(g * 10 + i)]])),
      )
    }
  }

  it('reads the log from any seq, inside a block or at its start, with every entry its own seq', async () => {
    const store = await open('blocks')
    await writeGroups(store, 6, 7)
    expect(store.lastSeq).toBe(42)
    for (const from of [1, 2, 7, 8, 9, 20, 41, 42, 43]) {
      const read: [number, Buffer][] = []
      for await (const item of store.log.read(from)) read.push(item)
      expect(read.map(([seq]) => seq)).toEqual(Array.from({ length: Math.max(0, 43 - from) }, (_, i) => from + i))
      for (const [seq, raw] of read) expect(decodeEntry(raw).seq).toBe(seq)
    }
    const limited: number[] = []
    for await (const [seq] of store.log.read(10, 5)) limited.push(seq)
    expect(limited).toEqual([10, 11, 12, 13, 14])
    expect((await store.log.lastEntry())?.seq).toBe(42)
  })

  it("places a peer's frame in one block buffer sized for it up front: never grown, the log's entries each its own seq", async () => {
    const store = await openLww('placed')
    const grows: number[] = []
    const proto = BlockPacker.prototype as unknown as { grow(size: number): void }
    const grow = proto.grow
    proto.grow = function (this: BlockPacker, size: number) {
      grows.push(size)
      return grow.call(this, size)
    }
    try {
      // Placed by their origin as narrow as can be (seq and epoch of 1
      // byte), as they are placed here; values of every size up to 1,000 bytes.
      const raws = Array.from({ length: 300 }, (_, i) =>
        encodeEntry({
          seq: 1 + (i % 100),
          epoch: 0,
          origin: 'peer',
          originSeq: i + 1,
          hlc: (Date.now() + i) * 1024,
          ops: [[OP_PUT, `k${i}`, 'v'.repeat((i * 37) % 1000)]],
        }),
      )
      await store.applyEncoded(raws, store.resolver, 'append')
    } finally {
      proto.grow = grow
    }
    expect(grows).toEqual([])
    expect(await logSeqs(store)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1))
    for await (const [seq, raw] of store.log.read(1)) {
      expect(decodeEntry(raw).seq).toBe(seq)
      expect(decodeEntry(raw).originSeq).toBe(seq)
    }
  })

  /**
   * Counts the trips a store's reads make to LevelDB (each a hop through the
   * thread pool and back through the event loop): every nextv, and every
   * next that finds the iterator's cache empty.
   */
  function countTrips(store: Store): { trips: number } {
    const db = (store as unknown as { db: { _iterator(options: unknown): unknown } }).db
    const counter = { trips: 0 }
    const make = db._iterator.bind(db)
    db._iterator = (options: unknown) => {
      const it = make(options) as {
        cached: number
        _next(): Promise<unknown>
        _nextv(size: number, options: unknown): Promise<unknown[]>
      }
      const next = it._next.bind(it)
      const nextv = it._nextv.bind(it)
      it._next = () => {
        if (it.cached === 0) counter.trips++
        return next()
      }
      it._nextv = (size, o) => {
        if (it.cached === 0) counter.trips++
        return nextv(size, o)
      }
      return it
    }
    return counter
  }

  it('a reader going on from where its last read stopped makes one trip to LevelDB for a batch', async () => {
    const store = await open('trips')
    // Blocks of 100 entries of over 200 bytes: each block is more than
    // LevelDB's iterators fetch a trip by default (16 KiB).
    for (let g = 0; g < 12; g++) {
      await Promise.all(Array.from({ length: 100 }, (_, i) => store.write([[OP_PUT, `g${g}-${i}`, 'v'.repeat(200)]])))
    }
    expect(store.lastSeq).toBe(1200)
    const counter = countTrips(store)
    const read = async (from: number, limit: number) => {
      const before = counter.trips
      const seqs: number[] = []
      for await (const [seq, raw] of store.log.read(from, limit, 1024 * 1024)) {
        expect(decodeEntry(raw).seq).toBe(seq)
        seqs.push(seq)
      }
      return { seqs, trips: counter.trips - before }
    }
    const span = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)
    // The first read finds its block, then takes the 6 blocks it needs in one trip.
    const first = await read(1, 550)
    expect(first.seqs).toEqual(span(1, 550))
    expect(first.trips).toBeLessThanOrEqual(2)
    // Going on from inside a block: no trip to find it.
    const second = await read(551, 550)
    expect(second.seqs).toEqual(span(551, 1100))
    expect(second.trips).toBe(1)
    // Up to the end of the log (one more trip finds there is nothing after it).
    const third = await read(1101, 550)
    expect(third.seqs).toEqual(span(1101, 1200))
    expect(third.trips).toBeLessThanOrEqual(2)
    // Going on from the end once a group has appended the next block.
    await Promise.all(Array.from({ length: 100 }, (_, i) => store.write([[OP_PUT, `late-${i}`, 'v'.repeat(200)]])))
    const fourth = await read(1201, 100)
    expect(fourth.seqs).toEqual(span(1201, 1300))
    expect(fourth.trips).toBe(1)
    // Any other seq is still found, inside a block or at its start.
    expect((await read(777, 3)).seqs).toEqual([777, 778, 779])
    expect((await read(301, 2)).seqs).toEqual([301, 302])
  })

  it('reads a batch as read() yields it: from any seq, up to a count or a byte size, one trip going on', async () => {
    const store = await open('batches')
    await writeGroups(store, 6, 7) // blocks start at 1, 8, 15, 22, 29, 36; lastSeq 42
    const yielded = async (from: number, limit: number) => {
      const out: [number, Buffer][] = []
      for await (const item of store.log.read(from, limit)) out.push(item)
      return out
    }
    for (const from of [1, 2, 7, 8, 9, 20, 41, 42]) {
      for (const limit of [1, 5, 7, 8, 100]) {
        const batch = await store.log.readBatch(from, limit, Number.POSITIVE_INFINITY)
        const read = await yielded(from, limit)
        expect(batch.map((raw) => decodeEntry(raw).seq)).toEqual(read.map(([seq]) => seq))
        expect(batch.map((raw) => raw.toString('hex'))).toEqual(read.map(([, raw]) => raw.toString('hex')))
      }
    }
    expect(await store.log.readBatch(43, 10, Number.POSITIVE_INFINITY)).toEqual([])
    // The entry that reaches the byte size is the batch's last.
    const sizes = (await yielded(10, 100)).map(([, raw]) => raw.length)
    const bytes = sizes[0] + sizes[1] + 1
    expect((await store.log.readBatch(10, 100, bytes)).map((raw) => decodeEntry(raw).seq)).toEqual([10, 11, 12])
    // Going on from where a batch stopped: one trip, as read() makes.
    const counter = countTrips(store)
    const first = await store.log.readBatch(3, 10, Number.POSITIVE_INFINITY, 1024 * 1024)
    expect(first.map((raw) => decodeEntry(raw).seq)).toEqual(Array.from({ length: 10 }, (_, i) => 3 + i))
    const before = counter.trips
    const next = await store.log.readBatch(13, 10, Number.POSITIVE_INFINITY, 1024 * 1024)
    expect(next.map((raw) => decodeEntry(raw).seq)).toEqual(Array.from({ length: 10 }, (_, i) => 13 + i))
    expect(counter.trips - before).toBe(1)
  })

  it('reads no batch from a seq the log no longer holds', async () => {
    const store = await Store.open({ dataDir: join(dir, 'batch-trim'), sync: 'always', logRetention: 10 })
    stores.push(store)
    await writeGroups(store, 5, 8) // blocks start at 1, 9, 17, 25, 33; lastSeq 40
    await store.trimLog() // keeps the blocks from 25 on
    expect(await store.log.readBatch(20, 10, Number.POSITIVE_INFINITY)).toEqual([])
    expect((await store.log.readBatch(25, 3, Number.POSITIVE_INFINITY)).map((raw) => decodeEntry(raw).seq)).toEqual([
      25, 26, 27,
    ])
  })

  it('trims whole blocks only: the block holding the first kept seq stays', async () => {
    const store = await Store.open({ dataDir: join(dir, 'trim'), sync: 'always', logRetention: 10 })
    stores.push(store)
    await writeGroups(store, 5, 8) // blocks start at 1, 9, 17, 25, 33; lastSeq 40
    await store.trimLog() // keeps 31..40: the block from 25 holds 31
    expect(await store.log.firstSeq()).toBe(25)
    expect(store.log.start).toBe(25)
    expect(await logSeqs(store)).toEqual(Array.from({ length: 16 }, (_, i) => 25 + i))
  })

  it('reads a log written one record per entry (before blocks) and appends blocks after it', async () => {
    const dataDir = join(dir, 'old')
    const db = new Level<Buffer, Buffer>(join(dataDir, 'db'), { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    await db.open()
    const batch = db.batch()
    for (let seq = 1; seq <= 3; seq++) {
      batch.put(Buffer.concat([Buffer.from('!log!'), seqKey(seq)]), entry(seq, [[OP_PUT, `old${seq}`, 'v']]))
      batch.put(Buffer.from(`!data!old${seq}`), Buffer.from([0, 0x76]))
    }
    batch.put(Buffer.from('!meta!lastSeq'), Buffer.from('3'))
    await batch.write()
    await db.close()

    const store = await Store.open({ dataDir, sync: 'always', logRetention: 1000 })
    stores.push(store)
    expect(store.lastSeq).toBe(3)
    expect((await store.log.lastEntry())?.seq).toBe(3)
    await store.write([[OP_PUT, 'new', 'v']])
    const read: [number, Buffer][] = []
    for await (const item of store.log.read(2)) read.push(item)
    expect(read.map(([seq]) => seq)).toEqual([2, 3, 4])
    expect(read[0][1]).toEqual(entry(2, [[OP_PUT, 'old2', 'v']]))
    expect(decodeEntry(read[2][1]).ops).toEqual([[OP_PUT, 'new', 'v']])
  })
})

describe('store: multi-master resume points', () => {
  /** Keys of the resume sublevel in a closed store's LevelDB. */
  async function resumeSeqs(dataDir: string): Promise<number[]> {
    const db = new Level<Buffer, Buffer>(join(dataDir, 'db'), { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    await db.open()
    const seqs: number[] = []
    const prefix = Buffer.from('!resume!')
    for await (const key of db.keys({ gte: prefix, lt: Buffer.from('!resume"') })) {
      seqs.push(Number(key.readBigUInt64BE(prefix.length)))
    }
    await db.close()
    return seqs
  }

  it('writes one a group, and the log trim drops those before the first kept block, leaving one to resume from', async () => {
    const dataDir = join(dir, 'resume-trim')
    const store = await Store.open({ dataDir, sync: 'none', logRetention: 10, mode: 'multi', conflict: 'lww' })
    store.resolver = new LwwResolver()
    stores.push(store)
    // One put a group: a block and a resume point each.
    for (let i = 0; i < 300; i++) await store.write([[OP_PUT, `k${i % 7}`, `v${i}`]])
    expect(store.lastSeq).toBe(300)
    await store.trimLog()
    const first = await store.log.firstSeq()
    expect(first).toBe(291)
    // A peer holding everything up to the newest point is served after it; one holding less, from the first kept seq.
    expect(await store.log.resumeFrom((vv) => (vv[store.origin] ?? 0) <= 300)).toBe(301)
    expect(await store.log.resumeFrom((vv) => (vv[store.origin] ?? 0) <= 290)).toBe(291)
    expect(await store.log.resumeFrom((vv) => (vv[store.origin] ?? 0) <= 289)).toBe(null)
    await store.close()
    stores = stores.filter((s) => s !== store)
    const seqs = await resumeSeqs(dataDir)
    // Of 300 points, those from the one just before the first kept block on: bounded by the retention, not the writes.
    expect(seqs).toEqual(Array.from({ length: 11 }, (_, i) => 290 + i))
  })
})

describe('store: a damaged log record', () => {
  it('ends a read that reaches it with INTERNAL, and the log then serves only from the block after it', async () => {
    const dataDir = join(dir, 'damaged')
    let store = await Store.open({ dataDir, sync: 'always', logRetention: 1000 })
    for (let i = 0; i < 5; i++) await store.write([[OP_PUT, `k${i}`, 'v']]) // a block each: seqs 1..5
    await store.close()
    const db = new Level<Buffer, Buffer>(join(dataDir, 'db'), { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    await db.open()
    const key = Buffer.concat([Buffer.from('!log!'), seqKey(3)])
    await db.put(key, Buffer.from([0xb1, 0, 0, 0, 9, 1]))
    await db.close()

    store = await Store.open({ dataDir, sync: 'always', logRetention: 1000 })
    stores.push(store)
    expect(await store.log.firstSeq()).toBe(1)
    const read: number[] = []
    await expect(async () => {
      for await (const [seq] of store.log.read(1)) read.push(seq)
    }).rejects.toMatchObject({ code: 'INTERNAL', message: expect.stringContaining('seq 3 is damaged') })
    expect(read).toEqual([1, 2])
    expect(await store.log.firstSeq()).toBe(4)
    expect(store.log.start).toBe(4)
    const after: number[] = []
    for await (const [seq] of store.log.read(4)) after.push(seq)
    expect(after).toEqual([4, 5])
  })

  it('ends a batch that reaches it with INTERNAL, and the log then serves batches only from the block after it', async () => {
    const dataDir = join(dir, 'damaged-batch')
    let store = await Store.open({ dataDir, sync: 'always', logRetention: 1000 })
    for (let i = 0; i < 5; i++) await store.write([[OP_PUT, `k${i}`, 'v']]) // a block each: seqs 1..5
    await store.close()
    const db = new Level<Buffer, Buffer>(join(dataDir, 'db'), { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    await db.open()
    await db.put(Buffer.concat([Buffer.from('!log!'), seqKey(3)]), Buffer.from([0xb1, 0, 0, 0, 9, 1]))
    await db.close()

    store = await Store.open({ dataDir, sync: 'always', logRetention: 1000 })
    stores.push(store)
    // A batch that stops before the damaged record reads as it is.
    expect((await store.log.readBatch(1, 2, Number.POSITIVE_INFINITY)).map((raw) => decodeEntry(raw).seq)).toEqual([
      1, 2,
    ])
    await expect(store.log.readBatch(1, 10, Number.POSITIVE_INFINITY)).rejects.toMatchObject({
      code: 'INTERNAL',
      message: expect.stringContaining('seq 3 is damaged'),
    })
    expect(await store.log.firstSeq()).toBe(4)
    expect(store.log.start).toBe(4)
    expect((await store.log.readBatch(4, 10, Number.POSITIVE_INFINITY)).map((raw) => decodeEntry(raw).seq)).toEqual([
      4, 5,
    ])
  })
})

describe('store: entry identity', () => {
  function remote(origin: string, originSeq: number, ops: LogEntry['ops'], hlc = 1000 * 1024): Buffer {
    return encodeEntry({ seq: 999, epoch: 9, origin, originSeq, hlc, ops })
  }

  it("numbers this node's own writes densely, whatever else its log holds, and keeps the counter across restarts", async () => {
    const dataDir = join(dir, 'dense')
    let store = await Store.open({ dataDir, sync: 'always', logRetention: 1000 })
    await store.write([[OP_PUT, 'a', '1']])
    // A frame from a peer between two local writes: seqs go on, the own counter does not skip.
    await store.applyRemote([readForApply(remote('peer', 1, [[OP_PUT, 'b', '2']]))], logOrderWins, 'append')
    await store.write([[OP_PUT, 'c', '3']])
    await store.close()
    store = await Store.open({ dataDir, sync: 'always', logRetention: 1000 })
    stores.push(store)
    await store.write([[OP_PUT, 'd', '4']])
    const entries: LogEntry[] = []
    for await (const [, raw] of store.log.read(1)) entries.push(decodeEntry(raw))
    expect(entries.map((e) => [e.seq, e.origin, e.originSeq])).toEqual([
      [1, store.origin, 1],
      [2, 'peer', 1],
      [3, store.origin, 2],
      [4, store.origin, 3],
    ])
    expect(store.vv.toObject()).toEqual({ [store.origin]: 3, peer: 1 })
  })

  it('persists the HLC high-water mark: after a restart with the wall clock behind it, new writes still order after it', async () => {
    const dataDir = join(dir, 'hwm')
    let store = await Store.open({ dataDir, sync: 'always', logRetention: 1000 })
    // A peer's entry stamped far ahead (by one minute) pulls the clock along.
    const ahead = (Date.now() + 60_000) * 1024
    await store.applyRemote([readForApply(remote('peer', 1, [[OP_PUT, 'x', '1']], ahead))], logOrderWins, 'append')
    await store.close()
    store = await Store.open({ dataDir, sync: 'always', logRetention: 1000 })
    stores.push(store)
    await store.write([[OP_PUT, 'y', '2']])
    const last = await store.log.lastEntry()
    expect(last!.hlc).toBeGreaterThan(ahead)
  })

  it('appends peer entries with its own seq and epoch, keeps their identity bytes, and skips what it already holds', async () => {
    const store = await open('append')
    await store.beginEpoch(3)
    const frame = [1, 2, 3].map((n) => readForApply(remote('p', n, [[OP_PUT, `k${n}`, `v${n}`]])))
    expect(await store.applyRemote(frame.slice(0, 2), logOrderWins, 'append')).toBe(2)
    // The same entries again (from another path of a mesh), and one new one.
    expect(await store.applyRemote(frame, logOrderWins, 'append')).toBe(3)
    const entries: Buffer[] = []
    for await (const [, raw] of store.log.read(1)) entries.push(raw)
    expect(entries.map((raw) => decodeEntry(raw)).map((e) => [e.seq, e.epoch, e.originSeq])).toEqual([
      [1, 3, 1],
      [2, 3, 2],
      [3, 3, 3],
    ])
    for (let i = 0; i < 3; i++) {
      expect(entries[i].subarray(readForApply(entries[i]).identityAt)).toEqual(
        frame[i].raw.subarray(frame[i].identityAt),
      )
    }
    expect(await store.get('k3')).toBe('v3')
  })

  it('reads no record for the entries of a frame it already holds', async () => {
    // Without LwwHeads, which on a new data dir reads no record at all (see lww-heads.test.ts).
    const store = await openLww('held', 0)
    const resolver = store.resolver
    const db = (
      store as unknown as { db: { getMany(keys: Buffer[]): Promise<unknown[]>; getSync(key: Buffer): unknown } }
    ).db
    const getMany = db.getMany.bind(db)
    const getSync = db.getSync.bind(db)
    let read = 0
    db.getMany = (keys) => {
      read += keys.length
      return getMany(keys)
    }
    db.getSync = (key) => {
      read++
      return getSync(key)
    }
    const frame = [1, 2, 3].map((n) => readForApply(remote('p', n, [[OP_PUT, `k${n}`, `v${n}`]])))
    await store.applyRemote(frame.slice(0, 2), resolver, 'append')
    expect(read).toBe(2)
    // The same two again (from another path of a mesh) and a new one: only the new one is read.
    expect(await store.applyRemote(frame, resolver, 'append')).toBe(3)
    expect(read).toBe(3)
    expect(await store.get('k3')).toBe('v3')
    expect(store.vv.get('p')).toBe(3)
  })

  it('applies encoded entries (applyEncoded) as applyRemote applies them read, and refuses whole a frame holding one it cannot read', async () => {
    const open = async (name: string) => {
      const store = await openLww(name)
      return { store, resolver: store.resolver }
    }
    const a = await open('encoded-a')
    const b = await open('encoded-b')
    const frames = [
      [remote('p', 1, [[OP_PUT, 'x', 'one']]), remote('p', 2, [[OP_PUT, 'y', Buffer.from([1, 2])]])],
      [remote('p', 3, [[OP_DEL, 'x']]), remote('p', 4, [[OP_PUT, 'z', 'with a TTL', { x: 4_000_000_000_000 }]])],
    ]
    // An entry the peer sends twice (a mesh does) is skipped by both.
    frames.push([frames[1][1], remote('p', 5, [[OP_PUT, 'y', 'last']])])
    for (const frame of frames) {
      expect(await b.store.applyEncoded(frame, b.resolver, 'append')).toBe(
        await a.store.applyRemote(frame.map(readForApply), a.resolver, 'append'),
      )
    }
    for (const key of ['x', 'y', 'z']) expect(await b.store.getRecord(key)).toEqual(await a.store.getRecord(key))
    expect(await b.store.get('y')).toBe('last')
    expect(await b.store.get('x')).toBeUndefined()
    expect(b.store.vv.get('p')).toBe(5)
    expect(b.store.keys?.digest.hex).toBe(a.store.keys?.digest.hex)
    const logOf = async (store: Store) => {
      const out: LogEntry[] = []
      for await (const [, raw] of store.log.read(1)) out.push(decodeEntry(raw))
      return out
    }
    expect(await logOf(b.store)).toEqual(await logOf(a.store))

    // A good entry, then one whose op has a key that is not a string: nothing of the frame is written.
    const good = remote('p', 6, [[OP_PUT, 'w', 'kept out']])
    const bad = encodeEntry({
      seq: 999,
      epoch: 9,
      origin: 'p',
      originSeq: 7,
      hlc: 1000 * 1024,
      ops: [[OP_PUT, 7, 'v']],
    } as unknown as LogEntry)
    const seq = b.store.lastSeq
    await expect(b.store.applyEncoded([good, bad], b.resolver, 'append')).rejects.toMatchObject({ code: 'INVALID' })
    expect(await b.store.get('w')).toBeUndefined()
    expect(b.store.vv.get('p')).toBe(5)
    expect(b.store.lastSeq).toBe(seq)
    // The next frame goes on from what the node holds.
    expect(await b.store.applyEncoded([good], b.resolver, 'append')).toBe(seq + 1)
    expect(await b.store.get('w')).toBe('kept out')
  })

  it("refuses a frame that skips one of an origin's counters, writing none of it, and goes on with the next", async () => {
    const store = await open('gap')
    const e = (n: number) => readForApply(remote('p', n, [[OP_PUT, `k${n}`, 'v']]))
    await store.applyRemote([e(1)], logOrderWins, 'append')
    const local = store.write([[OP_PUT, 'mine', '1']]) // may share the group with the bad frame
    await expect(store.applyRemote([e(2), e(4)], logOrderWins, 'append')).rejects.toMatchObject({ code: 'INVALID' })
    expect(await local).toBe(2)
    expect(await store.get('k2')).toBeUndefined()
    expect(store.vv.get('p')).toBe(1)
    expect(await store.applyRemote([e(2)], logOrderWins, 'append')).toBe(3)
  })

  it('applies remote ops through the resolver it is given, which sees each key as the group has left it', async () => {
    const store = await open('resolver')
    await store.write([[OP_PUT, 'n', '5']])
    // A resolver that keeps the larger number: a stand-in for a conflict policy.
    const larger: ConflictResolver = {
      name: 'larger',
      readsCurrent: true,
      resolve(op, _entry, current) {
        if (op.value === null) return null
        const incoming = Number(Buffer.from(op.value).toString())
        if (current !== undefined && Number(decodeRecord(current)) >= incoming) return KEEP
        return encodeRecord(String(incoming))
      },
    }
    const e = (n: number, value: string) => readForApply(remote('p', n, [[OP_PUT, 'n', value]]))
    // Two frames submitted together share a group: the second sees the first's write.
    const results = await Promise.all([
      store.applyRemote([e(1, '3')], larger, 'append'),
      store.applyRemote([e(2, '9'), e(3, '7')], larger, 'append'),
    ])
    expect(results).toEqual([2, 4])
    expect(await store.get('n')).toBe('9')
    // The same entries through the log-order resolver would have left the last one.
    const other = await open('resolver-log-order')
    await other.applyRemote([e(1, '3'), e(2, '9'), e(3, '7')], logOrderWins, 'append')
    expect(await other.get('n')).toBe('7')
  })
})

describe('store: writingSeq', () => {
  it('covers a group whose batch is handed to LevelDB before lastSeq moves', async () => {
    // A read on the thread pool can see a batch being written: what it may
    // have seen is bounded by writingSeq, which moves before the write
    // starts, while lastSeq moves only once it is durable.
    const store = await open('w')
    await store.write([[OP_PUT, 'a', '1']])
    expect(store.writingSeq).toBe(1)
    let done = false
    const pending = store.write([[OP_PUT, 'a', '2']]).then(() => {
      done = true
    })
    // The group first reads its keys' records (one getMany on the thread
    // pool), then hands its batch to LevelDB; the fsynced write completes
    // on a later turn. Each turn of this loop lets one of those finish.
    while (store.writingSeq < 2 && !done) await new Promise((resolve) => setImmediate(resolve))
    expect(store.writingSeq).toBe(2)
    expect(store.lastSeq).toBe(1)
    await pending
    expect(store.lastSeq).toBe(2)
    expect(store.writingSeq).toBe(2)
  })
})

describe('store: reads', () => {
  /** Whether `p` settles within the current turn's promise jobs (no I/O callback can run before). */
  async function settlesThisTurn<T>(p: Promise<T>): Promise<{ settled: boolean; value?: T }> {
    let out: { settled: boolean; value?: T } = { settled: false }
    p.then((value) => (out = { settled: true, value }))
    for (let i = 0; i < 10; i++) await Promise.resolve()
    return out
  }

  it('answers a get from memory within the turn, without the thread pool, with the latest committed value', async () => {
    const store = await open('r')
    await store.write([[OP_PUT, 'k', 'v1']])
    await store.write([[OP_PUT, 'b', new Uint8Array([7])]])
    expect(await settlesThisTurn(store.get('k'))).toEqual({ settled: true, value: 'v1' })
    expect(await settlesThisTurn(store.get('b'))).toEqual({ settled: true, value: Buffer.from([7]) })
    expect(await settlesThisTurn(store.get('none'))).toEqual({ settled: true, value: undefined })
    await store.write([[OP_PUT, 'k', 'v2']])
    await store.write([[OP_DEL, 'b']])
    expect(await settlesThisTurn(store.get('k'))).toEqual({ settled: true, value: 'v2' })
    expect(await settlesThisTurn(store.get('b'))).toEqual({ settled: true, value: undefined })
  })

  it('getNow answers a get as a value, not a promise, and says NOT_NOW once reads must go to the thread pool', async () => {
    let now = 0
    // Every synchronous read looks 5 ms long: the second spends the 8 ms budget of the 1000 ms window.
    const store = await Store.open({
      dataDir: join(dir, 'now'),
      sync: 'always',
      logRetention: 1000,
      // The gate's rule alone: a value the read cache keeps needs no read (read-cache.test.ts).
      readCacheKeys: 0,
      syncReads: { slowMs: 1, budgetMs: 8, windowMs: 1000, now: () => (now += 5) - 5 },
    })
    stores.push(store)
    await store.write([
      [OP_PUT, 'k', 'v'],
      [OP_PUT, 'b', new Uint8Array([7])],
    ])
    // The write's own reads (are k and b new keys?) went through the gate too: a new window.
    now += 1000
    expect(store.getNow('k')).toBe('v')
    expect(store.getNow('b')).toEqual(Buffer.from([7]))
    expect(store.getNow('none')).toBe(NOT_NOW)
    now += 1000
    expect(store.getNow('none')).toBeUndefined()
    await store.write([[OP_DEL, 'k']])
    expect(store.getNow('k')).toBeUndefined()
    expect(store.getNow('b')).toBe(NOT_NOW)
    expect(await store.get('b')).toEqual(Buffer.from([7]))
  })

  it('getWithSeq gives the seq of the write that last changed the key; a missing key depends on the head', async () => {
    const store = await open('seq')
    const a1 = await store.write([[OP_PUT, 'a', '1']])
    const b = await store.write([[OP_PUT, 'b', new Uint8Array([2])]])
    const a2 = await store.write([
      [OP_PUT, 'a', '2'],
      [OP_PUT, 'c', '3'],
    ])
    await store.write([[OP_PUT, 'd', '4']])
    const gone = await store.write([[OP_DEL, 'b']])
    expect(a1).toBeLessThan(a2)
    expect(await settlesThisTurn(store.getWithSeq('a'))).toEqual({ settled: true, value: { value: '2', seq: a2 } })
    expect(await store.getWithSeq('c')).toEqual({ value: '3', seq: a2 })
    // Missing, never written or deleted: what it shows depends on every write so far.
    expect(await store.getWithSeq('none')).toEqual({ value: undefined, seq: store.writingSeq })
    expect(await store.getWithSeq('b')).toEqual({ value: undefined, seq: gone })
    expect(b).toBeLessThan(gone)
  })

  it('getWithSeq through the thread pool gives the same answers', async () => {
    const store = await Store.open({
      dataDir: join(dir, 'seq-pool'),
      sync: 'always',
      logRetention: 1000,
      // Every synchronous read is slow and the budget is 0: reads go to the pool after the first.
      syncReads: {
        slowMs: 0,
        budgetMs: 0,
        windowMs: 1_000_000,
        now: (() => {
          let t = 0
          return () => (t += 1)
        })(),
      },
    })
    stores.push(store)
    const a = await store.write([[OP_PUT, 'a', '1']])
    await store.write([[OP_PUT, 'z', '9']])
    await store.getWithSeq('a')
    const viaPool = store.getWithSeq('a')
    expect((await settlesThisTurn(viaPool)).settled).toBe(false)
    expect(await viaPool).toEqual({ value: '1', seq: a })
    expect(await store.getWithSeq('none')).toEqual({ value: undefined, seq: store.writingSeq })
  })

  it('goes through the thread pool once slow synchronous reads have spent their budget, until the window ends', async () => {
    let now = 0
    // Every synchronous read looks 5 ms long: the second spends the 8 ms budget of the 1000 ms window.
    const clock = () => (now += 5) - 5
    const store = await Store.open({
      dataDir: join(dir, 'slow'),
      sync: 'always',
      logRetention: 1000,
      syncReads: { slowMs: 1, budgetMs: 8, windowMs: 1000, now: () => clock() },
    })
    stores.push(store)
    await store.write([[OP_PUT, 'k', 'v']])
    // The write read nothing (a store opened empty knows k is new: KeyPresence.markComplete); a new window all the same.
    now += 1000
    expect(await settlesThisTurn(store.get('k'))).toEqual({ settled: true, value: 'v' })
    expect(await settlesThisTurn(store.get('k'))).toEqual({ settled: true, value: 'v' })
    const later = store.get('k')
    expect((await settlesThisTurn(later)).settled).toBe(false)
    expect(await later).toBe('v')
    // What /metrics reports: the two gets' slow synchronous reads, one window that fell back to the pool.
    expect(store.syncReadStats).toEqual({ slowReads: 2, fallbacks: 1 })
    now += 1000
    expect(await settlesThisTurn(store.get('k'))).toEqual({ settled: true, value: 'v' })
  })
})

describe('store: expiry', () => {
  it('fills a limited scan past keys that expired but whose delete has not come yet', async () => {
    let now = 1_000_000
    const store = await Store.open({
      dataDir: join(dir, 'ttl'),
      sync: 'always',
      logRetention: 1000,
      clock: { now: () => now, wall: () => now },
    })
    stores.push(store)
    await store.write([
      [OP_PUT, 'a', 'gone', { x: now + 10 }],
      [OP_PUT, 'b', '1'],
      [OP_PUT, 'c', '2'],
      [OP_PUT, 'd', '3'],
    ])
    now += 20
    const keys: string[] = []
    // The caller stops once it has its page (node.ts readPage); LevelDB's own limit would have ended at 'b'.
    for await (const [key] of store.scan({ limit: 2 })) if (keys.push(key) === 2) break
    expect(keys).toEqual(['b', 'c'])
  })
})

describe('store: writeEach', () => {
  for (const mode of ['single', 'lww'] as const) {
    it(`writes each op as a write of its own, as write([op]) one after another would (${mode})`, async () => {
      const open = (name: string) =>
        Store.open({
          dataDir: join(dir, `each-${mode}-${name}`),
          sync: 'none',
          logRetention: 1000,
          ...(mode === 'lww' ? { mode: 'multi' as const, conflict: 'lww' as const } : {}),
        })
      const [each, one] = [await open('each'), await open('one')]
      stores.push(each, one)
      if (mode === 'lww') {
        each.resolver = new LwwResolver()
        one.resolver = new LwwResolver()
      }
      const ops = (round: number): EntryOp[] => [
        [OP_PUT, 'a', `${round}`],
        [OP_PUT, `new${round}`, Buffer.from([round, 0xff])],
        [OP_PUT, 'a', `again ${round}`],
        [OP_PUT, 'b', new TextBytes(Buffer.from(`t\u00e9${round}`))],
      ]
      for (let round = 0; round < 5; round++) {
        // Shares groups with other writes: a run, a plain write, another run.
        const [seqs, plain, more] = await Promise.all([
          each.writeEach(ops(round)),
          each.write([[OP_DEL, 'b']]),
          each.writeEach([[OP_PUT, `c${round}`, 'x']]),
        ])
        for (const op of ops(round)) await one.write([op])
        await one.write([[OP_DEL, 'b']])
        await one.write([[OP_PUT, `c${round}`, 'x']])
        // Answered with the seq of its last op's entry; every op has one of its own.
        expect(new Set([seqs, plain, more]).size).toBe(3)
        expect(Math.max(seqs, plain, more)).toBe(6 * (round + 1))
      }
      const entries = async (store: Store) => {
        const out: unknown[] = []
        for await (const [seq, raw] of store.log.read(1)) {
          const entry = decodeEntry(raw)
          out.push([seq, entry.originSeq, entry.ops])
        }
        return out
      }
      // One entry an op, in seq and counter order, whatever the groups were.
      expect(await entries(each)).toEqual(await entries(one))
      const hlcs: number[] = []
      for await (const [, raw] of each.log.read(1)) hlcs.push(decodeEntry(raw).hlc)
      expect(hlcs).toEqual([...new Set(hlcs)].sort((x, y) => x - y))
      for (const store of [each, one]) {
        expect(store.keyCount).toBe(await store.countKeys())
        expect(await store.get('a')).toBe('again 4')
        expect(await store.get('new4')).toEqual(Buffer.from([4, 0xff]))
      }
      // b was put by a run and deleted by the write submitted after it, in the same group or the next.
      expect(await each.get('b')).toBeUndefined()
    })
  }
})

describe('store: key count', () => {
  // The presence cache both off and smaller than the keys written, so that
  // hits, misses and evictions all happen.
  // And with a group's reads made on the event loop (the sync-read gate
  // open) and on the thread pool (its budget spent from the start).
  for (const [presenceKeys, pool] of [
    [0, false],
    [3, false],
    [100_000, false],
    [0, true],
    [3, true],
  ] as const) {
    it(`is kept through puts, overwrites, deletes and batches in shared groups (presence cache ${presenceKeys}${pool ? ', reads on the thread pool' : ''})`, async () => {
      const store = await Store.open({
        dataDir: join(dir, `count-${presenceKeys}-${pool}`),
        sync: 'none',
        logRetention: 1000,
        presenceKeys,
        ...(pool ? { syncReads: { budgetMs: -1 } } : {}),
      })
      stores.push(store)
      let seed = 7
      const next = (n: number) => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31
        return seed % n
      }
      for (let round = 0; round < 20; round++) {
        // Writes issued together share groups, and several touch the same key.
        await Promise.all(
          Array.from({ length: 30 }, () => {
            const key = `k${next(40)}`
            if (next(3) === 0) return store.write([[OP_DEL, key]])
            if (next(4) === 0)
              return store.write([
                [OP_PUT, key, 'a'],
                [OP_DEL, `k${next(40)}`],
                [OP_PUT, key, 'b'],
              ])
            return store.write([[OP_PUT, key, 'v']])
          }),
        )
        expect(store.keyCount).toBe(await store.countKeys())
      }
      expect(store.keyCount).toBeGreaterThan(0)
    })
  }

  for (const presenceKeys of [0, 3, 10, 40, 100_000]) {
    it(`is kept through TTL puts, expiries and conditional writes sharing groups with plain ones (presence cache ${presenceKeys})`, async () => {
      let now = 1_000_000
      const store = await Store.open({
        dataDir: join(dir, `count-ttl-${presenceKeys}`),
        sync: 'none',
        logRetention: 1000,
        presenceKeys,
        clock: { now: () => now, wall: () => now },
      })
      stores.push(store)
      let seed = 11
      const next = (n: number) => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31
        return seed % n
      }
      const refused: unknown[] = []
      for (let round = 0; round < 25; round++) {
        // New and existing keys; groups that read records (expiries, conditions)
        // and groups that only look keys up, the same keys in both.
        await Promise.all(
          Array.from({ length: 30 }, () => {
            const key = `k${next(50)}`
            const roll = next(10)
            if (roll === 0) return store.write([[OP_DEL, key]])
            if (roll === 1) return store.write([[OP_PUT, key, 't', { x: now + 1 + next(3) }]])
            if (roll === 2) return store.expire([key, `k${next(50)}`])
            if (roll === 3)
              return store.write([[OP_PUT, key, 'a']], [{ key, ifAbsent: true }]).catch((e) => refused.push(e))
            if (roll === 4)
              return store.write([[OP_DEL, key]], [{ key, ifPresent: true }]).catch((e) => refused.push(e))
            if (roll === 5)
              return store.write([
                [OP_PUT, key, 'a'],
                [OP_PUT, `n${round}-${next(1000)}`, 'new'],
                [OP_DEL, `k${next(50)}`],
              ])
            return store.write([[OP_PUT, key, 'v']])
          }),
        )
        now += 2
        expect(store.keyCount).toBe(await store.countKeys())
      }
      expect(store.keyCount).toBeGreaterThan(0)
      // Both branches of the conditions were taken.
      expect(refused.length).toBeGreaterThan(0)
    })
  }

  it("reads a group's keys (presence, conditions) on the event loop while the sync-read gate lets it, else on the thread pool", async () => {
    for (const pool of [false, true]) {
      const store = await Store.open({
        dataDir: join(dir, `group-reads-${pool}`),
        sync: 'none',
        logRetention: 1000,
        presenceKeys: 0,
        ...(pool ? { syncReads: { budgetMs: -1 } } : {}),
      })
      stores.push(store)
      await store.write([[OP_PUT, 'a', '1']])
      const db = (store as unknown as { db: Level<Buffer, Buffer> }).db
      let poolReads = 0
      const hasMany = db.hasMany.bind(db)
      const getMany = db.getMany.bind(db)
      db.hasMany = ((keys: Buffer[]) => {
        poolReads++
        return hasMany(keys)
      }) as typeof db.hasMany
      db.getMany = ((keys: Buffer[]) => {
        poolReads++
        return getMany(keys)
      }) as typeof db.getMany
      const seqA = (await store.getWithSeq('a')).seq
      await Promise.all([
        store.write([[OP_PUT, 'a', '2']]),
        store.write([[OP_PUT, 'b', '1']]),
        store.write([[OP_PUT, 'a', '3']], [{ key: 'a', ifSeq: seqA }]).catch((err) => err.code),
      ])
      await store.write([[OP_PUT, 'c', '1']], [{ key: 'c', ifSeq: 0 }])
      expect(store.keyCount).toBe(3)
      expect(await store.get('a')).toBe('2')
      if (pool) expect(poolReads).toBeGreaterThanOrEqual(2)
      else expect(poolReads).toBe(0)
    }
  })

  it('counts a data dir that has no stored count (an older build) once, when it opens', async () => {
    const dataDir = join(dir, 'older')
    let store = await Store.open({ dataDir, sync: 'always', logRetention: 1000 })
    for (let i = 0; i < 25; i++) await store.write([[OP_PUT, `k${i}`, 'v']])
    await store.write([[OP_DEL, 'k3']])
    await store.close()
    const db = new Level<string, unknown>(join(dataDir, 'db'), { valueEncoding: 'json' })
    const meta = db.sublevel<string, unknown>('meta', { valueEncoding: 'json' })
    expect(await meta.get('keyCount')).toBe(24)
    await meta.del('keyCount')
    await db.close()
    store = await Store.open({ dataDir, sync: 'always', logRetention: 1000 })
    stores.push(store)
    expect(store.keyCount).toBe(24)
    await store.write([[OP_PUT, 'k3', 'back']])
    expect(store.keyCount).toBe(25)
    await store.close()
    const again = new Level<string, unknown>(join(dataDir, 'db'), { valueEncoding: 'json' })
    expect(await again.sublevel<string, unknown>('meta', { valueEncoding: 'json' }).get('keyCount')).toBe(25)
    await again.close()
  })
})

describe('store: damaged records', () => {
  /** Opens the closed store's LevelDB as it is on disk, to change it under the store. */
  async function onDisk(name: string, change: (data: Sub, meta: Sub) => Promise<void>): Promise<void> {
    const db = new Level<Buffer, Buffer>(join(dir, name, 'db'), { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    const data = db.sublevel<Buffer, Buffer>('data', { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    const meta = db.sublevel<Buffer, Buffer>('meta', { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    await change(data, meta)
    await db.close()
  }
  interface Sub {
    get(key: Buffer): Promise<Buffer | undefined>
    put(key: Buffer, value: Buffer): Promise<void>
    del(key: Buffer): Promise<void>
  }

  /** A store `name` holding a, b, c = one, two, three, reopened with b's record damaged on disk ('two' reads 'twn'). */
  async function damagedB(name: string, openStore: (name: string) => Promise<Store>): Promise<Store> {
    const store = await openStore(name)
    await store.write([
      [OP_PUT, 'a', 'one'],
      [OP_PUT, 'b', 'two'],
      [OP_PUT, 'c', 'three'],
    ])
    await store.close()
    stores = stores.filter((s) => s !== store)
    await onDisk(name, async (data) => {
      const record = (await data.get(Buffer.from('b'))) as Buffer
      record[record.length - 1] ^= 0x01
      await data.put(Buffer.from('b'), record)
    })
    return openStore(name)
  }

  async function reopen(store: Store, name: string): Promise<Store> {
    await store.close()
    stores = stores.filter((s) => s !== store)
    return open(name)
  }

  // Rule: a record whose checksum fails is never read as data, nor decided on by a write.
  it('refuses reads and reading writes of a damaged record with CORRUPT, and a blind put heals it', async () => {
    let store = await damagedB('d', open)
    const found: string[] = []
    store.onCorrupt = (key) => found.push(key)
    const corrupt = { code: 'CORRUPT', details: { key: 'b' } }
    await expect(store.get('b')).rejects.toMatchObject(corrupt)
    await expect(store.getMany(['a', 'b'])).rejects.toMatchObject(corrupt)
    await expect(store.getRecord('b')).rejects.toMatchObject(corrupt)
    const scan = async () => {
      for await (const _ of store.scan({})) {
      }
    }
    await expect(scan()).rejects.toMatchObject(corrupt)
    const snapshot = store.snapshot()
    const chunks = async () => {
      for await (const _ of snapshot.chunks(1 << 20)) {
      }
    }
    await expect(chunks()).rejects.toMatchObject(corrupt)
    await snapshot.close()
    expect(await store.get('a')).toBe('one')
    // A condition on it cannot be decided: refused, nothing written; a write beside it is not held up.
    const conditional = store.write([[OP_PUT, 'b', 'if']], [{ key: 'b', ifSeq: 1 }])
    const beside = store.write([[OP_PUT, 'c', 'four']])
    await expect(conditional).rejects.toMatchObject(corrupt)
    await beside
    expect(await store.get('c')).toBe('four')
    expect(found).toEqual(['b'])
    expect([...store.damagedKeys.keys()]).toEqual(['b'])
    expect(store.damagedReads).toBe(6)

    await store.write([[OP_PUT, 'b', 'again']])
    expect(store.damagedKeys.size).toBe(0)
    expect(await store.get('b')).toBe('again')
    store = await reopen(store, 'd')
    expect(await store.get('b')).toBe('again')
  })

  // A run of writes (writeEach) under a conflict policy: each write is refused or written for itself, and says which.
  it('answers each write of a run under a conflict policy for itself when a damaged record refuses one', async () => {
    const store = await damagedB('run', openLww)
    const run = store.writeEach([
      [OP_PUT, 'a', 'uno'],
      [OP_PUT, 'b', 'dos'],
      [OP_PUT, 'c', 'tres'],
    ])
    const refused = await run.then(
      () => null,
      (err: unknown) => err,
    )
    expect(refused).toBeInstanceOf(RunRefused)
    const outcomes = (refused as RunRefused).outcomes
    expect(outcomes.map((o) => o.ok)).toEqual([true, false, true])
    expect(outcomes[1]).toMatchObject({ error: { code: 'CORRUPT', details: { key: 'b' } } })
    // The written ones are written, each with a seq of its own.
    const seqs = outcomes.flatMap((o) => (o.ok ? [o.seq] : []))
    expect(new Set(seqs).size).toBe(2)
    expect(await store.get('a')).toBe('uno')
    expect(await store.get('c')).toBe('tres')
    await expect(store.get('b')).rejects.toMatchObject({ code: 'CORRUPT' })
    // A run with nothing refused answers with its last seq.
    expect(await store.writeEach([[OP_PUT, 'd', 'x']])).toBeGreaterThan(Math.max(...seqs))
  })

  // Data-dir compatibility: records of a build that did not seal them still read.
  it('reads records without a checksum in a data dir that held some, and takes one as damage where every record was sealed', async () => {
    let store = await open('old')
    await store.write([[OP_PUT, 'new', 'sealed']])
    await store.close()
    stores = stores.filter((s) => s !== store)
    await onDisk('old', async (data, meta) => {
      await data.put(Buffer.from('legacy'), encodeRecord('plain'))
      // As an older build left it: no mark that every record is sealed.
      await meta.del(Buffer.from('sealed'))
    })
    store = await open('old')
    expect(await store.get('legacy')).toBe('plain')
    expect(await store.get('new')).toBe('sealed')

    let fresh = await open('fresh')
    await fresh.write([[OP_PUT, 'new', 'sealed']])
    await fresh.close()
    stores = stores.filter((s) => s !== fresh)
    await onDisk('fresh', (data) => data.put(Buffer.from('legacy'), encodeRecord('plain')))
    fresh = await open('fresh')
    await expect(fresh.get('legacy')).rejects.toMatchObject({ code: 'CORRUPT' })
  })
})

describe('store: a full disk', () => {
  /** The next batch LevelDB writes goes to disk whole, and then the write reports a full disk, as a failed flush would. */
  function failAfterWriting(store: Store): void {
    const db = (store as unknown as { db: { batch: () => { write: (o: unknown) => Promise<void> } } }).db
    const realBatch = db.batch
    db.batch = function (this: unknown) {
      db.batch = realBatch
      const batch = realBatch.call(this)
      const write = batch.write.bind(batch)
      batch.write = async (options: unknown) => {
        await write(options)
        throw Object.assign(new Error('IO error: No space left on device'), { code: 'LEVEL_IO_ERROR' })
      }
      return batch
    }
  }

  it('after a write that failed for space but reached the disk whole, reopens at the disk head: no seq reused, the entry kept and announced', async () => {
    const store = await Store.open({
      dataDir: join(dir, 'full'),
      sync: 'always',
      logRetention: 1000,
      noSpaceHeadroomBytes: 0,
    })
    stores.push(store)
    await store.write([[OP_PUT, 'a', '1']])
    await store.write([[OP_PUT, 'b', '2']])
    const heads: number[] = []
    store.onCommit((seq) => heads.push(seq))

    failAfterWriting(store)
    await expect(store.write([[OP_PUT, 'c', '3']])).rejects.toMatchObject({ code: 'UNCERTAIN' })
    expect(store.lastSeq).toBe(2)
    await expect(store.write([[OP_PUT, 'd', '4']])).rejects.toMatchObject({ code: 'NOSPACE' })

    await (store as unknown as { recoverSpace: () => Promise<void> }).recoverSpace()
    expect(store.noSpace).toBeNull()
    // The failed group's entry is on disk: the store holds it, counts its key and tells the feeds.
    expect(store.lastSeq).toBe(3)
    expect(heads).toEqual([3])
    expect(store.keyCount).toBe(3)
    expect(await store.get('c')).toBe('3')

    expect(await store.write([[OP_PUT, 'e', '5']])).toBe(4)
    const entries: [number, LogEntry['ops']][] = []
    for await (const [seq, raw] of store.log.read(1)) entries.push([seq, decodeEntry(raw).ops])
    expect(entries).toEqual([
      [1, [[OP_PUT, 'a', '1']]],
      [2, [[OP_PUT, 'b', '2']]],
      [3, [[OP_PUT, 'c', '3']]],
      [4, [[OP_PUT, 'e', '5']]],
    ])
    expect(await store.get('d')).toBeUndefined()
    expect(store.keyCount).toBe(4)
  })
})

describe('store: commit listeners', () => {
  it('a listener that throws neither fails the committed group nor keeps the others from hearing of it', async () => {
    const thrown: unknown[] = []
    const store = await Store.open({
      dataDir: join(dir, 'listeners'),
      sync: 'always',
      logRetention: 1000,
      onListenerThrew: (err) => {
        thrown.push(err)
      },
    })
    stores.push(store)
    store.onCommit(() => {
      throw new Error('listener bug')
    })
    const heard: number[] = []
    store.onCommit((seq) => heard.push(seq))
    const seq = await store.write([[OP_PUT, 'a', '1']])
    expect(heard).toEqual([seq])
    expect(thrown).toHaveLength(1)
    expect(await store.get('a')).toBe('1')
    expect(store.lastSeq).toBe(seq)
  })
})

describe('store: --sync periodic', () => {
  async function openPeriodic(name: string, fsyncFile?: (path: string) => Promise<void>): Promise<Store> {
    // A period far longer than the test: only syncNow() syncs.
    const store = await Store.open({
      dataDir: join(dir, name),
      sync: 'periodic',
      periodicSyncMs: 3_600_000,
      logRetention: 1000,
      fsyncFile,
    })
    stores.push(store)
    return store
  }

  it('fsyncs LevelDB’s log files beside LevelDB: writes go on while the fsync is under way', async () => {
    const synced: string[] = []
    let release = () => {}
    const held = new Promise<void>((resolve) => {
      release = resolve
    })
    let reached = () => {}
    const fsyncing = new Promise<void>((resolve) => {
      reached = resolve
    })
    const store = await openPeriodic('held', async (path) => {
      synced.push(path)
      reached()
      await held
    })
    await store.write([[OP_PUT, 'a', '1']])
    const syncing = store.syncNow()
    await fsyncing
    const logs = readdirSync(join(dir, 'held', 'db')).filter((name) => /^\d+\.log$/.test(name))
    expect(logs.length).toBeGreaterThan(0)
    expect(synced.map((path) => path.slice(path.lastIndexOf('/') + 1)).sort()).toEqual(logs.sort())
    // A synced LevelDB write holds LevelDB's writer queue for its fsync; this one holds nothing.
    await store.write([[OP_PUT, 'b', '2']])
    expect(await store.get('b')).toBe('2')
    release()
    await syncing
    // Nothing was written through LevelDB to sync it.
    expect(await store.getMeta('syncedAt')).toBeUndefined()
  })

  it('syncs through LevelDB, as a synced write, when a log file cannot be opened', async () => {
    const store = await openPeriodic('failing', async () => {
      throw Object.assign(new Error('EMFILE: too many open files, open'), { code: 'EMFILE', syscall: 'open' })
    })
    await store.write([[OP_PUT, 'a', '1']])
    await store.syncNow()
    expect(await store.getMeta('syncedAt')).toBeTypeOf('number')
    await store.write([[OP_PUT, 'b', '2']])
    expect(store.syncFailure).toBeNull()
  })

  it('refuses every write after a failed fsync, without a synced write that could succeed over the loss', async () => {
    const store = await openPeriodic('eio', async () => {
      throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO', syscall: 'fdatasync' })
    })
    await store.write([[OP_PUT, 'a', '1']])
    await expect(store.syncNow()).rejects.toThrow(/EIO/)
    // Linux may have dropped the pages the fsync failed on and report it once:
    // a synced write made now could succeed, and the writes after it be taken.
    expect(await store.getMeta('syncedAt')).toBeUndefined()
    expect(store.syncFailure?.message).toMatch(/EIO/)
    expect(store.syncedAt).toBe(0)
    await expect(store.write([[OP_PUT, 'b', '2']])).rejects.toMatchObject({ code: 'UNAVAILABLE' })
    expect(await store.get('b')).toBeUndefined()
    expect(await store.get('a')).toBe('1')
    await store.close()
  })

  it('starts no second sync while one is under way: the writes made meanwhile wait for the next', async () => {
    const calls: string[] = []
    let release = () => {}
    const held = new Promise<void>((resolve) => {
      release = resolve
    })
    let reached = () => {}
    const fsyncing = new Promise<void>((resolve) => {
      reached = resolve
    })
    let holding = true
    const store = await openPeriodic('overlap', async (path) => {
      calls.push(path)
      reached()
      if (holding) await held
    })
    await store.write([[OP_PUT, 'a', '1']])
    const first = store.syncNow()
    await fsyncing
    const listed = calls.length
    let second = Promise.resolve()
    let third = Promise.resolve()
    try {
      await store.write([[OP_PUT, 'b', '2']])
      second = store.syncNow()
      await store.write([[OP_PUT, 'c', '3']])
      third = store.syncNow()
      expect(calls.length).toBe(listed)
    } finally {
      holding = false
      release()
    }
    await Promise.all([first, second, third])
    expect(calls.length).toBe(listed)
    // The writes made during the sync are still to be synced: the next one does.
    await store.syncNow()
    expect(calls.length).toBeGreaterThan(listed)
  })

  it('fsyncs LevelDB’s directory when it lists a log file it has not seen, once a log file', async () => {
    const dirSyncs: string[] = []
    const fileSyncs: string[] = []
    const dbDir = join(dir, 'rotating', 'db')
    // LevelDB's smallest memtable (64 KiB): a new log file every 64 KiB or so of writes.
    const store = await Store.open({
      dataDir: join(dir, 'rotating'),
      sync: 'periodic',
      periodicSyncMs: 3_600_000,
      logRetention: 1000,
      writeBufferBytes: 64 * 1024,
      fsyncFile: async (path) => void fileSyncs.push(path),
      fsyncDir: async (path) => void dirSyncs.push(path),
    })
    stores.push(store)
    const logs = () => readdirSync(dbDir).filter((name) => /^\d+\.log$/.test(name))
    await store.write([[OP_PUT, 'a', '1']])
    await store.syncNow()
    // The first sync has seen no log before.
    expect(dirSyncs).toEqual([dbDir])
    await store.write([[OP_PUT, 'b', '2']])
    await store.syncNow()
    expect(dirSyncs).toHaveLength(1)

    // Writes until LevelDB starts a new log file.
    const before = new Set(logs())
    const value = 'v'.repeat(4096)
    let n = 0
    while (logs().every((name) => before.has(name))) {
      if (n >= 2_000) throw new Error(`no new LevelDB log file after ${n} writes of 4 KiB; logs ${logs()}`)
      await store.write([[OP_PUT, `k${n++}`, value]])
    }
    const fresh = logs().filter((name) => !before.has(name))
    fileSyncs.length = 0
    await store.syncNow()
    expect(dirSyncs).toEqual([dbDir, dbDir])
    expect(fileSyncs.map((path) => path.slice(path.lastIndexOf('/') + 1))).toEqual(expect.arrayContaining(fresh))
    // Nothing new since: no directory fsync.
    await store.write([[OP_PUT, 'c', '3']])
    if (logs().every((name) => fresh.includes(name) || before.has(name))) {
      await store.syncNow()
      expect(dirSyncs).toHaveLength(2)
    }
  })

  it('fsyncs the directory of a LevelDB made anew (a discarded data dir), whose log files take the same names again', async () => {
    const dirSyncs: string[] = []
    const dbDir = join(dir, 'anew', 'db')
    const store = await Store.open({
      dataDir: join(dir, 'anew'),
      sync: 'periodic',
      periodicSyncMs: 3_600_000,
      logRetention: 1000,
      fsyncFile: async () => {},
      fsyncDir: async (path) => void dirSyncs.push(path),
    })
    stores.push(store)
    const logs = () => readdirSync(dbDir).filter((name) => /^\d+\.log$/.test(name))
    await store.write([[OP_PUT, 'a', '1']])
    await store.syncNow()
    expect(dirSyncs).toEqual([dbDir])
    const before = logs()
    await store.discardDamaged()
    await store.write([[OP_PUT, 'b', '2']])
    // The new LevelDB's log is a new file whatever its name: its directory entry is fsynced too.
    expect(logs()).toEqual(before)
    await store.syncNow()
    expect(dirSyncs).toEqual([dbDir, dbDir])
  })

  it('fsyncs the log files for real', async () => {
    const store = await openPeriodic('real')
    expect(store.syncedAt).toBe(0)
    await store.write([[OP_PUT, 'a', '1']])
    const before = Date.now()
    await store.syncNow()
    // The real fdatasync worked: no fallback write, and the time it covers is there to see.
    expect(await store.getMeta('syncedAt')).toBeUndefined()
    expect(store.syncedAt).toBeGreaterThanOrEqual(before)
    expect(store.syncFailure).toBeNull()
    expect(await store.get('a')).toBe('1')
  })
})

describe('store: getEachNow (a batch of RESP GETs)', () => {
  it('answers keys given as bytes in one synchronous pass: values as bytes, missing and expired keys, a damaged record failing alone', async () => {
    let now = 1_000_000
    const dataDir = join(dir, 'each')
    // Answers as LevelDB gives them: a value the read cache keeps is the string get() answers (read-cache.test.ts).
    const options = {
      dataDir,
      sync: 'always' as const,
      logRetention: 1000,
      readCacheKeys: 0,
      clock: { now: () => now, wall: () => now },
    }
    let store = await Store.open(options)
    await store.write([
      [OP_PUT, 'a', 'text'],
      [OP_PUT, 'b', new Uint8Array([0, 0xff])],
      [OP_PUT, 'gone', 'soon', { x: now + 10 }],
      [OP_PUT, 'bad', 'damaged'],
      [OP_PUT, 'é', 'accent'],
    ])
    await store.close()
    // One byte of bad's record flipped, as damage on disk would leave it.
    const db = new Level<Buffer, Buffer>(join(dataDir, 'db'), { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    await db.open()
    const badKey = Buffer.from('!data!bad')
    const record = Buffer.from((await db.get(badKey)) as Buffer)
    record[record.length - 1] ^= 1
    await db.put(badKey, record)
    await db.close()
    store = await Store.open(options)
    stores.push(store)
    now += 20

    const keys = ['a', 'b', 'none', 'gone', 'bad', 'é'].map((k) => Buffer.from(k))
    const out: (Uint8Array | string | undefined | Error)[] = new Array(keys.length)
    expect(store.getEachNow(keys, out)).toBe(keys.length)
    expect(out.slice(0, 4)).toEqual([Buffer.from('text'), Buffer.from([0, 0xff]), undefined, undefined])
    expect(out[4]).toMatchObject({ code: 'CORRUPT', message: expect.stringContaining('"bad"') })
    expect(out[5]).toEqual(Buffer.from('accent'))
    // The same answers as get's, as bytes.
    expect(await store.get('a')).toBe('text')
    await expect(store.get('bad')).rejects.toMatchObject({ code: 'CORRUPT' })
  })

  it('stops where the sync-read gate sends reads to the thread pool, and reads every key while reads are fast', async () => {
    let t = 0
    let step = 5
    // Every timed read looks 5 ms long: the second spends the 8 ms budget of the 1000 ms window.
    const store = await Store.open({
      dataDir: join(dir, 'each-gate'),
      sync: 'always',
      logRetention: 1000,
      readCacheKeys: 0,
      syncReads: { slowMs: 1, budgetMs: 8, windowMs: 1000, now: () => (t += step) - step },
    })
    stores.push(store)
    const names = Array.from({ length: 200 }, (_, i) => `k${i}`)
    await store.write(names.map((k): LogEntry['ops'][number] => [OP_PUT, k, `v${k}`]))
    const keys = names.map((k) => Buffer.from(k))
    const want = names.map((k) => Buffer.from(`v${k}`))
    // The write's own reads went through the gate too: a new window.
    t += 1000
    const out: (Uint8Array | string | undefined | Error)[] = new Array(keys.length)
    const read = store.getEachNow(keys, out)
    // Not one slow read of 200 keys, nor a read per key: the pass stops after some keys, the rest untouched.
    expect(read).toBeGreaterThan(1)
    expect(read).toBeLessThan(keys.length)
    expect(out.slice(0, read)).toEqual(want.slice(0, read))
    expect(out.slice(read).every((a) => a === undefined)).toBe(true)
    expect(store.getEachNow(keys, new Array(keys.length))).toBe(0)
    step = 0
    t += 1000
    const all: (Uint8Array | string | undefined | Error)[] = new Array(keys.length)
    expect(store.getEachNow(keys, all)).toBe(keys.length)
    expect(all).toEqual(want)
  })
})

describe('store: pipelined group commit (--sync always)', () => {
  const turn = () => new Promise((r) => setImmediate(r))

  // Rule: a group built while the one before it is written ends where it
  // would have had it waited: seqs consecutive, the key count exact, and
  // conditions checked against what the group before wrote, although
  // LevelDB and the presence cache do not hold that yet.
  for (const presenceKeys of [0, 100_000]) {
    it(`builds groups during the write before, as if each had waited (presence cache ${presenceKeys})`, async () => {
      const options = {
        dataDir: join(dir, `pipelined-${presenceKeys}`),
        sync: 'always',
        logRetention: 100_000,
        pipelinedCommit: 1,
      } as const
      let store = await Store.open({ ...options, presenceKeys })
      stores.push(store)
      const puts: Promise<number>[] = []
      /** Per turn, a first ifAbsent put of a new key, and the same put a turn later: each second one must fail. */
      const firsts: Promise<number>[] = []
      const seconds: Promise<unknown>[] = []
      const last = new Map<string, string | undefined>()
      const deadline = Date.now() + 30_000
      for (let t = 0; t < 60 || (store.commitStats.overlapped < 10 && Date.now() < deadline); t++) {
        for (let i = 0; i < 4; i++) {
          const key = `k${(t * 7 + i) % 10}`
          if ((t + i) % 5 === 0) {
            puts.push(store.write([[OP_DEL, key]]))
            last.set(key, undefined)
          } else {
            puts.push(store.write([[OP_PUT, key, `v${t}.${i}`]]))
            last.set(key, `v${t}.${i}`)
          }
        }
        const claim = (n: number) => store.write([[OP_PUT, `c${n}`, `${t}`]], [{ key: `c${n}`, ifAbsent: true }])
        firsts.push(claim(t))
        if (t > 0)
          seconds.push(
            claim(t - 1).then(
              () => 'taken twice',
              (err: { code?: string }) => err.code,
            ),
          )
        await turn()
      }
      await Promise.all([...puts, ...firsts])
      expect(store.commitStats.overlapped).toBeGreaterThan(0)
      expect(new Set(await Promise.all(seconds))).toEqual(new Set(['CONFLICT']))
      const written = puts.length + firsts.length
      expect(await logSeqs(store)).toEqual(Array.from({ length: written }, (_, i) => i + 1))
      expect(store.vv.get(store.origin)).toBe(written)
      const live = [...last.values()].filter((v) => v !== undefined).length + firsts.length
      expect(store.keyCount).toBe(live)
      expect(await store.countKeys()).toBe(live)
      for (const [key, value] of last) expect(await store.get(key)).toBe(value)
      await store.close()
      stores = stores.filter((s) => s !== store)
      store = await Store.open({ ...options, presenceKeys })
      stores.push(store)
      expect(store.keyCount).toBe(live)
      expect(store.lastSeq).toBe(written)
    })
  }

  // Rule: a failed write undoes cleanly: the group built on it is built
  // again on what the store then holds, with the seqs and counters the
  // failed group had taken, and nothing of the failed group is seen.
  it('builds the group again when the write it was built on fails', async () => {
    const store = await Store.open({
      dataDir: join(dir, 'pipelined-failure'),
      sync: 'always',
      logRetention: 1000,
      pipelinedCommit: 1,
    })
    stores.push(store)
    await store.write([[OP_PUT, 'a', '1']])
    const fail = failNextBatch(store)
    const lost = store.write([[OP_PUT, 'b', 'lost']])
    const outcome = lost.then(
      () => 'written',
      (err: Error) => err.message,
    )
    // Writes that come while it is "written" are built on it: 'b' is taken for there.
    await turn()
    await turn()
    const claim = store.write([[OP_PUT, 'b', 'claimed']], [{ key: 'b', ifAbsent: true }])
    const other = store.write([[OP_PUT, 'c', '3']])
    const deadline = Date.now() + 10_000
    while (store.commitStats.overlapped === 0 && Date.now() < deadline) await turn()
    expect(store.commitStats.overlapped).toBe(1)
    fail()
    expect(await outcome).toContain('the disk went away')
    // Built again without 'b': the claim holds, at the seqs after the last written.
    expect(await claim).toBe(2)
    expect(await other).toBe(3)
    expect(store.vv.get(store.origin)).toBe(3)
    expect(await logSeqs(store)).toEqual([1, 2, 3])
    expect(await store.get('b')).toBe('claimed')
    expect(store.keyCount).toBe(3)
    expect(await store.countKeys()).toBe(3)
  })
})

describe('Store: presence of keys on a data dir that starts empty', () => {
  it('counts new keys without reading them while it knows every key, and reads those it does not once reopened on data', async () => {
    const countReads = (store: Store) => {
      const db = (
        store as unknown as {
          db: {
            getSync(key: Buffer): unknown
            hasMany(keys: Buffer[]): Promise<boolean[]>
            getMany(keys: Buffer[]): Promise<unknown[]>
          }
        }
      ).db
      const counter = { reads: 0 }
      const getSync = db.getSync.bind(db)
      const hasMany = db.hasMany.bind(db)
      const getMany = db.getMany.bind(db)
      db.getSync = (key) => {
        counter.reads++
        return getSync(key)
      }
      db.hasMany = (keys) => {
        counter.reads += keys.length
        return hasMany(keys)
      }
      db.getMany = (keys) => {
        counter.reads += keys.length
        return getMany(keys)
      }
      return counter
    }
    const name = 'presence-empty'
    let store = await open(name)
    let counter = countReads(store)
    // Groups of new keys, keys written again, deletes, and keys deleted then put again.
    await Promise.all(Array.from({ length: 50 }, (_, i) => store.write([[OP_PUT, `k${i}`, `v${i}`]])))
    await Promise.all(Array.from({ length: 50 }, (_, i) => store.write([[OP_PUT, `k${i % 30}`, 'again']])))
    await store.write([[OP_DEL, 'k1']])
    await store.write([[OP_DEL, 'never']])
    await store.writeEach([
      [OP_PUT, 'k1', 'back'],
      [OP_PUT, 'k60', 'new'],
    ])
    expect(store.keyCount).toBe(51)
    expect(counter.reads).toBe(0)
    await store.close()
    stores = stores.filter((s) => s !== store)
    // On data: a key it has not seen since it opened is read (and counted right).
    store = await open(name)
    counter = countReads(store)
    await store.write([[OP_PUT, 'k2', 'over']])
    await store.write([[OP_PUT, 'k70', 'new']])
    expect(counter.reads).toBe(2)
    expect(store.keyCount).toBe(52)
  })
})
