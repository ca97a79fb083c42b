import { describe, expect, it } from 'vitest'
import { LogTail } from './log-tail.js'

/** A deterministic pseudo-random sequence (the test replays the same pushes every run). */
function rng(seed: number): () => number {
  let x = seed
  return () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    return x / 0x7fffffff
  }
}

function entry(seq: number, length: number): Buffer {
  const b = Buffer.alloc(length)
  for (let i = 0; i < length; i++) b[i] = (seq * 31 + i) & 0xff
  return b
}

describe('log tail (ring buffer)', () => {
  it('always holds a gap-free suffix of what was pushed, byte for byte, within its bounds', () => {
    for (const [maxEntries, maxBytes] of [
      [8, 1000],
      [100, 512],
      [50, 4096],
    ]) {
      const tail = new LogTail(maxEntries, maxBytes)
      const random = rng(maxEntries * maxBytes)
      const pushed: Buffer[] = []
      for (let seq = 1; seq <= 3000; seq++) {
        const raw = entry(seq, 1 + Math.floor(random() * 200))
        tail.push(seq, raw)
        pushed.push(raw)
        const held = tail.length
        expect(held).toBeLessThanOrEqual(maxEntries)
        expect(held).toBeGreaterThan(0)
        const first = seq - held + 1
        const out = tail.from(first, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)
        expect(out).not.toBeNull()
        expect(out!.length).toBe(held)
        expect(out!.reduce((n, b) => n + b.length, 0)).toBeLessThanOrEqual(maxBytes)
        for (let i = 0; i < held; i++) expect(out![i].equals(pushed[first - 1 + i])).toBe(true)
        if (first > 1) expect(tail.from(first - 1, 10, 1 << 20)).toBeNull()
        expect(tail.from(seq + 1, 10, 1 << 20)).toEqual([])
      }
    }
  })

  it('caps what from() returns by count and by bytes', () => {
    const tail = new LogTail(100, 10_000)
    for (let seq = 1; seq <= 50; seq++) tail.push(seq, entry(seq, 100))
    expect(tail.from(1, 7, 1 << 20)?.length).toBe(7)
    expect(tail.from(1, 100, 250)?.length).toBe(3) // stops once 250 bytes are reached
  })

  it('starts afresh after an entry too large to keep, or a gap in seqs', () => {
    const tail = new LogTail(10, 300)
    tail.push(1, entry(1, 50))
    tail.push(2, entry(2, 400))
    expect(tail.length).toBe(0)
    tail.push(3, entry(3, 50))
    expect(tail.from(3, 10, 1000)?.[0].equals(entry(3, 50))).toBe(true)
    tail.push(5, entry(5, 50))
    expect(tail.from(3, 10, 1000)).toBeNull()
    expect(tail.from(5, 10, 1000)?.length).toBe(1)
  })
})

describe('log tail as bins (what a replica frame is built from)', () => {
  /** Splits bins laid end to end back into their entries. */
  function unbin(bins: Buffer): Buffer[] {
    const out: Buffer[] = []
    let at = 0
    while (at < bins.length) {
      const kind = bins[at]
      const [length, header] =
        kind === 0xc4
          ? [bins[at + 1], 2]
          : kind === 0xc5
            ? [bins.readUInt16BE(at + 1), 3]
            : kind === 0xc6
              ? [bins.readUInt32BE(at + 1), 5]
              : [-1, 0]
      expect(length).toBeGreaterThanOrEqual(0)
      out.push(bins.subarray(at + header, at + header + length))
      at += header + length
    }
    expect(at).toBe(bins.length)
    return out
  }

  it('gives, from any held seq, a run of the same entries as from(), stopping only where the ring wraps', () => {
    for (const [maxEntries, maxBytes] of [
      [8, 1000],
      [100, 512],
      [50, 4096],
    ]) {
      const tail = new LogTail(maxEntries, maxBytes)
      const random = rng(maxEntries + maxBytes)
      let wrapped = 0
      for (let seq = 1; seq <= 800; seq++) {
        // Some entries over 255 bytes, so bin 16 headers are in the ring too.
        tail.push(seq, entry(seq, 1 + Math.floor(random() * (maxBytes > 1000 ? 400 : 150))))
        const first = seq - tail.length + 1
        for (const from of [first, Math.ceil((first + seq) / 2), seq]) {
          const all = tail.from(from, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)!
          let at = from
          // Runs from `from` on, one after the other, cover every held entry, in order.
          while (at <= seq) {
            const run = tail.binsFrom(at, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)!
            expect(run.count).toBeGreaterThan(0)
            const entries = unbin(run.bins)
            expect(entries.length).toBe(run.count)
            for (let i = 0; i < run.count; i++) expect(entries[i].equals(all[at - from + i])).toBe(true)
            if (at === from && run.count < all.length) wrapped++
            at += run.count
          }
        }
        if (first > 1) expect(tail.binsFrom(first - 1, 10, 1 << 20)).toBeNull()
        expect(tail.binsFrom(seq + 1, 10, 1 << 20)?.count).toBe(0)
      }
      expect(wrapped).toBeGreaterThan(0) // the wrap case was exercised
    }
  })

  it('answers for every held entry the identity it was pushed with (none: null), and the bytes its bin takes in a run', () => {
    for (const [maxEntries, maxBytes] of [
      [8, 1000],
      [100, 512],
    ]) {
      const tail = new LogTail(maxEntries, maxBytes)
      const random = rng(maxEntries * 7 + maxBytes)
      const origins = ['', 'node-a', 'node-b', 'nœud-c']
      const ids: ([string, number] | null)[] = [null]
      for (let seq = 1; seq <= 600; seq++) {
        const raw = entry(seq, 1 + Math.floor(random() * 300))
        if (random() < 0.2) {
          tail.push(seq, raw)
          ids.push(null)
        } else {
          const id: [string, number] = [origins[Math.floor(random() * origins.length)], seq * 3 + 2 ** 40]
          tail.push(seq, raw, ...id)
          ids.push(id)
        }
        const first = seq - tail.length + 1
        for (let at = first; at <= seq; ) {
          const run = tail.binsFrom(at, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)!
          let bytes = 0
          for (let s = at; s < at + run.count; s++) {
            const origin = tail.originAt(s)
            expect(origin === null ? null : [origin, tail.counterAt(s)]).toEqual(ids[s])
            bytes += tail.binBytesAt(s)
          }
          expect(bytes).toBe(run.bins.length)
          at += run.count
        }
      }
    }
  })

  it('caps a run by count and by bytes as from() does', () => {
    const tail = new LogTail(100, 10_000)
    for (let seq = 1; seq <= 50; seq++) tail.push(seq, entry(seq, 100))
    expect(tail.binsFrom(1, 7, 1 << 20)?.count).toBe(7)
    expect(tail.binsFrom(1, 100, 250)?.count).toBe(3)
    expect(tail.binsFrom(1, 100, 250)?.bins.length).toBe(3 * 102)
  })

  it('empty() drops every entry and keeps the ring; clear() gives it back', () => {
    const tail = new LogTail(100, 10_000)
    expect(tail.reservedBytes).toBe(0)
    for (let seq = 1; seq <= 50; seq++) tail.push(seq, entry(seq, 100))
    expect(tail.reservedBytes).toBe(10_000)
    tail.empty()
    expect(tail.length).toBe(0)
    expect(tail.from(50, 10, 1 << 20)).toBeNull()
    expect(tail.reservedBytes).toBe(10_000)
    // Pushes go on from any seq, byte for byte.
    for (let seq = 70; seq <= 80; seq++) tail.push(seq, entry(seq, 100))
    expect(tail.from(69, 10, 1 << 20)).toBeNull()
    expect(tail.from(70, 100, 1 << 20)?.map((b) => b.toString('hex'))).toEqual(
      Array.from({ length: 11 }, (_, i) => entry(70 + i, 100).toString('hex')),
    )
    tail.clear()
    expect(tail.length).toBe(0)
    expect(tail.reservedBytes).toBe(0)
  })
})

describe('log tail identities through gaps, resets and refills', () => {
  it('never answers a slot with another entry’s identity: gaps, entries too big or empty, empty() and clear() among the pushes', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const random = rng(seed * 7919)
      const maxEntries = 2 + Math.floor(random() * 30)
      const maxBytes = 64 + Math.floor(random() * 2000)
      const tail = new LogTail(maxEntries, maxBytes)
      const origins = ['', 'node-a', 'node-b', 'nœud-c', 'node-a ']
      /** What each seq was last pushed as: its bytes and identity (null: pushed without one). */
      const pushed = new Map<number, { raw: Buffer; id: [string, number] | null }>()
      let seq = 0
      for (let step = 0; step < 1500; step++) {
        const r = random()
        if (r < 0.01) tail.empty()
        else if (r < 0.015) tail.clear()
        // A gap (the tail starts afresh), or a seq pushed again after a reset (a restart, a full resync).
        if (r < 0.03) seq += Math.floor(random() * 5) - 2
        seq = Math.max(seq + 1, 1)
        const length = random() < 0.02 ? (random() < 0.5 ? 0 : maxBytes + 1) : 1 + Math.floor(random() * (maxBytes / 3))
        const raw = entry(seq * 7 + step, length)
        const id: [string, number] | null =
          random() < 0.2 ? null : [origins[Math.floor(random() * origins.length)], step * 1000 + 2 ** 40]
        if (id === null) tail.push(seq, raw)
        else tail.push(seq, raw, ...id)
        pushed.set(seq, { raw, id })
        if (tail.length === 0) continue
        const first = seq - tail.length + 1
        const held = tail.from(first, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)!
        expect(held.length, `seed ${seed} step ${step}`).toBe(tail.length)
        for (let s = first; s <= seq; s++) {
          const want = pushed.get(s)!
          // The bytes held for s, and the identity pushed with those bytes, not an earlier push of s or of the slot.
          expect(held[s - first].equals(want.raw), `seed ${seed} step ${step} seq ${s}`).toBe(true)
          const origin = tail.originAt(s)
          expect(origin === null ? null : [origin, tail.counterAt(s)], `seed ${seed} step ${step} seq ${s}`).toEqual(
            want.id,
          )
          expect(tail.binBytesAt(s)).toBe(
            held[s - first].length + (held[s - first].length < 256 ? 2 : held[s - first].length < 65536 ? 3 : 5),
          )
        }
      }
    }
  })
})
