import { describe, expect, it } from 'vitest'
import { encodeFrame } from './frames.js'
import { hasLoneSurrogate, mayHoldInvalidUtf8, messagesWithInvalidUtf8 } from './unicode.js'

/** Encodes `value`, then overwrites the UTF-8 bytes of every `marker` string with bytes that are not UTF-8. */
function withInvalid(value: unknown, marker = 'MARK'): Buffer {
  const frame = Buffer.from(encodeFrame(value))
  const bytes = Buffer.from(marker)
  let at = frame.indexOf(bytes)
  while (at >= 0) {
    Buffer.from([0xed, 0xa0, 0x80, 0x41]).copy(frame, at) // a CESU-8 lone surrogate, then 'A'
    at = frame.indexOf(bytes, at + 1)
  }
  return frame
}

const numbers = [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32, -1, -33, -129, -32769, -(2 ** 31) - 1, 1.5]

describe('strings that are not UTF-8', () => {
  it('finds them wherever they are in a message, and only in the messages that hold them', () => {
    const frame = withInvalid([
      { id: 1, op: 'put', key: 'fine', value: 'fine', numbers, bin: Buffer.from([0xed, 0xa0, 0x80]) },
      { id: 2, op: 'put', key: 'MARK', value: 'v' },
      { id: 3, op: 'batch', ops: [{ type: 'put', key: 'k', value: `${'x'.repeat(40)}MARK` }], w: 1 },
      { id: 4, op: 'mget', keys: ['a', 'b'.repeat(300), 'c'.repeat(70_000)] },
      { id: 5, op: 'mget', keys: ['a', `${'b'.repeat(300)}MARK`] },
      { id: 6, op: 'scan', prefix: `${'p'.repeat(70_000)}MARK`, limit: 5 },
      { id: 7, MARK: 1 },
      { id: 8, op: 'ping', nested: { deeper: [[[null, true, false, 'ok']]] } },
    ])
    expect([...messagesWithInvalidUtf8(frame)].sort()).toEqual([1, 2, 4, 5, 6])
  })

  it('checks a frame holding one message', () => {
    expect([...messagesWithInvalidUtf8(withInvalid({ id: 1, op: 'get', key: 'MARK' }))]).toEqual([0])
    expect([...messagesWithInvalidUtf8(withInvalid({ id: 1, op: 'get', key: 'MARKER' }, 'nothing'))]).toEqual([])
  })

  it('finds them in frames of 16 and 65,536 messages (array16, array32)', () => {
    for (const count of [16, 65_536]) {
      const messages = Array.from({ length: count }, (_, i) => ({
        id: i,
        op: 'get',
        key: i === count - 1 ? 'MARK' : 'k',
      }))
      expect([...messagesWithInvalidUtf8(withInvalid(messages))]).toEqual([count - 1])
    }
  })

  it('a decoded message holds U+FFFD when its bytes were not UTF-8, so only those need checking', () => {
    expect(mayHoldInvalidUtf8({ id: 1, key: 'a\uFFFDb' })).toBe(true)
    expect(mayHoldInvalidUtf8({ id: 1, ops: [{ key: 'k', value: '\uFFFD' }] })).toBe(true)
    expect(mayHoldInvalidUtf8({ id: 1, op: 'mget', keys: ['a', '\uFFFD'] })).toBe(true)
    expect(mayHoldInvalidUtf8({ id: 1, op: 'scan', lte: '\uFFFD' })).toBe(true)
    expect(mayHoldInvalidUtf8({ id: 1, key: 'plain', value: Buffer.from([0xef, 0xbf, 0xbd]) })).toBe(false)
  })

  it('tells lone surrogates from pairs', () => {
    expect(hasLoneSurrogate('sur\uD800')).toBe(true)
    expect(hasLoneSurrogate('\uDC00x')).toBe(true)
    expect(hasLoneSurrogate('pair \uD83D\uDE00')).toBe(false)
    expect(hasLoneSurrogate('sur\uFFFD')).toBe(false)
  })
})
