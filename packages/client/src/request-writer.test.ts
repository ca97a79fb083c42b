import { encodeFrame, prng } from '@tandem/protocol'
import { describe, expect, it } from 'vitest'
import { encodeRequestFrame } from './request-writer.js'

const frameOf = (messages: Record<string, unknown>[]) => messages.map((message) => ({ message }))
const msgpackr = (messages: Record<string, unknown>[]) => encodeFrame(messages.length === 1 ? messages[0] : messages)

const ASCII_LENGTHS = [0, 1, 31, 32, 63, 64, 255, 256, 65_535, 65_536]
/** Strings around every header boundary, in characters and in UTF-8 bytes: ASCII, 2-, 3- and 4-byte characters, and both sides of 64 characters (msgpackr's own encoder below, Buffer's above). */
const STRINGS = [
  ...ASCII_LENGTHS.map((n) => 'k'.repeat(n)),
  'caf\u00e9',
  '\u00e9'.repeat(16),
  '\u00e9'.repeat(31),
  '\u00e9'.repeat(63),
  '\u00e9'.repeat(64),
  '\u00e9'.repeat(128),
  '\u6f22'.repeat(11),
  '\u6f22'.repeat(86),
  '\ud83d\ude00'.repeat(8),
  '\ud83d\ude00'.repeat(40),
  `${'a'.repeat(30)}\u00e9`,
]
/** A surrogate without its other half: no key or value has one (the SDK refuses them), but a message could. */
const LONE = ['\ud800', 'a\udc00b', `${'x'.repeat(70)}\ud800`]
const NUMBERS = [
  ...[0, -0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1],
  ...[-1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, 0.5, -2.25, 1e300],
  ...[Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY],
  // A multi-master write's session stamp: a hybrid clock stamp, past 32 bits.
  1_795_996_800_000 * 1024 + 17,
]
const BINARY_LENGTHS = [0, 1, 255, 256, 65_535, 65_536]

function binary(length: number, plain: boolean): Uint8Array {
  const bytes = plain ? new Uint8Array(length) : Buffer.allocUnsafe(length)
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + length) & 0xff
  return bytes
}

/** Messages as the SDK's calls make them, each field's values around their format boundaries. */
function messages(): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = []
  for (const [i, key] of STRINGS.entries()) out.push({ op: 'get', key, id: i, consistency: 'linearizable', meta: true })
  for (const [i, value] of [...STRINGS, ...LONE].entries()) out.push({ op: 'put', key: 'k', value, id: i, epoch: 3 })
  for (const length of BINARY_LENGTHS) {
    for (const plain of [false, true]) out.push({ op: 'put', key: 'k', value: binary(length, plain), id: 1 })
  }
  for (const n of NUMBERS) {
    out.push({ op: 'put', key: 'k', value: 'v', id: n, after: n, ifSeq: n, ttlMs: n })
    out.push({ op: 'del', key: 'k', id: 7, w: n, timeoutMs: n, ifPresent: true, ifAbsent: false })
  }
  out.push({ op: 'put', key: 'k', value: 'v', id: 2, w: 'majority', context: LONE[1] })
  out.push({ op: 'ping', id: 3 }, { op: 'replicaof', upstream: null, id: 4 }, {})
  return out
}

describe('encodeRequestFrame', () => {
  it('writes each message alone, and frames of them, byte for byte as encodeFrame', () => {
    const all = messages()
    for (const m of all) expect(encodeRequestFrame(frameOf([m])).equals(msgpackr([m])), JSON.stringify(m)).toBe(true)
    // Frames of 2 to 17 (a fixarray and an array16), then all at once, and 70,000 (an array32).
    for (let n = 2; n <= 17; n++) {
      for (let i = 0; i + n <= all.length; i += n) {
        const batch = all.slice(i, i + n)
        expect(encodeRequestFrame(frameOf(batch)).equals(msgpackr(batch)), `${n} from ${i}`).toBe(true)
      }
    }
    expect(encodeRequestFrame(frameOf(all)).equals(msgpackr(all))).toBe(true)
    const many = Array.from({ length: 70_000 }, (_, id) => ({ op: 'get', key: 'k', id }))
    expect(encodeRequestFrame(frameOf(many)).equals(msgpackr(many))).toBe(true)
  })

  it('leaves a frame with a message that is not flat to encodeFrame, and writes the next frame right', () => {
    const flat = { op: 'put', key: 'k', value: 'v', id: 1 }
    const others: Record<string, unknown>[] = [
      { op: 'batch', ops: [{ type: 'del', key: 'k' }], id: 2 },
      { op: 'mget', keys: ['a', 'b'], id: 3 },
      { op: 'put', key: 'k', value: undefined, id: 4 },
      { op: 'put', key: 'k', value: 'v', id: 5, at: new Date(0) },
      Object.assign(Object.create(null), { op: 'get', key: 'k', id: 6 }),
    ]
    for (const other of others) {
      // The flat message first: what was written of the frame before the other one is dropped.
      expect(encodeRequestFrame(frameOf([flat, other])).equals(msgpackr([flat, other]))).toBe(true)
      expect(encodeRequestFrame(frameOf([other])).equals(msgpackr([other]))).toBe(true)
      expect(encodeRequestFrame(frameOf([flat, flat])).equals(msgpackr([flat, flat]))).toBe(true)
    }
  })

  it('never writes over a frame it gave, across slabs, frames larger than a slab among them', () => {
    const given: { frame: Buffer; copy: Buffer }[] = []
    for (let i = 0; i < 3000; i++) {
      const size = i % 500 === 0 ? 100_000 : (i * 37) % 700
      const batch = Array.from({ length: (i % 16) + 1 }, (_, j) => ({
        op: 'put',
        key: `key:${i}:${j}`,
        value: binary(size, false),
        id: i * 16 + j,
      }))
      const frame = encodeRequestFrame(frameOf(batch))
      expect(frame.equals(msgpackr(batch)), `frame ${i}`).toBe(true)
      given.push({ frame, copy: Buffer.from(frame) })
    }
    for (const [i, { frame, copy }] of given.entries()) expect(frame.equals(copy), `frame ${i}`).toBe(true)
  })
})

describe('encodeRequestFrame at the end of its slab', () => {
  /** Where the next frame starts in the slab, and the slab's size (a slab is a buffer of its own: see request-writer.ts). */
  function slabState(): { at: number; size: number } {
    const frame = encodeRequestFrame(frameOf([{}]))
    return { at: frame.byteOffset + frame.length, size: frame.buffer.byteLength }
  }

  // Strings whose UTF-8 bytes need a longer header than their characters: 31 and 255 characters of
  // 3 bytes (a str8, a str16), 65,535 (a str32), and of 2 bytes, and one just under each boundary.
  const GROWING = [
    '\u20ac'.repeat(31),
    '\u00e9'.repeat(31),
    `${'a'.repeat(30)}\u00e9`,
    '\u20ac'.repeat(255),
    '\u00e9'.repeat(255),
    '\u20ac'.repeat(65_535),
    '\u20ac'.repeat(10),
  ]

  it('writes a string whose header grows byte for byte as encodeFrame, whatever room the slab has left', () => {
    for (const value of GROWING) {
      // The string's bytes ending 0 to 8 bytes short of the slab's end, and past it.
      for (let slack = -2; slack <= 8; slack++) {
        const message = { k: value, n: 5 }
        const { at, size } = slabState()
        // A filler frame {v: bin16} of 8 + n bytes, then the message's 5 bytes before the string; the
        // string written from there with room for its characters' header and 3 bytes a character.
        const guess = value.length < 0x20 ? 1 : value.length < 0x100 ? 2 : value.length < 0x10000 ? 3 : 5
        let n = size - at - 8 - 5 - guess - value.length * 3 - slack
        // A slab too short for the filler: start on a new one (a frame larger than the slab's rest).
        if (n < 256) {
          encodeRequestFrame(frameOf([{ v: Buffer.alloc(size - at + 1) }]))
          const next = slabState()
          n = next.size - next.at - 8 - 5 - guess - value.length * 3 - slack
        }
        if (n < 256 || n > 0xffff) continue
        const filler = { v: Buffer.alloc(n, 7) }
        expect(encodeRequestFrame(frameOf([filler])).equals(msgpackr([filler]))).toBe(true)
        const got = encodeRequestFrame(frameOf([message]))
        expect(got.equals(msgpackr([message])), `${value.length} characters, slack ${slack}`).toBe(true)
      }
    }
  })
})

describe('encodeRequestFrame against encodeFrame, random messages', () => {
  const CHARS = ['a', '\u0000', '\u007f', '\u0080', '\u00e9', '\u07ff', '\u0800', '\u20ac', '\uffff', '\ud83d\ude00']
  const LONE_HALVES = ['\ud800', '\udbff', '\udc00', '\udfff']

  function text(next: () => number): string {
    const length = [0, 1, 10, 21, 31, 32, 63, 64, 65, 85, 86, 255, 256, 1000][Math.floor(next() * 14)]
    const mixed = next()
    let out = ''
    while (out.length < length) {
      const r = next()
      out += r < mixed ? 'k' : r < 0.97 ? CHARS[Math.floor(next() * CHARS.length)] : LONE_HALVES[Math.floor(next() * 4)]
    }
    return out
  }

  function value(next: () => number): unknown {
    const r = next()
    if (r < 0.35) return text(next)
    if (r < 0.6) {
      const edges = [0, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 2 ** 31, 2 ** 32, 2 ** 53]
      const n = edges[Math.floor(next() * edges.length)] + Math.floor(next() * 3) - 1
      const s = next()
      return s < 0.4
        ? n
        : s < 0.8
          ? -n
          : s < 0.9
            ? n + 0.5
            : [-0, Number.NaN, Infinity, -Infinity][Math.floor(next() * 4)]
    }
    if (r < 0.7) return [true, false, null][Math.floor(next() * 3)]
    const length = [0, 1, 100, 255, 256, 4000, 65_535, 65_536][Math.floor(next() * 8)]
    const bytes = next() < 0.5 ? Buffer.alloc(length, length & 0xff) : new Uint8Array(length).fill(7)
    // A view into a larger buffer, as a caller's slice is.
    return next() < 0.3 ? Buffer.concat([Buffer.from([1, 2]), bytes]).subarray(2) : bytes
  }

  it('writes every frame byte for byte as encodeFrame, wherever in its slab it falls', () => {
    for (let seed = 1; seed <= 60; seed++) {
      const next = prng(seed)
      for (let f = 0; f < 200; f++) {
        const batch = Array.from({ length: 1 + Math.floor(next() * 3) }, () => {
          const message: Record<string, unknown> = { op: 'put', id: f }
          const fields = Math.floor(next() * 4)
          for (let i = 0; i < fields; i++) message[next() < 0.5 ? text(next) : `f${i}`] = value(next)
          return message
        })
        const got = encodeRequestFrame(frameOf(batch))
        expect(got.equals(msgpackr(batch)), `seed ${seed}, frame ${f}`).toBe(true)
      }
    }
  })
})
