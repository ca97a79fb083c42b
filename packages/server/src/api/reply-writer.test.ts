import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeFrame, encodeFrame, prng as random } from '@tandem/protocol'
import { describe, expect, it } from 'vitest'
import { LwwResolver } from '../multimaster/lww.js'
import { OP_PUT } from '../storage/log-entry.js'
import { Store } from '../storage/store.js'
import { encodeIdentityReply, encodeReply } from './reply-writer.js'

const NUMBERS = [
  0,
  -0,
  1,
  0x1f,
  0x20,
  0x3f,
  0x40,
  0x7f,
  0x80,
  0xff,
  0x100,
  0xffff,
  0x10000,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 40 + 3,
  2 ** 53 - 1,
  -1,
  -0x20,
  -0x21,
  -0x80,
  -0x81,
  -0x8000,
  -0x8001,
  -(2 ** 31),
  -(2 ** 31) - 1,
  0.5,
  -2.25,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  Number.MAX_VALUE,
]

// Units of every UTF-8 width, a surrogate pair, and lone surrogates (written as U+FFFD).
const UNITS = ['a', '~', '\u00e9', '\u07ff', '\u0800', '\u20ac', '\uffff', '\ud83d\ude00', '\ud800', '\udc00', '\u0000']

/** Lengths in UTF-16 units around every header boundary and the short/long encoding switch. */
const LENGTHS = [0, 1, 10, 31, 32, 33, 63, 64, 65, 85, 86, 100, 255, 256, 257, 1000, 21_845, 21_846, 65_535, 65_536]

function stringOf(next: () => number, units: number, alphabet: readonly string[]): string {
  let out = ''
  while (out.length < units) out += alphabet[Math.floor(next() * alphabet.length)]
  // A surrogate pair may have run one unit over.
  return out.length > units ? out.slice(0, units) : out
}

function bytesOf(next: () => number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length)
  for (let i = 0; i < length; i++) out[i] = Math.floor(next() * 256)
  return out
}

/** A result of the kinds replies carry, nested up to `depth`, sometimes a kind the writer leaves to msgpackr. */
function resultOf(next: () => number, depth: number): unknown {
  const kind = Math.floor(next() * (depth > 0 ? 11 : 8))
  switch (kind) {
    case 0:
      return null
    case 1:
      return next() < 0.5
    case 2:
      return NUMBERS[Math.floor(next() * NUMBERS.length)]
    case 3:
    case 4:
      return stringOf(next, LENGTHS[Math.floor(next() * 12)], next() < 0.5 ? ['a', 'b'] : UNITS)
    case 5:
      return bytesOf(next, [0, 1, 100, 255, 256, 70_000][Math.floor(next() * 6)])
    case 6:
      return new Uint8Array(bytesOf(next, 40))
    case 7:
      // Left to msgpackr: undefined, a Map, a Date.
      return [undefined, new Map([['a', 1]]), new Date(0)][Math.floor(next() * 3)]
    case 8:
    case 9: {
      const object: Record<string, unknown> = {}
      const fields = Math.floor(next() * 6)
      for (let i = 0; i < fields; i++)
        object[stringOf(next, Math.floor(next() * 40), UNITS)] = resultOf(next, depth - 1)
      return object
    }
    default:
      return Array.from({ length: Math.floor(next() * 20) }, () => resultOf(next, depth - 1))
  }
}

function expectMsgpackrBytes(id: number, result: unknown): void {
  const expected = encodeFrame({ id, result })
  const written = encodeReply(id, result)
  expect(written.equals(expected), `id ${id}, result ${String(result).slice(0, 80)}`).toBe(true)
}

describe('encodeReply', () => {
  it('writes msgpackr’s bytes for every id and number around the format boundaries', () => {
    for (const id of NUMBERS) {
      expectMsgpackrBytes(id, null)
      for (const n of NUMBERS) expectMsgpackrBytes(id, n)
    }
  })

  it('writes msgpackr’s bytes for the results of get, put and del', () => {
    const value = 'v'.repeat(100)
    expectMsgpackrBytes(1, value)
    expectMsgpackrBytes(2, Buffer.from(value))
    expectMsgpackrBytes(3, null)
    expectMsgpackrBytes(4, { seq: 1_000_003 })
    expectMsgpackrBytes(5, { seq: 2 ** 40, origin: 'node-a', originSeq: 77, hlc: 1_800_000_000_000 * 65_536 + 7 })
    expectMsgpackrBytes(6, true)
    expectMsgpackrBytes(7, 'pong')
    expectMsgpackrBytes(8, [value, null, Buffer.from('x')])
    expectMsgpackrBytes(9, { entries: [['k', value]], more: false })
  })

  it('writes msgpackr’s bytes for strings of every unit width at every header boundary', () => {
    const next = random(7)
    for (const length of LENGTHS) {
      for (const unit of UNITS) expectMsgpackrBytes(length, unit.repeat(length).slice(0, length))
      for (let i = 0; i < 4; i++) expectMsgpackrBytes(i, stringOf(next, length, UNITS))
    }
  })

  it('writes msgpackr’s bytes for byte arrays, views into larger buffers among them', () => {
    const next = random(11)
    for (const length of [0, 1, 255, 256, 65_535, 65_536, 70_000]) {
      const bytes = bytesOf(next, length + 9)
      expectMsgpackrBytes(length, bytes.subarray(3, 3 + length))
      expectMsgpackrBytes(length, new Uint8Array(bytes.buffer, bytes.byteOffset + 5, length))
    }
  })

  it('writes msgpackr’s bytes for random nested results, replies kept intact as later ones are written', () => {
    const next = random(2024)
    const kept: { bytes: Buffer; expected: Buffer }[] = []
    for (let i = 0; i < 3000; i++) {
      const id = next() < 0.9 ? Math.floor(next() * 2 ** 32) : NUMBERS[Math.floor(next() * NUMBERS.length)]
      const result = resultOf(next, 3)
      const expected = encodeFrame({ id, result })
      const bytes = encodeReply(id, result)
      expect(bytes.equals(expected), `reply ${i}`).toBe(true)
      kept.push({ bytes, expected })
    }
    // Replies are views of a shared slab: none was overwritten by the ones after it.
    for (const { bytes, expected } of kept) expect(bytes.equals(expected)).toBe(true)
  })

  /** Writes padding replies until the next reply starts `before` bytes before its slab's end. */
  function moveToSlabEnd(before: number): void {
    const pad = (n: number) => encodeReply(1, new Uint8Array(n))
    const base = encodeFrame({ id: 1, result: new Uint8Array(0) }).length
    let last = pad(0)
    for (let i = 0; i < 100_000; i++) {
      const nextAt = (last.byteOffset + last.length + 7) & ~7
      const left = last.buffer.byteLength - nextAt - before
      if (left === 0) return
      // Too close to fill exactly: a padding reply too big for what is left starts a new slab.
      const n = left < base ? 200 : left - base <= 200 ? left - base : 100
      last = pad(n)
    }
    throw new Error(`could not reach ${before} bytes before a slab's end`)
  }

  it('writes msgpackr’s bytes for replies that start in the last bytes of a slab', () => {
    // The largest head a reply has: a float64 id before the result key.
    const id = 2 ** 40 + 3
    let placed = 0
    for (let before = 8; before <= 56; before += 8) {
      for (const result of [null, { seq: 2 ** 40 }, 'v'.repeat(20)]) {
        moveToSlabEnd(before)
        expectMsgpackrBytes(id, result)
        placed++
      }
    }
    expect(placed).toBe(21)
  })

  it('leaves undefined, Maps, Dates, objects with their own hasOwnProperty and deep nesting to msgpackr', () => {
    const deep = { a: { b: { c: { d: { e: 1 } } } } }
    const shapes: unknown[] = [
      undefined,
      new Map([['k', 'v']]),
      new Date(5),
      { seq: 1, origin: undefined },
      { hasOwnProperty: 1 },
      deep,
      [[[[['x']]]]],
    ]
    for (const shape of shapes) {
      expectMsgpackrBytes(9, shape)
      expect(decodeFrame(encodeReply(9, shape))).toEqual(decodeFrame(encodeFrame({ id: 9, result: shape })))
    }
  })

  it('goes on with msgpackr’s bytes after a result whose getter throws', () => {
    const throwing = {
      get seq(): number {
        throw new Error('injected fault')
      },
    }
    expect(() => encodeReply(1, throwing)).toThrow('injected fault')
    const before = encodeReply(2, 'x'.repeat(50))
    expect(() => encodeReply(3, [1, 2, throwing])).toThrow('injected fault')
    expectMsgpackrBytes(4, { seq: 9 })
    expect(before.equals(encodeFrame({ id: 2, result: 'x'.repeat(50) }))).toBe(true)
  })
})

describe('encodeIdentityReply', () => {
  it('writes msgpackr’s bytes for every number in every field and for origins of every length and width', () => {
    const origins = [
      'f67cef38ba94e6206d793cfeac95bf91',
      '4aaff30ad5b4bd62',
      '',
      'n\u00f6d-\ud83d\ude00',
      'o'.repeat(40),
    ]
    const kept: [Buffer, Buffer][] = []
    let id = 0
    for (const origin of origins) {
      for (const n of NUMBERS) {
        // Each field takes every number in turn, the others one each of their own.
        const fields: [number, number, number][] = [
          [n, 7, 2 ** 45],
          [1, n, 2 ** 40 + 3],
          [2 ** 32, 3, n],
        ]
        for (const [seq, originSeq, hlc] of fields) {
          id = (id + 1) % 70_000
          const written = encodeIdentityReply(id, seq, origin, originSeq, hlc)
          const expected = encodeFrame({ id, result: { seq, origin, originSeq, hlc } })
          expect(written.equals(expected), `${origin} ${seq} ${originSeq} ${hlc}`).toBe(true)
          kept.push([written, expected])
        }
      }
    }
    // Views of the shared slab: the first replies are intact after every later one was written.
    for (const [written, expected] of kept) expect(written.equals(expected)).toBe(true)
  })

  it('writes the bytes encodeReply writes for the results a store gives its multi-master writes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tandem-identity-reply-test-'))
    const store = await Store.open({ dataDir: dir, sync: 'none', logRetention: 1000, mode: 'multi', conflict: 'lww' })
    try {
      store.resolver = new LwwResolver()
      const results = await store.writeEachWithIdentity([
        [OP_PUT, 'a', 'one'],
        [OP_PUT, 'b', Buffer.from('two')],
        [OP_PUT, 'a', 'three'],
      ])
      expect(results).toHaveLength(3)
      for (const [i, result] of results.entries()) {
        if (result instanceof Error) throw result
        const written = encodeIdentityReply(i, result.seq, result.origin, result.originSeq, result.hlc)
        expect(written.equals(encodeReply(i, result))).toBe(true)
        expect(decodeFrame(written)).toEqual({ id: i, result })
      }
    } finally {
      await store.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
