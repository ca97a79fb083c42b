import { describe, expect, it } from 'vitest'
import { identityOffset, readForApply } from './entry-scan.js'
import { decodeEntry, encodeEntry, type LogEntry, OP_DEL, OP_PUT, placeEntry } from './log-entry.js'

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

  it('reads the identity of an entry for applying, with the offset placeEntry needs', () => {
    const raw = encodeEntry({ ...entry, ops: [[OP_PUT, 'k', 'v']] })
    const read = readForApply(raw)
    expect([read.origin, read.originSeq, read.hlc]).toEqual([entry.origin, entry.originSeq, entry.hlc])
    expect(read.identityAt).toBe(identityOffset(raw))
    expect(read.raw).toBe(raw)
  })
})
