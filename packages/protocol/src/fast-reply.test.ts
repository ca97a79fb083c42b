import { describe, expect, it } from 'vitest'
import { fastReplyMessages } from './fast-reply.js'
import { decodeFrame, encodeFrame, framedMessages } from './frames.js'
import { prng } from './prng.js'

const IDS = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 2 ** 31, 2 ** 32 - 1]
/** Numbers around every format boundary msgpackr writes (fixint, u8-u32, i8-i32, float64 past 32 bits). */
const NUMBERS = [
  ...[0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER],
  ...[-1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, 0.5, -2.25, 1e300],
]
/** A hybrid clock stamp of 2026-12-01 (wall ms times the counter's span, plus a counter): past 32 bits. */
const HLC = 1_795_996_800_000 * 1024 + 17

function ascii(next: () => number, length: number): string {
  let out = ''
  for (let i = 0; i < length; i++) out += String.fromCharCode(Math.floor(next() * 0x80))
  return out
}

const pick = <T>(next: () => number, from: readonly T[]): T => from[Math.floor(next() * from.length)]

/** Origins as a node names itself (32 hex characters), more of them than the reader keeps, differing in their last character alone. */
const ORIGINS = Array.from({ length: 7 }, (_, i) => `61f38697872e0212310f462f69dae42${i}`)

function identity(next: () => number): Record<string, unknown> {
  return { seq: pick(next, IDS), origin: pick(next, ORIGINS), originSeq: pick(next, IDS), hlc: HLC + pick(next, IDS) }
}

function scalar(next: () => number): unknown {
  switch (Math.floor(next() * 6)) {
    case 0:
      return null
    case 1:
      return next() < 0.5
    case 2:
      return pick(next, NUMBERS)
    case 3:
      return ascii(next, pick(next, [0, 1, 15, 16, 31, 32, 33, 64, 65, 255, 256, 70_000]))
    case 4: {
      const bytes = Buffer.allocUnsafe(pick(next, [0, 1, 100, 255, 256, 70_000]))
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(next() * 256)
      return bytes
    }
    default:
      return identity(next)
  }
}

/** A result as a node gives one: a write's (its seq, or its identity), a value, a value with its meta, mget's values, a status. */
function result(next: () => number): unknown {
  switch (Math.floor(next() * 7)) {
    case 0:
      return { seq: pick(next, IDS) }
    case 1:
      return identity(next)
    case 2:
      return { value: scalar(next), seq: pick(next, IDS), expiresAt: 1_795_996_800_000 }
    case 3:
      return Array.from({ length: pick(next, [0, 1, 16, 17]) }, () => scalar(next))
    case 4:
      return { role: 'peer', multi: { origin: pick(next, ORIGINS), peers: [{ address: '127.0.0.1:7001', lag: 3 }] } }
    default:
      return scalar(next)
  }
}

function message(next: () => number): Record<string, unknown> {
  const id = pick(next, IDS)
  const kind = next()
  if (kind < 0.8) return { id, result: result(next) }
  if (kind < 0.9) return { id, error: { code: 'CONFLICT', message: 'ifSeq 3 does not match', details: { seq: 4 } } }
  return { push: 'topology', master: '127.0.0.1:7001', epoch: pick(next, IDS) }
}

/** The same keys in the same order, the same values of the same types, binary as views of the frame. */
function expectSame(fast: unknown, slow: unknown, data: Buffer, path = '$'): void {
  if (Buffer.isBuffer(slow)) {
    expect(Buffer.isBuffer(fast), path).toBe(true)
    expect((fast as Buffer).equals(slow), path).toBe(true)
    expect((fast as Buffer).buffer, `${path} is a view of the frame`).toBe(data.buffer)
  } else if (Array.isArray(slow)) {
    expect(Array.isArray(fast), path).toBe(true)
    expect((fast as unknown[]).length, path).toBe(slow.length)
    for (const [i, v] of slow.entries()) expectSame((fast as unknown[])[i], v, data, `${path}[${i}]`)
  } else if (slow !== null && typeof slow === 'object') {
    expect(Object.getPrototypeOf(fast), path).toBe(Object.getPrototypeOf(slow))
    expect(Object.keys(fast as object), path).toEqual(Object.keys(slow))
    for (const [k, v] of Object.entries(slow)) expectSame((fast as Record<string, unknown>)[k], v, data, `${path}.${k}`)
  } else expect(fast, path).toBe(slow)
}

function expectAsMsgpackr(data: Buffer, what: string): unknown[] {
  const fast = fastReplyMessages(data)
  expect(fast, what).not.toBeNull()
  expectSame(fast, framedMessages(decodeFrame(data)), data)
  return fast as unknown[]
}

describe('fastReplyMessages', () => {
  it('reads a node’s replies and pushes, alone and coalesced, as msgpackr does', () => {
    const next = prng(11)
    for (let i = 0; i < 2000; i++) {
      const count = next() < 0.3 ? 0 : pick(next, [1, 2, 15, 16, 17, 40])
      const messages = Array.from({ length: Math.max(count, 1) }, () => message(next))
      expectAsMsgpackr(encodeFrame(count === 0 ? messages[0] : messages), `frame ${i}`)
    }
  })

  it('reads a multi-master write’s identity, its origins switching between frames, each as its own', () => {
    const frames = ORIGINS.flatMap((origin, i) =>
      [0, 1].map((j) => encodeFrame([{ id: 2 * i + j, result: { seq: i, origin, originSeq: j, hlc: HLC + i } }])),
    )
    // Every origin twice in turn, more origins than the reader keeps: a kept string given for the wrong bytes would show.
    const read = [...frames, ...frames.reverse()].map((data) => expectAsMsgpackr(data, 'identity'))
    for (const [i, messages] of read.entries()) {
      const { origin, hlc } = (messages[0] as { result: { origin: string; hlc: number } }).result
      expect(origin).toBe(ORIGINS[i < frames.length ? i >> 1 : ORIGINS.length - 1 - ((i - frames.length) >> 1)])
      expect(hlc).toBe(HLC + ORIGINS.indexOf(origin))
    }
    // Its stamp past 32 bits is written as a float64 and read as the same whole number (the SDK's next `after`).
    const data = encodeFrame({ id: 1, result: identity(prng(3)) })
    expect(data.includes(0xcb)).toBe(true)
    expect(Number.isSafeInteger((expectAsMsgpackr(data, 'stamp')[0] as { result: { hlc: number } }).result.hlc)).toBe(
      true,
    )
  })

  it('reads an identity’s keys in another order, or a map that begins as one and is not, key by key', () => {
    const maps = [
      { origin: ORIGINS[0], seq: 1, originSeq: 2, hlc: HLC },
      { seq: 1, origin: ORIGINS[0], originSeq: 2, other: HLC },
      { seq: 1, origin: ORIGINS[0], hlc: HLC, originSeq: 2 },
      { seq: 1, value: 'v' },
      { id: 1, error: { code: 'BUSY', message: 'full' } },
      { id: 1, value: 2 },
      { seq: 'one' },
      { '1': 'a', b: 2, '0': 'c' },
    ]
    for (const map of maps) expectAsMsgpackr(encodeFrame([{ id: 9, result: map }, map]), JSON.stringify(map))
  })

  it('reads 64-bit integers as numbers, as msgpackr does', () => {
    const words = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff]
    for (const head of [0xcf, 0xd3]) {
      for (const high of words) {
        for (const low of words) {
          // {id: 1, n: the 64-bit integer}
          const data = Buffer.alloc(16)
          data.set([0x82, 0xa2, 0x69, 0x64, 0x01, 0xa1, 0x6e, head])
          data.writeUInt32BE(high, 8)
          data.writeUInt32BE(low, 12)
          expectAsMsgpackr(data, `${head.toString(16)} ${high} ${low}`)
        }
      }
    }
  })

  it('leaves every other frame to msgpackr', () => {
    const others: unknown[] = [
      { id: 1, result: 'caf\u00e9' },
      { id: 1, result: { 'caf\u00e9': 1 } },
      { id: 1, result: new Map([[1, 'a']]) },
      'pong',
      7,
      null,
      { id: 1, result: [[[[[[[[1]]]]]]]] },
    ]
    for (const m of others) expect(fastReplyMessages(encodeFrame(m)), JSON.stringify(m)).toBeNull()
    const bytes = (...b: number[]) => Buffer.from(b)
    const refused = [
      bytes(),
      // A float32 (msgpackr rounds it), an ext, and the never-used byte.
      bytes(0x81, 0xa1, 0x78, 0xca, 0x3f, 0xc0, 0x00, 0x00),
      bytes(0x81, 0xa1, 0x78, 0xd4, 0x01, 0x00),
      bytes(0x81, 0xa1, 0x78, 0xc1),
      // A key that is not a fixstr: an integer, a str8, and __proto__ (msgpackr renames it).
      bytes(0x81, 0x01, 0x02),
      bytes(0x81, 0xd9, 0x01, 0x78, 0x02),
      Buffer.concat([bytes(0x81, 0xa9), Buffer.from('__proto__'), bytes(0x80)]),
      // A second value after the first, and an array that says it holds more than the frame does.
      bytes(0x81, 0xa1, 0x78, 0x01, 0x02),
      bytes(0xdc, 0xff, 0xff, 0x80),
    ]
    for (const data of refused) expect(fastReplyMessages(data), data.toString('hex')).toBeNull()
  })

  it('takes no frame msgpackr refuses, and reads every one it takes as msgpackr does (cut, grown and flipped frames)', () => {
    const next = prng(5)
    let taken = 0
    for (let i = 0; i < 20_000; i++) {
      const frame = encodeFrame(next() < 0.5 ? message(next) : [message(next), message(next)])
      let data: Buffer
      const how = Math.floor(next() * 4)
      if (how === 0) data = frame.subarray(0, Math.floor(next() * frame.length))
      else if (how === 1) data = Buffer.concat([frame, Buffer.from([Math.floor(next() * 256)])])
      else {
        data = Buffer.from(frame)
        const flips = how === 2 ? 1 : 3
        for (let f = 0; f < flips; f++) data[Math.floor(next() * data.length)] = Math.floor(next() * 256)
      }
      const fast = fastReplyMessages(data)
      if (fast === null) continue
      taken++
      expectSame(fast, framedMessages(decodeFrame(data)), data)
    }
    // Some mutated frames are still well formed (a flipped byte inside a value): the comparison above ran on those.
    expect(taken).toBeGreaterThan(1000)
  })
})

/**
 * Frames written byte by byte in every msgpack format, the long forms of
 * short values among them (a str8 of 3 bytes, a map16 of 2 keys, a uint16
 * of 5, a float64 that is whole or -0 or NaN), as another msgpack library
 * may write them; `plain` only in formats fastReplyMessages reads (then it
 * must take the frame), else any (then it may leave it to msgpackr).
 */
class FrameWriter {
  private readonly parts: number[] = []
  constructor(
    private readonly next: () => number,
    private readonly plain: boolean,
  ) {}

  frame(): Buffer {
    const count = this.int(5)
    if (this.next() < 0.4) this.map(1)
    else {
      this.header(count, 0x90, 0xdc, 0xdd)
      for (let i = 0; i < count; i++) this.map(2)
    }
    return Buffer.from(this.parts)
  }

  private int(below: number): number {
    return Math.floor(this.next() * below)
  }

  private bytes(...b: number[]): void {
    for (const x of b) this.parts.push(x & 0xff)
  }

  private u16(n: number): void {
    this.bytes(n >> 8, n)
  }

  private u32(n: number): void {
    this.bytes(n >>> 24, n >>> 16, n >>> 8, n)
  }

  /** A count as a fix form (when it fits), a 16-bit or a 32-bit one (the 32-bit forms only when not plain). */
  private header(count: number, fix: number, h16: number, h32: number): void {
    const form = this.int(this.plain ? 2 : 3)
    if (form === 0 && count < 16) this.bytes(fix | count)
    else if (form < 2) {
      this.bytes(h16)
      this.u16(count)
    } else {
      this.bytes(h32)
      this.u32(count)
    }
  }

  private map(depth: number): void {
    const count = this.int(6)
    this.header(count, 0x80, 0xde, 0xdf)
    for (let i = 0; i < count; i++) {
      this.key()
      this.value(depth + 1)
    }
  }

  private key(): void {
    const r = this.next()
    if (!this.plain && r < 0.05) return this.value(9) // an integer, a str8, a float...: not a fixstr
    if (!this.plain && r < 0.08) return this.fixstr(Buffer.from('__proto__'))
    const name =
      r < 0.6
        ? pick(this.next, ['id', 'result', 'error', 'seq', 'origin', 'originSeq', 'hlc', 'value', 'code', 'push'])
        : this.text(pick(this.next, [0, 1, 2, 15, 16, 17, 31]), !this.plain && this.next() < 0.2)
    this.fixstr(Buffer.from(name, 'utf8').subarray(0, 31))
  }

  private fixstr(bytes: Buffer): void {
    this.bytes(0xa0 | bytes.length, ...bytes)
  }

  /** Characters: ASCII, 0x00 and 0x7f among them; some of the recent-string lengths share all but one character. */
  private text(length: number, unicode: boolean): string {
    let out = ''
    const base = pick(this.next, ['61f38697872e0212310f462f69dae42', 'x'.repeat(64), ''])
    if (this.next() < 0.5 && length <= base.length + 1) {
      out = base.slice(0, Math.max(0, length - 1))
      while (out.length < length) out += pick(this.next, ['0', '1', '\u0000', '\u007f'])
      return out
    }
    for (let i = 0; i < length; i++) {
      out +=
        unicode && this.next() < 0.3
          ? pick(this.next, ['\u00e9', '\u20ac', '\ud83d\ude00', '\ufeff'])
          : String.fromCharCode(this.int(0x80))
    }
    return out
  }

  private value(depth: number): void {
    const plain = this.plain
    const kind = this.int(depth >= 8 ? 6 : 9)
    switch (kind) {
      case 0:
        return this.bytes(pick(this.next, [0xc0, 0xc2, 0xc3]))
      case 1:
        return this.integer()
      case 2: {
        // A float64: whole, -0, NaN, infinite, a fraction, past 2^53.
        const x = pick(this.next, [0, -0, Number.NaN, Infinity, -Infinity, 0.5, 2 ** 53 + 2, 1e300, -7, 2 ** 32])
        const b = Buffer.alloc(8)
        b.writeDoubleBE(x)
        return this.bytes(0xcb, ...b)
      }
      case 3: {
        const s = Buffer.from(
          this.text(pick(this.next, [0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, 256]), !plain && this.next() < 0.3),
          'utf8',
        )
        const form = this.int(4)
        if (form === 0 && s.length < 32) return this.fixstr(s)
        if (form <= 1 && s.length < 256) return this.bytes(0xd9, s.length, ...s)
        if (form <= 2 && s.length < 65536) {
          this.bytes(0xda)
          this.u16(s.length)
        } else {
          this.bytes(0xdb)
          this.u32(s.length)
        }
        return this.bytes(...s)
      }
      case 4: {
        const length = pick(this.next, [0, 1, 2, 255, 256])
        const form = this.int(3)
        if (form === 0 && length < 256) this.bytes(0xc4, length)
        else if (form <= 1) {
          this.bytes(0xc5)
          this.u16(length)
        } else {
          this.bytes(0xc6)
          this.u32(length)
        }
        for (let i = 0; i < length; i++) this.bytes(this.int(256))
        return
      }
      case 5:
        if (plain) return this.integer()
        // A float32, an ext, the never-used byte.
        return this.bytes(
          ...pick(this.next, [[0xca, 0x3f, 0xc0, 0, 0], [0xd4, 0x01, 0x00], [0xd5, 0x00, 1, 2], [0xc1]]),
        )
      case 6:
      case 7:
        return this.map(depth)
      default: {
        const count = this.int(5)
        this.header(count, 0x90, 0xdc, 0xdd)
        for (let i = 0; i < count; i++) this.value(depth + 1)
      }
    }
  }

  /** Every integer format, each with values around its bounds, the long forms of small ones among them. */
  private integer(): void {
    const head = pick(this.next, [0x00, 0xe0, 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3])
    const edge = () => pick(this.next, [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff])
    if (head === 0x00) return this.bytes(this.int(0x80))
    if (head === 0xe0) return this.bytes(0xe0 | this.int(32))
    const size = { 204: 1, 205: 2, 206: 4, 207: 8, 208: 1, 209: 2, 210: 4, 211: 8 }[head] as number
    this.bytes(head)
    if (size === 8) {
      this.u32(edge())
      this.u32(edge())
    } else {
      const v = edge()
      for (let i = size - 1; i >= 0; i--) this.bytes(Math.floor(v / 2 ** (8 * i)))
    }
  }
}

describe('fastReplyMessages against msgpackr, frames written byte by byte', () => {
  it('takes every frame of the formats it reads, and reads it as msgpackr does', () => {
    for (let seed = 1; seed <= 4000; seed++) {
      const next = prng(seed)
      const data = new FrameWriter(next, true).frame()
      expectAsMsgpackr(data, `seed ${seed}: ${data.toString('hex').slice(0, 200)}`)
    }
  })

  it('reads any frame it takes as msgpackr does, and takes none msgpackr refuses (any format, cut, grown, flipped)', () => {
    let taken = 0
    let left = 0
    for (let seed = 1; seed <= 12_000; seed++) {
      const next = prng(seed)
      const whole = new FrameWriter(next, next() < 0.5).frame()
      let data = whole
      const how = Math.floor(next() * 5)
      if (how === 1) data = whole.subarray(0, Math.floor(next() * whole.length))
      else if (how === 2) data = Buffer.concat([whole, Buffer.from([Math.floor(next() * 256)])])
      else if (how >= 3) {
        data = Buffer.from(whole)
        for (let f = 0; f < how - 2; f++) data[Math.floor(next() * data.length)] = Math.floor(next() * 256)
      }
      const fast = fastReplyMessages(data)
      if (fast === null) {
        left++
        continue
      }
      taken++
      let slow: unknown[]
      try {
        slow = framedMessages(decodeFrame(data))
      } catch (err) {
        throw new Error(`seed ${seed}: taken, but msgpackr refuses ${data.toString('hex').slice(0, 200)}: ${err}`)
      }
      expectSame(fast, slow, data, `seed ${seed}`)
    }
    // Both sides ran: frames it read (compared above) and frames it left to msgpackr.
    expect(taken).toBeGreaterThan(1500)
    expect(left).toBeGreaterThan(1500)
  })
})
