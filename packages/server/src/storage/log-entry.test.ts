import { describe, expect, it } from 'vitest'
import { identityOffset, readForApply } from './entry-scan.js'
import {
  decodeEntry,
  encodeEntry,
  type LogEntry,
  OP_DEL,
  OP_PUT,
  placedEntryBytes,
  placeEntry,
  placeEntryAt,
} from './log-entry.js'

describe('log entry: placement and identity', () => {
  const entry: LogEntry = {
    seq: 7,
    epoch: 2,
    origin: '0123456789abcdef0123456789abcdef',
    originSeq: 3,
    hlc: 1_800_000_000_000 * 1024 + 5,
    ops: [
      [OP_PUT, 'k', 'v'],
      [OP_DEL, 'd', { c: { a: 1 } }],
    ],
  }

  it('re-places an entry: new seq and epoch in front of the identity bytes, copied unchanged', () => {
    const raw = encodeEntry(entry)
    const at = identityOffset(raw)
    for (const [seq, epoch] of [
      [1, 0],
      [200, 1],
      [70_000, 300],
      [2 ** 40, 2 ** 20],
      [2 ** 53 - 1, 5],
    ]) {
      const placed = placeEntry(raw, at, seq, epoch)
      expect(decodeEntry(placed)).toEqual({ ...entry, seq, epoch })
      const placedAt = identityOffset(placed)
      expect(placed.subarray(placedAt)).toEqual(raw.subarray(at))
      // Re-placed again, the identity still has not changed by a byte.
      expect(placeEntry(placed, placedAt, 7, 2)).toEqual(raw)
    }
  })

  it('places an entry in the bytes encodeEntry gives for that placement, at every integer width', () => {
    const raw = encodeEntry(entry)
    const at = identityOffset(raw)
    const widths = [0, 1, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 3]
    for (const seq of widths) {
      for (const epoch of widths) {
        expect(placeEntry(raw, at, seq, epoch).equals(encodeEntry({ ...entry, seq, epoch }))).toBe(true)
      }
    }
  })

  it('places an entry in place (placeEntryAt): the bytes of placeEntry, within placedEntryBytes, nothing around them touched', () => {
    const widths = [0, 1, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 3]
    const long = { ...entry, ops: [[OP_PUT, 'k', 'v'.repeat(70_000)]] as LogEntry['ops'] }
    // Entries placed narrow and wide by their origin: the new placement is wider, as wide, or narrower.
    const shapes = [entry, long, { ...entry, seq: 2 ** 32 - 1, epoch: 70_000 }, { ...long, seq: 300, epoch: 2 ** 31 }]
    for (const shape of shapes) {
      const raw = encodeEntry(shape)
      const at = identityOffset(raw)
      // The entry as a view inside a larger buffer, as a peer's frame holds it.
      const frame = Buffer.concat([Buffer.from([1, 2, 3]), raw, Buffer.from([4])])
      const view = frame.subarray(3, 3 + raw.length)
      for (const seq of widths) {
        for (const epoch of widths) {
          const out = Buffer.alloc(placedEntryBytes(view, at) + 10, 0xee)
          const end = placeEntryAt(out, 5, view, at, seq, epoch)
          if (seq > 0xffffffff || epoch > 0xffffffff) {
            expect(end).toBe(-1)
            expect(out.every((b) => b === 0xee)).toBe(true)
            continue
          }
          expect(out.subarray(5, end).equals(placeEntry(raw, at, seq, epoch))).toBe(true)
          expect(end - 5).toBeLessThanOrEqual(placedEntryBytes(view, at))
          expect(out.subarray(0, 5).every((b) => b === 0xee)).toBe(true)
          expect(out.subarray(end).every((b) => b === 0xee)).toBe(true)
        }
      }
    }
  })

  it('reads the identity of an entry for applying, with the offset placeEntry needs', () => {
    const raw = encodeEntry({ ...entry, ops: [[OP_PUT, 'k', 'v']] })
    const read = readForApply(raw)
    expect([read.origin, read.originSeq, read.hlc]).toEqual([entry.origin, entry.originSeq, entry.hlc])
    expect(read.identityAt).toBe(identityOffset(raw))
    expect(read.raw).toBe(raw)
  })
})
