import { describe, expect, it } from 'vitest'
import type { ApplyOp } from '../storage/entry-scan.js'
import type { EntryIdentity } from '../storage/log-entry.js'
import {
  DECODE_SPAN,
  isSealed,
  PUT_RECORD_SPAN,
  readRecord,
  replicatedSpan,
  sealRecord,
  seqRecord,
  writeRecord,
} from '../storage/record.js'
import { type ConflictResolver, KEEP } from '../storage/resolver.js'
import { LwwResolver } from './lww.js'
import { VclockResolver } from './vclock.js'

/**
 * Rule 6 of the multi-master notes: the merge is a pure total order. Every
 * test here applies one set of writes to one key in many orders (each
 * origin's writes in their own order, as nodes apply them), with
 * duplicates, and split in two halves joined by merge(), and requires the
 * same bytes every time.
 */

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 0x1_0000_0000
  }
}

interface Write {
  id: EntryIdentity
  op: ApplyOp
}

const ORIGINS = ['a1', 'b2', 'c3']

/**
 * Writes of three origins to one key, as clients would make them: each
 * origin numbers its writes densely and stamps them with a rising clock;
 * a write's context is what some node had seen of the key (a random prefix
 * of each origin's writes so far).
 */
function randomWrites(random: () => number, count: number, withContext: boolean): Write[] {
  const counters: Record<string, number> = {}
  const clocks: Record<string, number> = {}
  const writes: Write[] = []
  for (let i = 0; i < count; i++) {
    const origin = ORIGINS[Math.floor(random() * ORIGINS.length)]
    const originSeq = (counters[origin] = (counters[origin] ?? 0) + 1)
    // Clocks that drift apart a little, and collide now and then.
    clocks[origin] = Math.max(clocks[origin] ?? 0, 1000 + i * 3 + Math.floor(random() * 5)) + 1
    const id = { origin, originSeq, hlc: clocks[origin] * 1024 }
    const del = random() < 0.25
    const op: ApplyOp = {
      del,
      key: Buffer.from('k'),
      value: del ? null : Buffer.from(`v${i}`),
      binary: random() < 0.2,
    }
    if (withContext && random() < 0.7) {
      const ctx: Record<string, number> = {}
      for (const o of ORIGINS) {
        const seen = counters[o] ?? 0
        if (seen > 0 && random() < 0.6) ctx[o] = Math.floor(random() * (seen + 1))
      }
      // A write never names its own origin's later writes.
      ctx[origin] = Math.min(ctx[origin] ?? 0, originSeq - 1)
      op.ctx = ctx
    }
    writes.push({ id, op })
  }
  return writes
}

/** A random interleaving that keeps each origin's writes in order. */
function interleave(random: () => number, writes: Write[]): Write[] {
  const queues = ORIGINS.map((o) => writes.filter((w) => w.id.origin === o))
  const out: Write[] = []
  while (queues.some((q) => q.length > 0)) {
    const ready = queues.filter((q) => q.length > 0)
    out.push(ready[Math.floor(random() * ready.length)].shift() as Write)
  }
  return out
}

function applyAll(resolver: ConflictResolver, writes: Write[], start?: Buffer): Buffer | undefined {
  let record = start
  for (const w of writes) {
    const next = resolver.resolve(w.op, w.id, record)
    if (next === KEEP) continue
    record = next ?? undefined
  }
  return record
}

/** A split of the writes into two sets that each hold a prefix of every origin's writes. */
function prefixes(random: () => number, writes: Write[]): [Write[], Write[]] {
  const cut: Record<string, number> = {}
  for (const o of ORIGINS) cut[o] = Math.floor(random() * (writes.filter((w) => w.id.origin === o).length + 1))
  const a = writes.filter((w) => w.id.originSeq <= cut[w.id.origin])
  const cut2: Record<string, number> = {}
  for (const o of ORIGINS) cut2[o] = Math.floor(random() * (writes.filter((w) => w.id.origin === o).length + 1))
  const b = writes.filter((w) => w.id.originSeq <= cut2[w.id.origin])
  return [a, b]
}

/** The writes neither half holds, each origin's in order: what a node still applies after a merge. */
function rest(writes: Write[], a: Write[], b: Write[]): Write[] {
  const held = new Set([...a, ...b].map((w) => `${w.id.origin}:${w.id.originSeq}`))
  return writes.filter((w) => !held.has(`${w.id.origin}:${w.id.originSeq}`))
}

const KEY = Buffer.from('k')

// As the store keeps them: sealed for their key (a resolver may hand back a
// record sealed already, as lww does for a put, or not, as a merge does).
const hex = (b: Buffer | undefined) => (b === undefined ? 'none' : sealRecord(KEY, 0, b).toString('hex'))

for (const [name, make, withContext] of [
  ['lww', () => new LwwResolver(), false],
  ['vclock', () => new VclockResolver(1000), true],
] as const) {
  describe(`${name}: one set of writes gives the same bytes whatever the order`, () => {
    it('in any per-origin-ordered interleaving, with duplicates', () => {
      for (let seed = 1; seed <= 60; seed++) {
        const random = rng(seed)
        const writes = randomWrites(random, 5 + Math.floor(random() * 30), withContext)
        const reference = hex(applyAll(make(), writes))
        for (let round = 0; round < 8; round++) {
          const order = interleave(random, writes)
          // Duplicates: a write delivered again later (by another path of a mesh).
          const dupes = order.filter(() => random() < 0.2)
          const withDupes = [...order]
          for (const d of dupes) withDupes.splice(withDupes.indexOf(d) + 1 + Math.floor(random() * 3), 0, d)
          expect(hex(applyAll(make(), withDupes)), `seed ${seed} round ${round}`).toBe(reference)
        }
      }
    })

    it('when two nodes that each hold a prefix of every origin merge, then apply the rest', () => {
      for (let seed = 100; seed <= 160; seed++) {
        const random = rng(seed)
        const writes = randomWrites(random, 5 + Math.floor(random() * 30), withContext)
        const reference = hex(applyAll(make(), writes))
        const [a, b] = prefixes(random, writes)
        const resolver = make()
        const left = applyAll(resolver, interleave(random, a))
        const right = applyAll(make(), interleave(random, b))
        let merged = left
        if (right !== undefined) {
          const m = resolver.merge?.(left, right)
          if (m !== undefined && m !== KEEP) merged = m
        }
        // What neither held: only writes past both halves' prefixes (which are all the node lacks).
        const after = applyAll(resolver, interleave(random, rest(writes, a, b)), merged)
        expect(hex(after), `seed ${seed}`).toBe(reference)
      }
    })
  })
}

describe('lww', () => {
  it('keeps the greatest (hlc, origin, counter), and a delete as a tombstone with its version', () => {
    const lww = new LwwResolver()
    const put = (origin: string, hlc: number, value: string, originSeq = 1) =>
      ({
        op: { del: false, key: Buffer.from('k'), value: Buffer.from(value), binary: false },
        id: { origin, originSeq, hlc },
      }) as Write
    let record = applyAll(lww, [put('b', 10, 'x'), put('a', 10, 'y'), put('a', 9, 'z')])
    expect(readRecord(record!).body).toEqual({ kind: 'value', value: 'x' }) // same hlc: origin b > a
    record = applyAll(
      lww,
      [
        {
          op: { del: true, key: Buffer.from('k'), value: null, binary: false },
          id: { origin: 'a', originSeq: 2, hlc: 11 },
        },
      ],
      record,
    )
    const parsed = readRecord(record!)
    expect(parsed.body.kind).toBe('tombstone')
    expect(parsed.version).toEqual({ origin: 'a', counter: 2, hlc: 11 })
    // A late put from before the delete loses to the tombstone.
    expect(lww.resolve(put('c', 10.5, 'late').op, { origin: 'c', originSeq: 1, hlc: 10 }, record)).toBe(KEEP)
    expect(lww.stats.lost).toBeGreaterThan(0)
  })

  it('decides by HLC, then origin, then counter, whatever the held record’s layout', () => {
    const lww = new LwwResolver()
    const op: ApplyOp = { del: false, key: Buffer.from('k'), value: Buffer.from('new'), binary: false }
    const held = (hlc: number, origin: string, counter: number) =>
      sealRecord(
        Buffer.from('k'),
        0,
        writeRecord({ version: { hlc, origin, counter }, body: { kind: 'value', value: 'old' } }),
      )
    const wins = (current: Buffer, id: EntryIdentity) => lww.resolve(op, id, current) !== KEEP
    // HLCs beyond 2^32 (as a real clock's are): both halves compared.
    const hlc = 2 ** 42 + 5
    expect(wins(held(hlc, 'b', 1), { origin: 'b', originSeq: 2, hlc: hlc + 1 })).toBe(true)
    expect(wins(held(hlc, 'b', 1), { origin: 'b', originSeq: 2, hlc: hlc - 2 ** 32 })).toBe(false)
    expect(wins(held(hlc + 2 ** 32, 'a', 1), { origin: 'z', originSeq: 9, hlc: hlc + 1 })).toBe(false)
    // Equal HLCs: the origin's bytes, then the counter; the same version is kept.
    expect(wins(held(hlc, 'b', 1), { origin: 'c', originSeq: 1, hlc })).toBe(true)
    expect(wins(held(hlc, 'b', 1), { origin: 'a', originSeq: 5, hlc })).toBe(false)
    expect(wins(held(hlc, 'b', 1), { origin: 'b', originSeq: 2, hlc })).toBe(true)
    expect(wins(held(hlc, 'b', 2), { origin: 'b', originSeq: 1, hlc })).toBe(false)
    expect(wins(held(hlc, 'b', 1), { origin: 'b', originSeq: 1, hlc })).toBe(false)
    // A record with no version (written by a single master) loses to any write.
    expect(wins(seqRecord(Buffer.from('k'), 0, 'old', 7), { origin: 'a', originSeq: 1, hlc: 1 })).toBe(true)
    // A record this build cannot read is refused, not overwritten.
    const unknown = held(hlc, 'b', 1)
    unknown[1] |= 0x10
    expect(() => lww.resolve(op, { origin: 'c', originSeq: 1, hlc: hlc + 1 }, unknown)).toThrow(/does not know|newer/)
  })

  it('names the digest span of each record it builds as replicatedSpan reads it (recordSpan)', () => {
    const lww = new LwwResolver()
    const key = Buffer.from('user:ключ')
    const values: [Uint8Array | null, boolean][] = [
      [Buffer.from('v'), false],
      [Buffer.alloc(0), false],
      [Buffer.from('ünïcødé ✓ 𝄞 half \ud800 pair'), false],
      [Buffer.from([0xff, 0, 0xc3]), true],
      [Buffer.alloc(0), true],
      [Buffer.alloc(70_000, 'x'), false],
      [null, false],
    ]
    for (const origin of ['f3a9c1d2e4b5a6978877665544332211', 'nœud-é', '']) {
      for (const hlc of [1, 2 ** 32, 2 ** 53 - 1]) {
        for (const [value, binary] of values) {
          const op: ApplyOp = { del: value === null, key, value, binary }
          const record = lww.resolve(op, { origin, originSeq: 2 ** 40, hlc }, undefined) as Buffer
          const known = lww.recordSpan(op)
          // A tombstone's is read; a value's is the one replicatedSpan finds.
          expect(known).toBe(value === null ? DECODE_SPAN : replicatedSpan(record))
          if (known !== PUT_RECORD_SPAN) continue
          // PUT_RECORD_SPAN: a sealed value holding the write's own version and nothing else (LwwHeads.setValue).
          const read = readRecord(record)
          expect(read.version).toEqual({ hlc, counter: 2 ** 40, origin })
          expect([read.expiresAt, read.modSeq, isSealed(record)]).toEqual([undefined, undefined, true])
        }
      }
    }
  })
})

describe('vclock', () => {
  const key = Buffer.from('k')
  const put = (value: string, ctx?: Record<string, number>): ApplyOp => ({
    del: false,
    key,
    value: Buffer.from(value),
    binary: false,
    ...(ctx ? { ctx } : {}),
  })

  it('keeps concurrent writes as siblings; a write with the read context replaces exactly what was read', () => {
    const v = new VclockResolver(16)
    let r = applyAll(v, [
      { op: put('from a'), id: { origin: 'a', originSeq: 1, hlc: 1 } },
      { op: put('from b'), id: { origin: 'b', originSeq: 1, hlc: 2 } },
    ])
    let body = readRecord(r!).body
    expect(body.kind === 'siblings' && body.siblings.map((s) => s.value)).toEqual(['from a', 'from b'])
    const context = body.kind === 'siblings' ? body.context : {}
    expect(context).toEqual({ a: 1, b: 1 })
    // c writes concurrently with the reader; the reader then writes with what it read.
    r = applyAll(
      v,
      [
        { op: put('from c'), id: { origin: 'c', originSeq: 1, hlc: 3 } },
        { op: put('resolved', context), id: { origin: 'a', originSeq: 2, hlc: 4 } },
      ],
      r,
    )
    body = readRecord(r!).body
    expect(body.kind === 'siblings' && body.siblings.map((s) => s.value)).toEqual(['resolved', 'from c'])
  })

  it('caps siblings at the origin: the oldest by HLC go into the write’s context and are reported', () => {
    const dropped: string[] = []
    const v = new VclockResolver(3, (_key, gone) => dropped.push(...gone.map((s) => String(s.value))))
    let record: Buffer | undefined
    for (let i = 1; i <= 6; i++) {
      const id = { origin: `o${i}`, originSeq: 1, hlc: i * 1024 }
      const op = v.prepareLocal(put(`v${i}`), id, record)
      const next = v.resolve(op, id, record)
      if (next !== KEEP) record = next ?? undefined
    }
    const body = readRecord(record!).body
    expect(body.kind === 'siblings' && body.siblings.map((s) => s.value)).toEqual(['v4', 'v5', 'v6'])
    expect(dropped).toEqual(['v1', 'v2', 'v3'])
    expect(v.stats.dropped).toBe(3)
  })

  it('a delete without a context removes every value the node holds; it stays a tombstone (its context)', () => {
    const v = new VclockResolver(16)
    let r = applyAll(v, [
      { op: put('x'), id: { origin: 'a', originSeq: 1, hlc: 1 } },
      { op: put('y'), id: { origin: 'b', originSeq: 1, hlc: 2 } },
    ])
    const id = { origin: 'a', originSeq: 2, hlc: 3 }
    const del = v.prepareLocal({ del: true, key, value: null, binary: false }, id, r)
    expect(del.ctx).toEqual({ a: 1, b: 1 })
    r = applyAll(v, [{ op: del, id }], r)
    expect(readRecord(r!).body).toEqual({ kind: 'siblings', siblings: [], context: { a: 2, b: 1 } })
    // A write the delete covered, arriving late (a replay), does not come back.
    expect(v.resolve(put('y'), { origin: 'b', originSeq: 1, hlc: 2 }, r)).toBe(KEEP)
  })
})
