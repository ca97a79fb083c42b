import { describe, expect, it } from 'vitest'
import { errorReply, MapReply, NULL_ARRAY, OK, type Reply, RespWriter, SimpleString } from './encoder.js'

function encode(replies: Reply[], resp3 = false): string {
  const writer = new RespWriter()
  for (const r of replies) writer.write(r, resp3)
  return writer.take().toString('latin1')
}

describe('RespWriter', () => {
  it('writes bulk headers of every digit count, and the bytes of string and binary bulks', () => {
    for (const size of [0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 12345, 100000]) {
      const text = 'x'.repeat(size)
      expect(encode([text])).toBe(`$${size}\r\n${text}\r\n`)
      expect(encode([Buffer.from(text)])).toBe(`$${size}\r\n${text}\r\n`)
    }
    // A string's header counts its UTF-8 bytes, not its characters.
    expect(Buffer.from(encode(['é€']), 'latin1')).toEqual(Buffer.from('$5\r\né€\r\n', 'utf8'))
    expect(encode([new Uint8Array([0, 255, 13, 10])])).toBe('$4\r\n\x00\xff\r\n\r\n')
  })

  it('writes strings of every UTF-8 width with the header of their byte size, across digit counts', () => {
    const units = ['x', '\u00e9', '\u20ac', '\u{1f600}', '\ud800']
    for (const unit of units) {
      for (const count of [1, 3, 4, 9, 10, 33, 34, 99, 100, 333, 334, 3333, 3334, 21845, 21846, 40000]) {
        const text = `${'x'.repeat(count % 7)}${unit.repeat(count)}`
        // Written after a reply, so a moved string lands right after its own header.
        const writer = new RespWriter()
        writer.write(1, false)
        writer.write(text, false)
        writer.write(text, false)
        const bytes = Buffer.from(text, 'utf8')
        const one = Buffer.concat([Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n')])
        expect(writer.take().equals(Buffer.concat([Buffer.from(':1\r\n'), one, one]))).toBe(true)
      }
    }
  })

  it('writes integers, negative and large ones included', () => {
    for (const n of [0, 7, 10, 42, 1000, -1, -2, -12345, 2 ** 53 - 1, -(2 ** 53 - 1)]) {
      expect(encode([n])).toBe(`:${n}\r\n`)
    }
  })

  it('writes OK, nulls, arrays and errors in RESP2 and RESP3', () => {
    expect(encode([OK, new SimpleString('OK'), null, NULL_ARRAY])).toBe('+OK\r\n+OK\r\n$-1\r\n*-1\r\n')
    expect(encode([null, NULL_ARRAY], true)).toBe('_\r\n_\r\n')
    const items: Reply[] = []
    for (let i = 0; i < 12; i++) items.push(i % 2 === 0 ? `v${i}` : null)
    expect(encode([items])).toBe(
      `*12\r\n${items.map((v) => (v === null ? '$-1\r\n' : `$${(v as string).length}\r\n${v}\r\n`)).join('')}`,
    )
    expect(encode([new MapReply([['a', 1]])], true)).toBe('%1\r\n$1\r\na\r\n:1\r\n')
    expect(encode([errorReply('ERR', 'bad\r\nthing')])).toBe('-ERR bad thing\r\n')
  })

  it('grows past its first buffer without losing what was written, and starts afresh after take', () => {
    const writer = new RespWriter()
    const big = 'y'.repeat(40 * 1024)
    writer.write('a', false)
    writer.write(big, false)
    writer.write(3, false)
    expect(writer.take().toString('latin1')).toBe(`$1\r\na\r\n$${big.length}\r\n${big}\r\n:3\r\n`)
    expect(writer.length).toBe(0)
    writer.write(OK, false)
    expect(writer.take().toString('latin1')).toBe('+OK\r\n')
  })
  it('hands out views that later replies never write over, across a change of buffer', () => {
    const writer = new RespWriter()
    const taken: [Buffer, string][] = []
    // Runs of a hundred OKs, value replies of 1 KiB and 40 KiB: several buffers' worth.
    for (let i = 0; i < 60; i++) {
      if (i % 3 === 0) writer.repeat(OK, 100, false)
      else writer.write(String(i % 10).repeat(i % 3 === 1 ? 1024 : 40 * 1024), false)
      const expected =
        i % 3 === 0
          ? '+OK\r\n'.repeat(100)
          : `$${i % 3 === 1 ? 1024 : 40 * 1024}\r\n${String(i % 10).repeat(i % 3 === 1 ? 1024 : 40 * 1024)}\r\n`
      taken.push([writer.take(), expected])
    }
    for (const [view, expected] of taken) expect(view.toString('latin1')).toBe(expected)
  })
})
