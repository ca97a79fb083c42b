import { describe, expect, it } from 'vitest'
import { fastFrameMessages } from './fast-frame.js'
import { decodeFrame, encodeFrame, framedMessages } from './frames.js'
import { prng } from './prng.js'

const IDS = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 2 ** 31, 2 ** 32 - 1]
const LENGTHS = [0, 1, 31, 32, 100, 255, 256, 65_535, 65_536]

function ascii(next: () => number, length: number): string {
  let out = ''
  for (let i = 0; i < length; i++) out += String.fromCharCode(Math.floor(next() * 0x80))
  return out
}

/** A get, put or del as the SDK sends one, with the optional fields it may carry. */
function request(next: () => number): Record<string, unknown> {
  const id = IDS[Math.floor(next() * IDS.length)]
  const key = ascii(next, [1, 10, 31, 32, 200][Math.floor(next() * 5)])
  const kind = Math.floor(next() * 3)
  if (kind === 0) {
    const get: Record<string, unknown> = { op: 'get', key, id }
    if (next() < 0.3) get.consistency = 'local'
    return get
  }
  const write: Record<string, unknown> =
    kind === 1 ? { op: 'put', key, value: randomValue(next), id } : { op: 'del', key, id }
  if (next() < 0.2) write.w = Math.floor(next() * 3)
  if (next() < 0.2) write.timeoutMs = 1000 + Math.floor(next() * 100_000)
  // A session stamp as the SDK sends it (a hybrid clock stamp, past 32 bits), or a small one.
  if (next() < 0.2) write.after = next() < 0.5 ? Math.floor(next() * 2 ** 53) : Math.floor(next() * 2 ** 32)
  if (next() < 0.1) write.context = ascii(next, 40)
  return write
}

function randomValue(next: () => number): string | Buffer {
  const length = LENGTHS[Math.floor(next() * LENGTHS.length)]
  if (next() < 0.5) return ascii(next, length)
  const bytes = Buffer.allocUnsafe(length)
  for (let i = 0; i < length; i++) bytes[i] = Math.floor(next() * 256)
  return bytes
}

/** The same fields in the same order, the same values of the same types. */
function expectSameMessages(fast: unknown[], data: Buffer): void {
  const slow = framedMessages(decodeFrame(data))
  expect(fast.length).toBe(slow.length)
  for (let i = 0; i < fast.length; i++) {
    const a = fast[i] as Record<string, unknown>
    const b = slow[i] as Record<string, unknown>
    expect(Object.getPrototypeOf(a)).toBe(Object.getPrototypeOf(b))
    expect(Object.keys(a)).toEqual(Object.keys(b))
    for (const field of Object.keys(b)) {
      const x = a[field]
      const y = b[field]
      if (Buffer.isBuffer(y)) {
        expect(Buffer.isBuffer(x)).toBe(true)
        expect((x as Buffer).equals(y)).toBe(true)
      } else expect(x).toBe(y)
    }
  }
}

describe('fastFrameMessages', () => {
  it('reads the SDK’s get, put and del frames, alone and pipelined, as msgpackr does', () => {
    const next = prng(99)
    for (let i = 0; i < 1000; i++) {
      const count = next() < 0.5 ? 0 : [1, 2, 15, 16, 40][Math.floor(next() * 5)]
      const messages = Array.from({ length: Math.max(count, 1) }, () => request(next))
      const data = encodeFrame(count === 0 ? messages[0] : messages)
      const fast = fastFrameMessages(data)
      expect(fast, `frame ${i}`).not.toBeNull()
      expectSameMessages(fast as unknown[], data)
    }
  })

  it('gives binary values as views of the frame, as msgpackr does', () => {
    const data = encodeFrame({ id: 1, op: 'put', key: 'k', value: Buffer.from('abc') })
    const value = (fastFrameMessages(data) as { value: Buffer }[])[0].value
    expect(value.buffer).toBe(data.buffer)
    expect(value.toString()).toBe('abc')
  })

  it('reads a multi-master write’s session stamp, a float64 past 32 bits, as msgpackr does', () => {
    // The last but one: a hybrid clock stamp of 2025-12-01 (wall ms times HLC_COUNTER_SPAN, plus its counter).
    const stamps = [2 ** 32, 2 ** 40 + 3, 1_764_551_000_000 * 1024 + 17, Number.MAX_SAFE_INTEGER]
    for (const after of stamps) {
      const data = encodeFrame([
        { id: 7, op: 'put', key: 'k', value: 'v', after },
        { id: 8, op: 'del', key: 'k', after },
      ])
      expect(data.includes(0xcb), `${after} is written as a float64`).toBe(true)
      const fast = fastFrameMessages(data)
      expect(fast, String(after)).not.toBeNull()
      expectSameMessages(fast as unknown[], data)
      expect((fast as { after: number }[])[0].after).toBe(after)
    }
  })

  it('leaves every other frame to msgpackr', () => {
    const others: unknown[] = [
      { id: 1, op: 'get', key: 'caf\u00e9' },
      { id: 1, op: 'get', key: 'k', meta: true },
      { id: -1, op: 'get', key: 'k' },
      { id: 0.5, op: 'get', key: 'k' },
      { id: 2 ** 40, op: 'get', key: 'k' },
      { id: 1, op: 'scan', prefix: 'a' },
      { id: 1, op: 'batch', ops: [] },
      { id: 1, op: 'put', key: 'k', value: 'v', ttlMs: 5 },
      // A stamp that is not a whole number from 0 to 2^53 - 1, or a float64 in a field other than `after`.
      { id: 1, op: 'put', key: 'k', value: 'v', after: 1.5 },
      { id: 1, op: 'put', key: 'k', value: 'v', after: -(2 ** 40) },
      { id: 1, op: 'put', key: 'k', value: 'v', after: 2 ** 53 },
      { id: 1, op: 'put', key: 'k', value: 'v', epoch: 2 ** 40 },
      { id: 1, op: 'get', key: null },
      { id: 1, op: 'auth', token: 't' },
      'get',
      7,
      [{ id: 1, op: 'get', key: 'k' }, 'x'],
    ]
    for (const message of others) expect(fastFrameMessages(encodeFrame(message)), String(message)).toBeNull()
    // A repeated field, and a string holding the never-used byte: bytes msgpackr's encoder never writes.
    const repeated = Buffer.from([0x82, 0xa2, 0x69, 0x64, 0x01, 0xa2, 0x69, 0x64, 0x02])
    expect(fastFrameMessages(repeated)).toBeNull()
    expect(fastFrameMessages(Buffer.from([0x81, 0xa2, 0x69, 0x64, 0xc1]))).toBeNull()
    expect(fastFrameMessages(Buffer.alloc(0))).toBeNull()
  })

  it('takes no frame msgpackr refuses, and reads every one it takes as msgpackr does (cut, grown and flipped frames)', () => {
    const next = prng(7)
    let taken = 0
    for (let i = 0; i < 20_000; i++) {
      const frame = encodeFrame(next() < 0.7 ? request(next) : [request(next), request(next)])
      let data: Buffer
      const how = Math.floor(next() * 4)
      if (how === 0) data = frame.subarray(0, Math.floor(next() * frame.length))
      else if (how === 1) data = Buffer.concat([frame, Buffer.from([Math.floor(next() * 256)])])
      else {
        data = Buffer.from(frame)
        const flips = how === 2 ? 1 : 3
        for (let f = 0; f < flips; f++) data[Math.floor(next() * data.length)] = Math.floor(next() * 256)
      }
      const fast = fastFrameMessages(data)
      if (fast === null) continue
      taken++
      expectSameMessages(fast, data)
    }
    // Some mutated frames are still well formed (a flipped byte inside a value): the comparison above ran on those.
    expect(taken).toBeGreaterThan(1000)
  })
})
