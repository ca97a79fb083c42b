import { describe, expect, it } from 'vitest'
import { decodeFrame, encodeFrame, FrameDecodeError } from './frames.js'
import { Packr, refuseForeignExtensions } from './msgpack.js'

// The server makes this refusal when it loads (node.ts); these tests decode as it does.
refuseForeignExtensions()

/**
 * Rule: tandem speaks plain msgpack, and decoding holds to it. A frame
 * holding one of msgpackr's own extension types, or a msgpackr record
 * definition, is malformed msgpack (FrameDecodeError, which the server
 * answers like any garbage frame), and the decoder goes on decoding.
 */

// msgpackr's encoder with its own types on: it writes what a msgpackr peer could send.
const rich = new Packr({ useRecords: false, structuredClone: true, moreTypes: true })
const records = new Packr({ useRecords: true })

/** Whether `bytes` holds an extension header of `type` (fixext 1/2/4/8/16 or ext 8). */
function hasExt(bytes: Buffer, type: number): boolean {
  for (let i = 0; i + 1 < bytes.length; i++) {
    if (bytes[i] >= 0xd4 && bytes[i] <= 0xd8 && bytes[i + 1] === type) return true
    if (bytes[i] === 0xc7 && i + 2 < bytes.length && bytes[i + 2] === type) return true
  }
  return false
}

function cyclicBatch(): Buffer {
  const ops: unknown[] = []
  ops.push({ ops })
  return rich.pack({ id: 1, op: 'batch', ops })
}

const REFUSED: [string, number, () => Buffer][] = [
  ['a structured-clone cycle (0x69 and 0x70)', 0x70, cyclicBatch],
  ['an Error (0x65)', 0x65, () => rich.pack({ id: 1, op: 'put', key: 'k', value: new Error('boom') })],
  ['a Set (0x73)', 0x73, () => rich.pack({ id: 1, op: 'mget', keys: new Set(['a', 'b']) })],
  ['a RegExp (0x78)', 0x78, () => rich.pack({ id: 1, op: 'scan', prefix: /a.*/ })],
  ['a typed array (0x74)', 0x74, () => rich.pack({ id: 1, op: 'put', key: 'k', value: new Float64Array([1.5]) })],
  ['a BigInt (0x42)', 0x42, () => rich.pack({ id: 1, op: 'get', key: 'k', n: 2n ** 70n })],
  ['a timestamp (-1)', 0xff, () => rich.pack({ id: 1, op: 'put', key: 'k', value: new Date(0) })],
  ['a record definition (0xd4 0x72)', 0x72, () => records.pack({ id: 1, op: 'get', key: 'k' })],
]

describe('decodeFrame refuses what is not plain msgpack', () => {
  for (const [what, type, make] of REFUSED) {
    it(`refuses ${what}`, () => {
      const bytes = make()
      expect(hasExt(bytes, type)).toBe(true)
      expect(() => decodeFrame(bytes)).toThrow(FrameDecodeError)
      expect(() => decodeFrame(bytes)).toThrow(/^malformed msgpack: .*(extension type|record definitions)/)
      // The decoder is left in a state to decode the next frame.
      expect(decodeFrame(encodeFrame({ id: 2, op: 'get', key: 'k' }))).toEqual({ id: 2, op: 'get', key: 'k' })
    })
  }

  it('refuses a record definition however it is framed (fixext 2)', () => {
    // 0xd5 0x72: a two-byte record id; the keys ['a'], then the record's value 1.
    const bytes = Buffer.from([0xd5, 0x72, 0x40, 0x00, 0x91, 0xa1, 0x61, 0x01])
    expect(() => decodeFrame(bytes)).toThrow(/^malformed msgpack: msgpackr record definitions/)
  })

  it('still decodes plain msgpack: integers 0x40-0x7f, binary, and ext 0 (an undefined field)', () => {
    const plain = { id: 0x41, op: 'put', key: 'k', value: Buffer.from([0x7f]), w: undefined }
    const bytes = encodeFrame(plain)
    expect(hasExt(bytes, 0x00)).toBe(true)
    const decoded = decodeFrame(bytes) as Record<string, unknown>
    expect(decoded.id).toBe(0x41)
    expect(Buffer.from(decoded.value as Uint8Array)).toEqual(Buffer.from([0x7f]))
    expect(decoded.w).toBeUndefined()
    expect(decodeFrame(Buffer.from([0x92, 0x40, 0x7f]))).toEqual([0x40, 0x7f])
  })
})

/**
 * Rule: 0xc1 is the one type byte msgpack never uses; a frame holding it
 * is malformed msgpack wherever it sits, while the same byte inside a
 * number or binary is data like any other (UTF-8 never holds it).
 */
describe('decodeFrame refuses the never-used byte 0xc1', () => {
  const str = (s: string) => Buffer.concat([Buffer.from([0xa0 | s.length]), Buffer.from(s)])
  const CASES: [string, Buffer][] = [
    ['as the whole frame', Buffer.from([0xc1])],
    // {id: 1, op: 'put', key: 'k', value: 0xc1}
    [
      'as a value',
      Buffer.concat([
        Buffer.from([0x84]),
        str('id'),
        Buffer.from([0x01]),
        str('op'),
        str('put'),
        str('key'),
        str('k'),
        str('value'),
        Buffer.from([0xc1]),
      ]),
    ],
    // [{id: 1, op: 'batch', ops: [{type: 'put', key: 'k', value: [[0xc1]]}]}]: deep in a pipelined frame
    [
      'nested in arrays and maps',
      Buffer.concat([
        Buffer.from([0x91, 0x83]),
        str('id'),
        Buffer.from([0x01]),
        str('op'),
        str('batch'),
        str('ops'),
        Buffer.from([0x91, 0x83]),
        str('type'),
        str('put'),
        str('key'),
        str('k'),
        str('value'),
        Buffer.from([0x91, 0x91, 0xc1]),
      ]),
    ],
  ]
  for (const [where, bytes] of CASES) {
    it(`refuses it ${where}`, () => {
      expect(() => decodeFrame(bytes)).toThrow(FrameDecodeError)
      expect(() => decodeFrame(bytes)).toThrow(/^malformed msgpack: byte 0xc1 is never used/)
      expect(decodeFrame(encodeFrame({ id: 2, op: 'get', key: 'k' }))).toEqual({ id: 2, op: 'get', key: 'k' })
    })
  }

  it('refuses it as a map key', () => {
    const bytes = Buffer.concat([Buffer.from([0x82]), str('id'), Buffer.from([0x01, 0xc1, 0x01])])
    expect(() => decodeFrame(bytes)).toThrow(/^malformed msgpack/)
  })

  it('decodes the byte where it is data: in numbers and binary', () => {
    const plain = {
      id: 0xc1,
      n: 0xc1c1c1c1,
      f: new DataView(new Uint8Array([0x40, 0xc1, 0xc1, 0, 0, 0, 0, 1]).buffer).getFloat64(0),
      value: Buffer.from([0xc1, 0xc1]),
      ops: [{ key: 'k', value: Buffer.from([0xc1]) }],
    }
    const bytes = encodeFrame(plain)
    expect(bytes.includes(0xc1)).toBe(true)
    const decoded = decodeFrame(bytes) as typeof plain
    expect(decoded.id).toBe(0xc1)
    expect(decoded.n).toBe(0xc1c1c1c1)
    expect(decoded.f).toBe(plain.f)
    expect(Buffer.from(decoded.value)).toEqual(Buffer.from([0xc1, 0xc1]))
    expect(Buffer.from(decoded.ops[0].value)).toEqual(Buffer.from([0xc1]))
  })
})
