import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Value } from '@tandem/protocol'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { type EntryOp, OP_DEL, OP_PUT } from './log-entry.js'
import { ABSENT, asciiName, NO_TICKET, ReadCache, WrittenValues } from './read-cache.js'
import { packChunk } from './snapshot-chunk.js'
import { NOT_NOW, Store, type StoreOptions } from './store.js'

let dir: string
let stores: Store[] = []

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tandem-read-cache-test-'))
})

afterEach(async () => {
  await Promise.all(stores.map((s) => s.close()))
  stores = []
  rmSync(dir, { recursive: true, force: true })
})

/** A store whose read cache keeps only what reads read, unless `options` says readCacheWrites: 1. */
async function open(name: string, options: Partial<StoreOptions> = {}): Promise<Store> {
  const store = await Store.open({
    dataDir: join(dir, name),
    sync: 'always',
    logRetention: 1000,
    readCacheWrites: 0,
    ...options,
  })
  stores.push(store)
  return store
}

/** A RESP GET batch's answers for `keys`, each as bytes (a cached answer is the string get() gives). */
function getEachBytes(store: Store, keys: string[]): (Buffer | undefined | Error)[] {
  const out: (Uint8Array | string | undefined | Error)[] = new Array(keys.length)
  expect(
    store.getEachNow(
      keys.map((k) => Buffer.from(k)),
      out,
    ),
  ).toBe(keys.length)
  return out.map((a) => (a === undefined || a instanceof Error ? a : Buffer.from(a)))
}

/**
 * Holds every LevelDB batch write of `store` once handed over (the group is
 * in flight: LevelDB still shows the old values) until `release()`.
 */
function holdWrites(store: Store): { handed: Promise<void>; release: () => void } {
  const db = (store as unknown as { db: { batch: (...a: unknown[]) => { write: (o?: unknown) => Promise<void> } } }).db
  const batch = db.batch.bind(db)
  let handedOver: () => void = () => {}
  let release: () => void = () => {}
  const handed = new Promise<void>((resolve) => {
    handedOver = resolve
  })
  const released = new Promise<void>((resolve) => {
    release = resolve
  })
  db.batch = (...args: unknown[]) => {
    const chained = batch(...args)
    if (args.length > 0) return chained
    const write = chained.write.bind(chained)
    chained.write = async (options?: unknown) => {
      handedOver()
      await released
      return write(options)
    }
    return chained
  }
  return { handed, release }
}

/** What a write left, its values as the bytes a store's records hold them in (strings as UTF-8). */
function written(cache: ReadCache, entries: [string, string | Uint8Array][]): WrittenValues {
  const values = new WrittenValues()
  for (const [i, [name, value]] of entries.entries()) {
    const bytes = Buffer.from(value)
    cache.addWritten(values, i, name, bytes, 0, bytes.length, typeof value !== 'string')
  }
  return values
}

/** One key's answer through a batch lookup, undefined when the cache does not hold it. */
function lookUp(cache: ReadCache, key: Uint8Array): unknown {
  const out: unknown[] = [undefined]
  return cache.answerEach([key], out)[0] === 1 ? out[0] : undefined
}

/** A batch lookup's answers, 'not kept' for a key the cache does not hold. */
function answerEach(cache: ReadCache, keys: string[]): unknown[] {
  const out: unknown[] = new Array(keys.length)
  const answered = cache.answerEach(
    keys.map((k) => Buffer.from(k)),
    out,
  )
  return keys.map((_, i) => (answered[i] === 1 ? out[i] : 'not kept'))
}

describe('ReadCache', () => {
  it('keeps at most maxEntries, dropping the oldest filled first', () => {
    const cache = new ReadCache(3, 1 << 20)
    for (const k of ['a', 'b', 'c', 'd', 'e']) cache.fill(k, `v${k}`)
    expect(cache.size).toBe(3)
    expect(['a', 'b', 'c', 'd', 'e'].map((k) => cache.get(k))).toEqual([undefined, undefined, 'vc', 'vd', 've'])
  })

  it('keeps at most maxBytes, counting keys, values and its table, and never one entry larger than all of it', () => {
    // 64 + 1 + 100 bytes an entry (a string value of characters past U+00FF at two bytes a character), beside the
    // first table's arrays; a string of one-byte characters (ASCII, Latin-1) at one byte a character.
    const wide = '\u0101'.repeat(50)
    const probe = new ReadCache(1000, 1 << 20)
    probe.fill('a', wide)
    const table = probe.bytes - 165
    probe.fill('b', 'x'.repeat(49) + '\u00e9')
    expect(probe.bytes).toBe(table + 165 + 115)
    const cache = new ReadCache(1000, table + 400)
    for (const k of ['a', 'b', 'c']) cache.fill(k, wide)
    expect(cache.size).toBe(2)
    expect(cache.bytes).toBe(table + 330)
    expect(cache.get('a')).toBeUndefined()
    cache.fill('big', Buffer.alloc(400))
    expect(cache.get('big')).toBeUndefined()
    expect(cache.size).toBe(2)
    // Less than the first table: nothing is kept.
    const tiny = new ReadCache(1000, table - 1)
    tiny.fill('a', '1')
    expect([tiny.size, tiny.bytes]).toEqual([0, 0])
  })

  it('counts its table against maxBytes: the table grows only while it fits beside what is kept', () => {
    const max = 1_000_000
    const cache = new ReadCache(1_000_000, max)
    for (let i = 0; i < 100_000; i++) {
      cache.fill(`k${i}`, ABSENT)
      if (i % 997 === 0) expect(cache.bytes).toBeLessThanOrEqual(max)
    }
    // An absent key is 64 bytes and its name's; the table takes at least 56 bytes (two Int32 in a slot of
    // a table at most half full, three references and four Int32) for each key it can hold.
    expect(cache.size * (64 + 6 + 56)).toBeLessThanOrEqual(max)
    expect(cache.bytes).toBeLessThanOrEqual(max)
    expect(cache.get('k99999')).toBe(ABSENT)
    expect(cache.size).toBeGreaterThan(max / (64 + 6 + 48) / 2)
  })

  it('drops the keys of a write handed to LevelDB, and fills nothing until every write in flight is done', () => {
    const cache = new ReadCache(100, 1 << 20)
    cache.fill('a', '1')
    cache.fill('b', '2')
    // Names as the write path has them: the data prefix first.
    cache.beginWrite(['!data!a'], '!data!'.length)
    expect(cache.get('a')).toBeUndefined()
    expect(cache.get('b')).toBe('2')
    cache.beginWrite([], 0)
    cache.fill('a', 'old')
    cache.endWrite()
    cache.fill('a', 'old')
    expect(cache.get('a')).toBeUndefined()
    cache.endWrite()
    cache.fill('a', 'new')
    expect(cache.get('a')).toBe('new')
  })

  it('keeps a read that took a while only when no write was handed over and nothing was cleared since it began', () => {
    const cache = new ReadCache(100, 1 << 20)
    let ticket = cache.readTicket()
    cache.fillAfter(ticket, 'a', '1')
    expect(cache.get('a')).toBe('1')
    // A write of another key began and ended while it read: what it read may be older than LevelDB now.
    ticket = cache.readTicket()
    cache.beginWrite(['!data!b'], '!data!'.length)
    cache.endWrite()
    cache.fillAfter(ticket, 'c', 'old')
    expect(cache.get('c')).toBeUndefined()
    // Begun with a write in flight: never kept, even once the write is done.
    cache.beginWrite([], 0)
    ticket = cache.readTicket()
    cache.endWrite()
    cache.fillAfter(ticket, 'c', 'old')
    expect(cache.get('c')).toBeUndefined()
    ticket = cache.readTicket()
    cache.clear()
    cache.fillAfter(ticket, 'c', 'old')
    expect(cache.get('c')).toBeUndefined()
    ticket = cache.readTicket()
    cache.hold()
    cache.release()
    cache.fillAfter(ticket, 'c', 'old')
    expect(cache.get('c')).toBeUndefined()
    ticket = cache.readTicket()
    cache.fillAfter(ticket, 'c', 'new')
    expect(cache.get('c')).toBe('new')
  })

  it('keeps what a write left once it is done, only when no other write was in flight from its hand-off to its end', () => {
    const cache = new ReadCache(100, 1 << 20)
    cache.fill('a', 'old')
    let ticket = cache.beginWrite(['!data!a', '!data!b'], '!data!'.length)
    expect(cache.get('a')).toBeUndefined()
    cache.endWrite()
    cache.keepWritten(
      ticket,
      0,
      written(cache, [
        ['a', 'new'],
        ['b', 'b1'],
      ]),
    )
    expect([cache.get('a'), cache.get('b')]).toEqual(['new', 'b1'])
    // Two writes in flight at once: LevelDB may apply them in either order, so neither's values are kept.
    const first = cache.beginWrite(['!data!a'], '!data!'.length)
    const second = cache.beginWrite(['!data!a'], '!data!'.length)
    expect(second).toBe(NO_TICKET)
    cache.endWrite()
    cache.keepWritten(first, 0, written(cache, [['a', 'first']]))
    cache.endWrite()
    cache.keepWritten(second, 0, written(cache, [['a', 'second']]))
    expect(cache.get('a')).toBeUndefined()
    // A write handed over after it, or the data replaced meanwhile: not kept.
    ticket = cache.beginWrite(['!data!a'], '!data!'.length)
    cache.endWrite()
    cache.beginWrite([], 0)
    cache.endWrite()
    cache.keepWritten(ticket, 0, written(cache, [['a', 'stale']]))
    expect(cache.get('a')).toBeUndefined()
    ticket = cache.beginWrite(['!data!a'], '!data!'.length)
    cache.clear()
    cache.endWrite()
    cache.keepWritten(ticket, 0, written(cache, [['a', 'stale']]))
    expect(cache.get('a')).toBeUndefined()
    cache.hold()
    expect(cache.beginWrite(['!data!a'], '!data!'.length)).toBe(NO_TICKET)
    cache.endWrite()
    cache.release()
    // Not ASCII: never kept.
    ticket = cache.beginWrite([], 0)
    cache.endWrite()
    cache.keepWritten(
      ticket,
      0,
      written(cache, [
        ['\u00e9', 'accent'],
        ['c', 'c1'],
      ]),
    )
    expect([cache.get('\u00e9'), cache.get('c')]).toEqual([undefined, 'c1'])
  })

  it("fills a kept key's entry in place with what a write leaves, and removes the entries of keys it leaves nothing for", () => {
    const cache = new ReadCache(100, 1 << 20)
    for (const k of ['a', 'b', 'c', 'd']) cache.fill(k, `${k}0`)
    const before = cache.bytes
    // The write's keys, as the write path names them: a, b and c kept, e not.
    let ticket = cache.beginWrite(['!d!a', '!d!b', '!d!e', '!d!c'], 3, true)
    expect([cache.get('a'), lookUp(cache, Buffer.from('b')), cache.get('d')]).toEqual([undefined, undefined, 'd0'])
    expect(cache.heldAt(0) && cache.heldAt(1) && !cache.heldAt(2) && cache.heldAt(3)).toBe(true)
    cache.endWrite()
    const values = new WrittenValues()
    // c was deleted (nothing to keep); a, b and e have values.
    for (const [place, name, value] of [
      [0, '!d!a', 'a1'],
      [1, '!d!b', 'b1'],
      [2, '!d!e', 'e1'],
    ] as const) {
      const bytes = Buffer.from(value)
      cache.addWritten(values, place, name, bytes, 0, bytes.length, false)
    }
    cache.keepWritten(ticket, 3, values)
    expect(['a', 'b', 'c', 'd', 'e'].map((k) => cache.get(k))).toEqual(['a1', 'b1', undefined, 'd0', 'e1'])
    expect(cache.size).toBe(4)
    // A failed write: its keys' entries are removed, nothing kept.
    ticket = cache.beginWrite(['!d!a', '!d!d'], 3, true)
    cache.endWrite()
    cache.keepWritten(ticket, 3, null)
    expect(['a', 'b', 'd', 'e'].map((k) => cache.get(k))).toEqual([undefined, 'b1', undefined, 'e1'])
    expect(cache.size).toBe(2)
    // Kept with a ticket no longer current (another write since): its entries stay, read as not kept, till cleared.
    cache.beginWrite(['!d!b', '!d!e'], 3, true)
    cache.endWrite()
    cache.keepWritten(ticket, 3, null)
    expect([cache.get('b'), lookUp(cache, Buffer.from('e'))]).toEqual([undefined, undefined])
    cache.clear()
    expect([cache.size, cache.bytes, before > 0]).toEqual([0, 0, true])
  })

  it('counts a chunk of written values whole while any of them is kept, and none of it once none is', () => {
    const cache = new ReadCache(100, 1 << 20)
    cache.fill('x', ABSENT)
    const base = cache.bytes - (64 + 1)
    const src = Buffer.alloc(20_000, 7)
    const values = new WrittenValues()
    // Names as the write path has them, after the data prefix; a large value has a chunk of its own.
    for (const [place, name, end, binary] of [
      [0, '!d!a', 10, true],
      [1, '!d!b', 1000, true],
      [2, '!d!s', 3, false],
      [3, '!d!big', 20_000, true],
    ] as const) {
      cache.addWritten(values, place, name, src, 0, end, binary)
    }
    const [chunk, , , own] = values.chunks
    expect([values.chunks[1], values.chunks[2], own.bytes]).toEqual([chunk, chunk, 20_000])
    // Being filled, the chunk counts whether or not any of it is kept.
    expect(cache.bytes).toBe(base + 65 + chunk.bytes)
    const ticket = cache.beginWrite([], 0)
    cache.endWrite()
    cache.keepWritten(ticket, 3, values)
    // Each entry 64 + its name (prefix and all), the string at two bytes a character besides, each chunk once.
    expect(cache.bytes).toBe(base + 65 + 68 + 68 + 68 + 6 + 70 + chunk.bytes + 20_000)
    expect(chunk.live).toBe(3)
    expect(lookUp(cache, Buffer.from('a'))).toEqual(Buffer.alloc(10, 7))
    const unmade = cache.bytes
    expect(cache.get('s')).toBe('\x07\x07\x07')
    // Made, a string lets go of its chunk, and is counted as a fill's string: one byte a character here.
    expect([chunk.live, cache.bytes]).toEqual([2, unmade - 3])
    const big = cache.get('big') as Buffer
    expect([big.length, big.buffer === src.buffer]).toEqual([20_000, false])
    cache.beginWrite(['!data!a', '!data!big', '!data!s'], '!data!'.length)
    cache.endWrite()
    expect(cache.bytes).toBe(base + 65 + 68 + chunk.bytes)
    cache.clear()
    expect(cache.bytes).toBe(0)
  })

  it('keeps written values only where there is room, and evicts them and their chunks like any other entry', () => {
    const max = 64 * 1024
    const cache = new ReadCache(10_000, max)
    const src = Buffer.alloc(100, 1)
    let kept = 0
    for (let w = 0; w < 200; w++) {
      const names = Array.from({ length: 10 }, (_, i) => `w${w}k${i}`)
      const ticket = cache.beginWrite(names, 0)
      // As the store does: nothing is copied for a write when the cache has no room.
      if (cache.roomForWrites) {
        const values = new WrittenValues()
        for (const [place, name] of names.entries()) cache.addWritten(values, place, name, src, 0, 100, true)
        cache.endWrite()
        cache.keepWritten(ticket, 0, values)
      } else {
        cache.endWrite()
      }
      expect(cache.bytes).toBeLessThanOrEqual(max)
      if (cache.size > kept) kept = cache.size
    }
    // Full: the first written are still there, the last were not kept, and none was pushed out for them.
    expect(cache.roomForWrites).toBe(false)
    expect(lookUp(cache, Buffer.from('w0k0'))).toEqual(src)
    expect(cache.get('w199k9')).toBeUndefined()
    expect(cache.size).toBe(kept)
    // A read's fill pushes out the oldest, written or read, and what their chunks held.
    for (let i = 0; i < 300; i++) cache.fill(`r${i}`, 'x'.repeat(50))
    expect(cache.bytes).toBeLessThanOrEqual(max)
    expect(cache.get('w0k0')).toBeUndefined()
    expect(cache.get('r299')).toBe('x'.repeat(50))
    // Read fills are never pushed out by writes.
    const full = new ReadCache(3, 1 << 20)
    for (const k of ['a', 'b', 'c']) full.fill(k, k)
    const ticket = full.beginWrite([], 0)
    full.endWrite()
    full.keepWritten(ticket, 0, written(full, [['d', 'd']]))
    expect(['a', 'b', 'c', 'd'].map((k) => full.get(k))).toEqual(['a', 'b', 'c', undefined])
  })

  it('holds fills off and drops everything while the data is replaced whole', () => {
    const cache = new ReadCache(100, 1 << 20)
    cache.fill('a', '1')
    cache.hold()
    expect(cache.get('a')).toBeUndefined()
    cache.fill('a', 'partial')
    expect(cache.get('a')).toBeUndefined()
    cache.release()
    cache.fill('a', '2')
    expect(cache.get('a')).toBe('2')
  })

  it('answers each key by its own name, byte for byte, when two keys hash alike', () => {
    // These two names have the same 31-bit hash in the cache's table: only a comparison of the names tells them apart.
    const [one, two] = ['user:27197', 'user:33939']
    const cache = new ReadCache(100, 1 << 20)
    cache.fill(one, '1')
    expect(cache.get(two)).toBeUndefined()
    expect(lookUp(cache, Buffer.from(two))).toBeUndefined()
    cache.fillBytes(Buffer.from(two), '2')
    expect([cache.get(one), cache.get(two)]).toEqual(['1', '2'])
    expect([lookUp(cache, Buffer.from(one)), lookUp(cache, Buffer.from(two))]).toEqual(['1', '2'])
    expect(answerEach(cache, [two, one, 'user:0', two])).toEqual(['2', '1', 'not kept', '2'])
    cache.beginWrite([`!data!${one}`], '!data!'.length)
    cache.endWrite()
    expect([cache.get(one), lookUp(cache, Buffer.from(two))]).toEqual([undefined, '2'])
    // A key's bytes in a larger buffer are looked up and kept by those bytes only.
    const chunk = Buffer.from(`GET ${one} tail`)
    const view = new Uint8Array(chunk.buffer, chunk.byteOffset + 4, one.length)
    cache.fillBytes(view, '3')
    expect([cache.get(one), lookUp(cache, chunk.subarray(4, 4 + one.length))]).toEqual(['3', '3'])
    expect(lookUp(cache, chunk.subarray(4, 5 + one.length))).toBeUndefined()
    expect(lookUp(cache, Buffer.from('é'))).toBeUndefined()
    cache.fill('é', '4')
    cache.fillBytes(Buffer.from('é'), '4')
    expect(cache.size).toBe(2)
  })

  it('answers as a map of the last fills would, through fills, drops and evictions of thousands of keys', () => {
    // A model: insertion-ordered, the oldest filled dropped first, a refill making a key the newest.
    const max = 300
    const cache = new ReadCache(max, 1 << 30)
    const model = new Map<string, string>()
    let seed = 7
    const random = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff
      return seed % n
    }
    const name = (): string => `k${random(1000)}`
    for (let step = 0; step < 60_000; step++) {
      const op = random(10)
      if (op < 4) {
        const k = name()
        const v = `v${step}`
        cache.fill(k, v)
        model.delete(k)
        if (model.size === max) model.delete(model.keys().next().value as string)
        model.set(k, v)
      } else if (op < 5) {
        const dropped = [name(), name(), name()]
        cache.beginWrite(
          dropped.map((k) => `!d!${k}`),
          3,
        )
        cache.endWrite()
        for (const k of dropped) model.delete(k)
      } else if (op < 9) {
        const k = name()
        expect(op < 7 ? cache.get(k) : lookUp(cache, Buffer.from(k))).toBe(model.get(k))
      } else {
        const batch = [name(), name(), name(), name(), name()]
        expect(answerEach(cache, batch)).toEqual(batch.map((k) => model.get(k) ?? 'not kept'))
      }
      expect(cache.size).toBe(model.size)
    }
    for (const k of model.keys()) expect(cache.get(k)).toBe(model.get(k))
    cache.clear()
    expect([cache.size, cache.bytes, cache.get([...model.keys()][0])]).toEqual([0, 0, undefined])
  })

  it('names only keys of ASCII bytes', () => {
    expect(asciiName(Buffer.from('user:1'))).toBe('user:1')
    expect(asciiName(Buffer.from('é'))).toBeNull()
    expect(asciiName(new Uint8Array([0x61, 0xff]))).toBeNull()
    // A view into a larger buffer names its own bytes only, as a Buffer or not.
    const chunk = Buffer.from('GET user:2 tail')
    expect(asciiName(chunk.subarray(4, 10))).toBe('user:2')
    expect(asciiName(new Uint8Array(chunk.buffer, chunk.byteOffset + 4, 6))).toBe('user:2')
  })
})

describe('store: read cache', () => {
  it('answers a read again from memory, and a write of the key (put, del, batch) is seen by the next read', async () => {
    const store = await open('writes')
    await store.write([
      [OP_PUT, 'a', 'v1'],
      [OP_PUT, 'b', new Uint8Array([1, 2])],
    ])
    expect(store.getNow('a')).toBe('v1')
    expect(store.getNow('b')).toEqual(Buffer.from([1, 2]))
    expect(store.readCacheStats).toMatchObject({ keys: 2, fills: 2, hits: 0 })
    expect(store.getNow('a')).toBe('v1')
    expect(store.getNow('b')).toEqual(Buffer.from([1, 2]))
    expect(store.readCacheStats.hits).toBe(2)

    await store.write([[OP_PUT, 'a', 'v2']])
    expect(store.getNow('a')).toBe('v2')
    expect(getEachBytes(store, ['a', 'b'])).toEqual([Buffer.from('v2'), Buffer.from([1, 2])])
    await store.write([[OP_DEL, 'a']])
    expect(store.getNow('a')).toBeUndefined()
    expect(getEachBytes(store, ['a'])).toEqual([undefined])
    await store.write([
      [OP_PUT, 'a', 'v3'],
      [OP_PUT, 'b', 'text'],
    ])
    expect(getEachBytes(store, ['a', 'b'])).toEqual([Buffer.from('v3'), Buffer.from('text')])
    expect(store.getNow('b')).toBe('text')
    // A value kept from a RESP read is the one get() answers: the same type as stored.
    expect(await store.get('b')).toBe('text')
  })

  it('answers a key with no record from memory after one read, and the write that makes it is seen by the next read', async () => {
    const store = await open('absent')
    expect([store.getNow('gone'), getEachBytes(store, ['gone2'])]).toEqual([undefined, [undefined]])
    expect(store.readCacheStats).toMatchObject({ keys: 2, hits: 0 })
    expect([store.getNow('gone2'), getEachBytes(store, ['gone'])]).toEqual([undefined, [undefined]])
    expect(store.readCacheStats.hits).toBe(2)
    await store.write([[OP_PUT, 'gone', 'v1']])
    expect([store.getNow('gone'), getEachBytes(store, ['gone'])]).toEqual(['v1', [Buffer.from('v1')]])
    await store.write([
      [OP_PUT, 'other', 'x'],
      [OP_PUT, 'gone2', 'v2'],
    ])
    expect([getEachBytes(store, ['gone2']), store.getNow('gone2')]).toEqual([[Buffer.from('v2')], 'v2'])

    // Read as missing while the write that makes it is in flight: answered, not kept.
    const held = holdWrites(store)
    const write = store.write([[OP_PUT, 'late', 'new']])
    await held.handed
    const during = [store.getNow('late'), getEachBytes(store, ['late'])]
    held.release()
    await write
    expect(during).toEqual([undefined, [undefined]])
    expect([store.getNow('late'), getEachBytes(store, ['late'])]).toEqual(['new', [Buffer.from('new')]])

    // Kept as missing, then dropped when the write that makes it is handed over.
    expect(store.getNow('later')).toBeUndefined()
    const held2 = holdWrites(store)
    const write2 = store.write([[OP_PUT, 'later', 'new']])
    await held2.handed
    const keptDuring = store.readCacheStats.keys
    const hitsBefore = store.readCacheStats.hits
    expect(getEachBytes(store, ['later'])).toEqual([undefined])
    held2.release()
    await write2
    expect(store.readCacheStats.hits).toBe(hitsBefore)
    expect(keptDuring).toBe(store.readCacheStats.keys)
    expect(getEachBytes(store, ['later'])).toEqual([Buffer.from('new')])
  })

  it('keeps nothing from a read made while a write of the key is in flight', async () => {
    const store = await open('in-flight')
    await store.write([[OP_PUT, 'k', 'old']])
    const held = holdWrites(store)
    const write = store.write([[OP_PUT, 'k', 'new']])
    await held.handed
    // Handed to LevelDB and not applied: a read may show the old value (nothing acknowledged the new one)...
    const during = [store.getNow('k'), getEachBytes(store, ['k'])]
    held.release()
    await write
    expect(during).toEqual(['old', [Buffer.from('old')]])
    // ...but once the write is acknowledged, no read answers the old one.
    expect(store.getNow('k')).toBe('new')
    expect(getEachBytes(store, ['k'])).toEqual([Buffer.from('new')])
  })

  it('drops a kept value before the write that changes it reaches LevelDB', async () => {
    const store = await open('dropped')
    await store.write([[OP_PUT, 'k', 'old']])
    expect(store.getNow('k')).toBe('old')
    const held = holdWrites(store)
    const write = store.write([[OP_PUT, 'k', 'new']])
    await held.handed
    const during = [store.readCacheStats.keys, store.getNow('k')]
    held.release()
    await write
    // Not answered from the cache while the write is in flight: LevelDB's answer, the old value here.
    expect(during).toEqual([0, 'old'])
    expect(store.getNow('k')).toBe('new')
  })

  it('answers a kept value while the sync-read gate sends LevelDB reads to the thread pool', async () => {
    let now = 0
    // Every timed read looks 5 ms long: the second spends the 8 ms budget of the 1000 ms window.
    const store = await open('gate', {
      syncReads: { slowMs: 1, budgetMs: 8, windowMs: 1000, now: () => (now += 5) - 5 },
    })
    await store.write([
      [OP_PUT, 'k', 'v'],
      [OP_PUT, 'other', 'w'],
    ])
    now += 1000
    expect(store.getNow('k')).toBe('v')
    expect(store.getNow('missing')).toBeUndefined()
    expect(store.getNow('other')).toBe(NOT_NOW)
    expect(store.getNow('k')).toBe('v')
    expect(store.readCacheStats.hits).toBe(1)
    // A RESP GET batch likewise: kept keys are answered, up to the first key LevelDB must read.
    const out: (Value | undefined | Error)[] = new Array(4)
    const keys = ['k', 'k', 'other', 'k'].map((key) => Buffer.from(key))
    expect(store.getEachNow(keys, out)).toBe(2)
    expect(out.slice(0, 2)).toEqual(['v', 'v'])
    expect(store.readCacheStats.hits).toBe(3)
  })

  it('keeps what a get read on the thread pool (the sync-read gate shut), and a later write of the key is seen', async () => {
    const store = await open('pool', { syncReads: { budgetMs: -1 } })
    await store.write([
      [OP_PUT, 'k', 'v'],
      [OP_PUT, 'ttl', 'x', { x: Date.now() + 60_000 }],
    ])
    expect(store.getNow('k')).toBe(NOT_NOW)
    expect(await Promise.all([store.get('k'), store.get('missing'), store.get('ttl')])).toEqual(['v', undefined, 'x'])
    // Two fills: the value and the key with no record; not the value with a TTL.
    expect(store.readCacheStats.fills).toBe(2)
    expect([store.getNow('k'), store.getNow('missing'), store.getNow('ttl')]).toEqual(['v', undefined, NOT_NOW])
    expect(store.readCacheStats.hits).toBe(2)
    await store.write([[OP_PUT, 'k', 'v2']])
    expect(store.getNow('k')).toBe(NOT_NOW)
    expect(await store.get('k')).toBe('v2')
    expect(store.getNow('k')).toBe('v2')
  })

  it('keeps what a getMany (an mget, a RESP GET batch the gate sent to the pool) read, as get() answers it', async () => {
    const store = await open('pool-many', { syncReads: { budgetMs: -1 } })
    await store.write([
      [OP_PUT, 's', 'text'],
      [OP_PUT, 'b', Buffer.from([1, 2])],
    ])
    expect(await store.getMany(['s', 'b', 'none'], true)).toEqual([Buffer.from('text'), Buffer.from([1, 2]), undefined])
    expect(store.readCacheStats.fills).toBe(3)
    // A string value is kept as the string get() gives, though this read asked for bytes.
    expect([store.getNow('s'), store.getNow('b'), store.getNow('none')]).toEqual([
      'text',
      Buffer.from([1, 2]),
      undefined,
    ])
    const out: (Value | undefined | Error)[] = new Array(3)
    expect(store.getEachNow([Buffer.from('s'), Buffer.from('none'), Buffer.from('b')], out)).toBe(3)
    expect(out).toEqual(['text', undefined, Buffer.from([1, 2])])
  })

  it('keeps no value with a TTL: an expired key is not answered', async () => {
    let now = 1_000_000
    const store = await open('ttl', { clock: { now: () => now, wall: () => now } })
    await store.write([
      [OP_PUT, 'gone', 'soon', { x: now + 10 }],
      [OP_PUT, 'kept', 'always'],
    ])
    expect(store.getNow('gone')).toBe('soon')
    expect(getEachBytes(store, ['gone'])).toEqual([Buffer.from('soon')])
    expect(store.getNow('kept')).toBe('always')
    expect(store.readCacheStats.keys).toBe(1)
    now += 20
    expect(store.getNow('gone')).toBeUndefined()
    expect(getEachBytes(store, ['gone', 'kept'])).toEqual([undefined, Buffer.from('always')])
  })

  it('is cleared by a full sync, and keeps nothing read while the sync is under way', async () => {
    const prefix = Buffer.from('!data!')
    const chunk = (value: string) =>
      packChunk([[Buffer.concat([prefix, Buffer.from('k')]), Buffer.from([0, ...Buffer.from(value)])]], prefix.length)
    const store = await open('full-sync')
    await store.write([[OP_PUT, 'k', 'before']])
    expect(store.getNow('k')).toBe('before')
    await store.beginFullSync()
    await store.applySnapshotChunk(chunk('synced'), 1)
    // The chunk's write may be done or not: a read now must not outlive the sync.
    store.getNow('k')
    await store.finishFullSync(7, [{ epoch: 1, startSeq: 1, by: 'up' }])
    expect(store.getNow('k')).toBe('synced')
    expect(getEachBytes(store, ['k'])).toEqual([Buffer.from('synced')])
  })

  it('answers nothing of a data dir discarded for a resync, from the moment LevelDB reopens empty', async () => {
    const store = await open('discard')
    await store.write([[OP_PUT, 'k', 'old']])
    // A node in a fail-over group keeps its vote across the discard: written again once LevelDB reopens.
    await store.setMeta('vote', { epoch: 1, for: 'n1' })
    expect(store.getNow('k')).toBe('old')
    expect(store.readCacheStats.keys).toBe(1)
    // Reads made while the vote is written again: LevelDB is open and empty.
    const during: unknown[] = []
    const setMeta = store.setMeta.bind(store)
    store.setMeta = (key, value) => {
      during.push(store.getNow('k'), getEachBytes(store, ['k'])[0])
      return setMeta(key, value)
    }
    await store.discardForResync()
    expect(during).toEqual([undefined, undefined])
    expect(store.getNow('k')).toBeUndefined()
    expect(await store.getMeta('vote')).toEqual({ epoch: 1, for: 'n1' })
  })

  it('stays within readCacheKeys, and answers every key right past it', async () => {
    const store = await open('bounded', { readCacheKeys: 10 })
    const names = Array.from({ length: 50 }, (_, i) => `k${i}`)
    await store.write(names.map((k) => [OP_PUT, k, `v${k}`]))
    for (let round = 0; round < 2; round++) {
      for (const k of names) expect(store.getNow(k)).toBe(`v${k}`)
      expect(getEachBytes(store, names)).toEqual(names.map((k) => Buffer.from(`v${k}`)))
    }
    expect(store.readCacheStats.keys).toBe(10)
  })

  it('keeps no key that is not ASCII, and none at readCacheKeys 0', async () => {
    const store = await open('ascii')
    const none = await open('none', { readCacheKeys: 0 })
    for (const s of [store, none]) {
      await s.write([
        [OP_PUT, 'é', 'accent'],
        [OP_PUT, 'a', 'plain'],
      ])
      for (let i = 0; i < 2; i++) {
        expect(s.getNow('é')).toBe('accent')
        expect(getEachBytes(s, ['é'])).toEqual([Buffer.from('accent')])
      }
    }
    store.getNow('a')
    none.getNow('a')
    expect(store.readCacheStats.keys).toBe(1)
    expect(none.readCacheStats).toMatchObject({ keys: 0, fills: 0, hits: 0 })
    expect(none.getNow('a')).toBe('plain')
  })
})

describe('store: read cache keeping what writes leave (readCacheWrites 1)', () => {
  const writes = { readCacheWrites: 1 }

  it("answers a key's first read after its put from memory, as get() would read it back", async () => {
    const store = await open('written', writes)
    await store.write([
      [OP_PUT, 'a', 'text'],
      [OP_PUT, 'b', new Uint8Array([1, 2, 3])],
      [OP_PUT, 'c', new Uint8Array([4])],
      [OP_PUT, 'ttl', 'x', { x: Date.now() + 60_000 }],
    ])
    expect(store.readCacheStats).toMatchObject({ keys: 3, fills: 3, hits: 0 })
    expect(store.getNow('a')).toBe('text')
    const b = store.getNow('b') as Buffer
    expect(b).toEqual(Buffer.from([1, 2, 3]))
    // Binary values in a chunk of the cache's own, which it counts (not a slice of a record's pool slab).
    expect(store.readCacheStats.bytes).toBeGreaterThan(b.buffer.byteLength)
    expect(getEachBytes(store, ['a', 'b', 'c'])).toEqual([
      Buffer.from('text'),
      Buffer.from([1, 2, 3]),
      Buffer.from([4]),
    ])
    expect(store.readCacheStats.hits).toBe(5)
    // The TTL key is read from LevelDB (and not kept after either).
    expect(store.getNow('ttl')).toBe('x')
    expect(store.readCacheStats).toMatchObject({ keys: 3, hits: 5 })
    expect(await store.get('b')).toEqual(Buffer.from([1, 2, 3]))
  })

  it('answers the latest acknowledged write of a key, through overwrites, deletes and writes of many keys', async () => {
    const store = await open('overwrites', writes)
    const model = new Map<string, string>()
    for (let round = 0; round < 20; round++) {
      const batch: EntryOp[] = []
      for (let i = 0; i < 30; i++) {
        const key = `k${(round * 7 + i * 13) % 50}`
        if ((round + i) % 5 === 0) {
          batch.push([OP_DEL, key])
          model.delete(key)
        } else {
          batch.push([OP_PUT, key, `${key}@${round}.${i}`])
          model.set(key, `${key}@${round}.${i}`)
        }
      }
      // Single puts and dels too, several at once (one group or several).
      await Promise.all([store.write(batch), store.write([[OP_PUT, `solo${round % 3}`, `s${round}`]])])
      model.set(`solo${round % 3}`, `s${round}`)
      for (let i = 0; i < 50; i++) expect(store.getNow(`k${i}`)).toBe(model.get(`k${i}`))
      for (let i = 0; i < 3; i++) expect(store.getNow(`solo${i}`)).toBe(model.get(`solo${i}`))
    }
    expect(store.readCacheStats.hits).toBeGreaterThan(0)
  })

  it('reads a key from LevelDB while a write of it is in flight, and from memory once that write is done', async () => {
    const store = await open('inflight', writes)
    await store.write([[OP_PUT, 'k', 'v1']])
    const held = holdWrites(store)
    const pending = store.write([[OP_PUT, 'k', 'v2']])
    await held.handed
    // While it is in flight the key is read from LevelDB.
    expect(store.getNow('k')).toBe('v1')
    held.release()
    await pending
    const hits = store.readCacheStats.hits
    expect(store.getNow('k')).toBe('v2')
    expect(store.readCacheStats.hits).toBe(hits + 1)
  })

  it('stays within readCacheBytes, counting the written values it keeps', async () => {
    const max = 64 * 1024
    const store = await open('bytes', { ...writes, readCacheBytes: max })
    const value = new Uint8Array(200).fill(9)
    for (let w = 0; w < 40; w++) {
      await store.write(Array.from({ length: 25 }, (_, i): EntryOp => [OP_PUT, `w${w}:${i}`, value]))
      expect(store.readCacheStats.bytes).toBeLessThanOrEqual(max)
    }
    expect(store.getNow('w39:24')).toEqual(Buffer.from(value))
    expect(store.getNow('w0:0')).toEqual(Buffer.from(value))
    expect(store.readCacheStats.keys).toBeLessThan(40 * 25)
  })
})
