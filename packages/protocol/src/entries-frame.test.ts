import { describe, expect, it } from 'vitest'
import { binHeaderLength, encodeEntriesFrame, writeBinHeader } from './entries-frame.js'
import { decodeFrame, encodeFrame } from './frames.js'

function entry(n: number, length: number): Buffer {
  const b = Buffer.alloc(length)
  for (let i = 0; i < length; i++) b[i] = (n * 7 + i) & 0xff
  return b
}

/** The entries as msgpack bins laid end to end, as the server's log tail keeps them. */
function bins(entries: Buffer[]): Buffer {
  const out = Buffer.alloc(entries.reduce((n, e) => n + binHeaderLength(e.length) + e.length, 0))
  let at = 0
  for (const e of entries) {
    at = writeBinHeader(out, at, e.length)
    at += e.copy(out, at)
  }
  return out
}

describe('entries frame built from bins', () => {
  it('decodes to the message encodeFrame gives, at every header size', () => {
    // Lengths at each bin header's edges; counts at each array header's; heads at each uint's.
    const lengths = [1, 255, 256, 65_535, 65_536, 70_000]
    for (const count of [0, 1, 6, 15, 16, 300]) {
      const entries = Array.from({ length: count }, (_, i) =>
        entry(i, count <= 16 ? lengths[i % lengths.length] : 1 + (i % 300)),
      )
      const laid = bins(entries)
      for (const head of [0, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
        const decoded = decodeFrame(encodeEntriesFrame(count, laid, head)) as Record<string, unknown>
        const expected = decodeFrame(encodeFrame({ type: 'entries', entries, head })) as Record<string, unknown>
        expect(Object.keys(decoded)).toEqual(['type', 'entries', 'head'])
        expect(decoded.type).toBe('entries')
        expect(decoded.head).toBe(head)
        expect(decoded.head).toBe(expected.head)
        const got = decoded.entries as Uint8Array[]
        expect(got.length).toBe(count)
        for (let i = 0; i < count; i++) {
          expect(got[i]).toBeInstanceOf(Uint8Array)
          expect(Buffer.from(got[i]).equals(entries[i])).toBe(true)
        }
      }
    }
  })

  it('with a version vector and runs of bins, decodes to what encodeFrame gives (a peer feed frame)', () => {
    const vvs = [{}, { a: 1 }, { '44296873b6dabc3e2cd72f70588dfc38': 2 ** 40, b: 0, c: 70_000 }]
    for (const count of [0, 1, 15, 16, 300]) {
      const entries = Array.from({ length: count }, (_, i) => entry(i, 1 + ((i * 37) % 400)))
      // Cut into runs at every third entry, as a feed that drops some entries copies the runs it keeps.
      const runs: Buffer[] = []
      for (let i = 0; i < count; i += 3) runs.push(bins(entries.slice(i, i + 3)))
      for (const head of [0, 200, 2 ** 32 + 5]) {
        for (const vv of vvs) {
          const decoded = decodeFrame(encodeEntriesFrame(count, runs, head, encodeFrame(vv))) as Record<string, unknown>
          const expected = decodeFrame(encodeFrame({ type: 'entries', entries, head, vv })) as Record<string, unknown>
          expect(Object.keys(decoded)).toEqual(['type', 'entries', 'head', 'vv'])
          expect(decoded.head).toBe(expected.head)
          expect(decoded.vv).toEqual(expected.vv)
          const got = (decoded.entries as Uint8Array[]).map((e) => Buffer.from(e).toString('hex'))
          expect(got).toEqual(entries.map((e) => e.toString('hex')))
        }
      }
    }
  })

  it('holds 65,536 entries or more under a 32-bit array header', () => {
    const entries = Array.from({ length: 70_000 }, (_, i) => entry(i, 1 + (i % 3)))
    const decoded = decodeFrame(encodeEntriesFrame(entries.length, bins(entries), 9)) as { entries: Uint8Array[] }
    expect(decoded.entries.length).toBe(70_000)
    expect(Buffer.from(decoded.entries[69_999]).equals(entries[69_999])).toBe(true)
  })

  it('keeps every frame intact while later ones are built (frames share a slab)', () => {
    const made: { frame: Buffer; entries: Buffer[]; head: number }[] = []
    // Enough frames of enough bytes to fill several slabs, and some too large for one.
    for (let n = 0; n < 300; n++) {
      const entries = Array.from({ length: 1 + (n % 40) }, (_, i) =>
        entry(n + i, n % 50 === 0 ? 70_000 : 100 + ((n * i) % 900)),
      )
      made.push({ frame: encodeEntriesFrame(entries.length, bins(entries), n), entries, head: n })
    }
    for (const { frame, entries, head } of made) {
      const decoded = decodeFrame(frame) as { entries: Uint8Array[]; head: number }
      expect(decoded.head).toBe(head)
      expect(decoded.entries.length).toBe(entries.length)
      for (let i = 0; i < entries.length; i++) expect(Buffer.from(decoded.entries[i]).equals(entries[i])).toBe(true)
    }
  })

  it('refuses a head that is not a seq', () => {
    for (const head of [-1, 1.5, Number.NaN, 2 ** 53])
      expect(() => encodeEntriesFrame(0, Buffer.alloc(0), head)).toThrow(RangeError)
  })
})
