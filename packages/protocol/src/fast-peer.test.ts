import { describe, expect, it } from 'vitest'
import { fastPeerAck, fastPeerEntries } from './fast-peer.js'
import { decodeFrame, encodeFrame } from './frames.js'
import { pullerMessageSchema, pusherMessageSchema } from './peer.js'

const bin = new Uint8Array([1, 2, 3])
const vv = { a1: 3, b2: 0 }
const rows = { a1: { vv: { a1: 3 }, complete: true }, b2: { vv: {}, complete: false } }
const origin64 = 'o'.repeat(64)

const ENTRIES_ACCEPTED: object[] = [
  { type: 'entries', entries: [], head: 0, vv: {} },
  { type: 'entries', entries: [bin], head: 1, vv },
  { type: 'entries', entries: [bin, Buffer.from('x'), new Uint8Array(0)], head: Number.MAX_SAFE_INTEGER, vv },
  { type: 'entries', vv: { [origin64]: Number.MAX_SAFE_INTEGER }, head: 7, entries: [bin] },
]

const ENTRIES_REFUSED: unknown[] = [
  null,
  undefined,
  'entries',
  [bin],
  { type: 'entries', entries: [bin], head: 1 },
  { type: 'entries', entries: [bin], vv },
  { type: 'entries', head: 1, vv },
  { type: 'entries', entries: bin, head: 1, vv },
  { type: 'entries', entries: ['x'], head: 1, vv },
  { type: 'entries', entries: [bin, null], head: 1, vv },
  { type: 'entries', entries: [[1, 2]], head: 1, vv },
  { type: 'entries', entries: [bin], head: -1, vv },
  { type: 'entries', entries: [bin], head: 1.5, vv },
  { type: 'entries', entries: [bin], head: '1', vv },
  { type: 'entries', entries: [bin], head: 1, vv: null },
  { type: 'entries', entries: [bin], head: 1, vv: [] },
  { type: 'entries', entries: [bin], head: 1, vv: { a1: -1 } },
  { type: 'entries', entries: [bin], head: 1, vv: { a1: 0.5 } },
  { type: 'entries', entries: [bin], head: 1, vv: { a1: '1' } },
  { type: 'entries', entries: [bin], head: 1, vv: { '': 1 } },
  { type: 'entries', entries: [bin], head: 1, vv: { [`${origin64}x`]: 1 } },
  { type: 'entries', entries: [bin], head: 1, vv, extra: 1 },
  { type: 'heartbeat', entries: [bin], head: 1, vv },
  { type: 'ack', vv, digest: 'd', rows },
]

const ACK_ACCEPTED: object[] = [
  { type: 'ack', vv: {}, digest: '', rows: {} },
  { type: 'ack', vv, digest: 'abcdef0123456789', rows },
  { type: 'ack', vv, digest: 'd', rows, direct: [], directRuns: {} },
  { type: 'ack', vv, digest: 'd', rows, direct: ['a1', origin64], directRuns: { a1: 'run-1' }, frames: 0 },
  { type: 'ack', vv, digest: 'd', rows, frames: Number.MAX_SAFE_INTEGER },
  { frames: 12, rows: {}, digest: 'd', vv: {}, type: 'ack' },
]

const ACK_REFUSED: unknown[] = [
  null,
  'ack',
  { type: 'ack', digest: 'd', rows },
  { type: 'ack', vv, rows },
  { type: 'ack', vv, digest: 'd' },
  { type: 'ack', vv, digest: 'd'.repeat(17), rows },
  { type: 'ack', vv, digest: 1, rows },
  { type: 'ack', vv: { a1: -2 }, digest: 'd', rows },
  { type: 'ack', vv, digest: 'd', rows: { a1: { vv: {} } } },
  { type: 'ack', vv, digest: 'd', rows: { a1: { vv: {}, complete: 'yes' } } },
  { type: 'ack', vv, digest: 'd', rows: { a1: { vv: { b: -1 }, complete: true } } },
  { type: 'ack', vv, digest: 'd', rows: { a1: { vv: {}, complete: true, more: 1 } } },
  { type: 'ack', vv, digest: 'd', rows: { '': { vv: {}, complete: true } } },
  { type: 'ack', vv, digest: 'd', rows: { a1: null } },
  { type: 'ack', vv, digest: 'd', rows: [] },
  { type: 'ack', vv, digest: 'd', rows, direct: 'a1' },
  { type: 'ack', vv, digest: 'd', rows, direct: [''] },
  { type: 'ack', vv, digest: 'd', rows, direct: [1] },
  { type: 'ack', vv, digest: 'd', rows, direct: Array.from({ length: 1025 }, (_, i) => `o${i}`) },
  { type: 'ack', vv, digest: 'd', rows, directRuns: { a1: '' } },
  { type: 'ack', vv, digest: 'd', rows, directRuns: { a1: 'r'.repeat(65) } },
  { type: 'ack', vv, digest: 'd', rows, directRuns: { a1: 3 } },
  {
    type: 'ack',
    vv,
    digest: 'd',
    rows,
    directRuns: Object.fromEntries(Array.from({ length: 1025 }, (_, i) => [`o${i}`, 'r'])),
  },
  { type: 'ack', vv, digest: 'd', rows, frames: -1 },
  { type: 'ack', vv, digest: 'd', rows, frames: 1.5 },
  { type: 'ack', vv, digest: 'd', rows, frames: '1' },
  { type: 'ack', vv, digest: 'd', rows, extra: true },
  { type: 'entries', entries: [], head: 0, vv: {} },
]

describe('fastPeerEntries', () => {
  it('takes well-formed entries frames as the schema reads them', () => {
    for (const m of ENTRIES_ACCEPTED) {
      expect(fastPeerEntries(m), JSON.stringify(m)).toBe(m)
      const parsed = pusherMessageSchema.safeParse(m)
      expect(parsed.success).toBe(true)
      expect(parsed.data).toEqual(m)
    }
  })

  it('leaves everything else to the schema', () => {
    for (const m of ENTRIES_REFUSED) expect(fastPeerEntries(m), String(JSON.stringify(m))).toBeNull()
  })

  it('never takes what the schema refuses', () => {
    for (const m of [...ENTRIES_REFUSED, ...ACK_ACCEPTED, ...ACK_REFUSED]) {
      if (fastPeerEntries(m) !== null) expect(pusherMessageSchema.safeParse(m).success).toBe(true)
    }
  })

  it('takes a frame as it comes off the wire', () => {
    const frame = decodeFrame(encodeFrame({ type: 'entries', entries: [bin, bin], head: 9, vv }))
    expect(fastPeerEntries(frame)).toEqual({
      type: 'entries',
      entries: [Buffer.from(bin), Buffer.from(bin)],
      head: 9,
      vv,
    })
  })
})

describe('fastPeerAck', () => {
  it('takes well-formed acks as the schema reads them', () => {
    for (const m of ACK_ACCEPTED) {
      expect(fastPeerAck(m), JSON.stringify(m)).toBe(m)
      const parsed = pullerMessageSchema.safeParse(m)
      expect(parsed.success).toBe(true)
      expect(parsed.data).toEqual(m)
    }
  })

  it('leaves everything else to the schema', () => {
    for (const m of ACK_REFUSED) expect(fastPeerAck(m), String(JSON.stringify(m))).toBeNull()
  })

  it('never takes what the schema refuses', () => {
    for (const m of [...ACK_REFUSED, ...ENTRIES_ACCEPTED, ...ENTRIES_REFUSED]) {
      if (fastPeerAck(m) !== null) expect(pullerMessageSchema.safeParse(m).success).toBe(true)
    }
    // The schema refuses each refused ack too, but for unknown fields (which it strips).
    for (const m of ACK_REFUSED) {
      const unknownField = /"(extra|more)"/.test(String(JSON.stringify(m)))
      if (!unknownField && (m as { type?: string } | null)?.type === 'ack') {
        expect(pullerMessageSchema.safeParse(m).success, JSON.stringify(m)).toBe(false)
      }
    }
  })

  it('takes an ack as it comes off the wire', () => {
    const ack = { type: 'ack', vv, digest: 'd', rows, direct: ['a1'], directRuns: { a1: 'r' }, frames: 3 }
    expect(fastPeerAck(decodeFrame(encodeFrame(ack)))).toEqual(ack)
  })
})
