import { describe, expect, it } from 'vitest'
import { RespParser, RespProtocolError, splitInline } from './parser.js'

const LIMITS = { maxBulkBytes: 1024, maxCommandBytes: 4096, maxArgs: 16, maxInlineBytes: 256 }

function command(...args: string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`
}

/** Feeds `chunks` in order, pulling every command as soon as it is complete. */
function parseAll(chunks: Buffer[], limits = LIMITS): string[][] {
  const parser = new RespParser(limits)
  const out: string[][] = []
  for (const chunk of chunks) {
    parser.push(chunk)
    for (let c = parser.next(); c !== null; c = parser.next()) out.push(c.map((b) => b.toString()))
  }
  expect(parser.bufferedBytes).toBe(0)
  return out
}

describe('RespParser', () => {
  const stream = Buffer.from(
    command('SET', 'k', 'v'.repeat(300)) + 'PING\r\n\r\n' + command('GET', 'k') + '*0\r\n' + 'ECHO "a b" \'c\'\r\n',
  )
  const expected = [['SET', 'k', 'v'.repeat(300)], ['PING'], ['GET', 'k'], ['ECHO', 'a b', 'c']]

  it('parses multibulk and inline commands, skipping empty ones', () => {
    expect(parseAll([stream])).toEqual(expected)
  })

  it('gives the same commands however the stream is split (every split point, and byte by byte)', () => {
    for (let at = 1; at < stream.length; at++) {
      expect(parseAll([stream.subarray(0, at), stream.subarray(at)]), `split at ${at}`).toEqual(expected)
    }
    expect(parseAll([...stream].map((b) => Buffer.from([b])))).toEqual(expected)
  })

  it('names every GET, and every SET, in any case, by one shared buffer: no view of the input for the name', () => {
    const parser = new RespParser(LIMITS)
    parser.push(
      Buffer.from(command('GET', 'a') + command('get', 'b') + command('SET', 'c', '1') + command('sEt', 'd', '2')),
    )
    parser.push(Buffer.from(command('GET', 'e') + command('DEL', 'f')))
    const [get1, get2, set1, set2, get3, del] = Array.from({ length: 6 }, () => parser.next() as Buffer[])
    expect(get2[0]).toBe(get1[0])
    expect(get3[0]).toBe(get1[0])
    expect(set2[0]).toBe(set1[0])
    expect([get1[0].toString(), set1[0].toString(), del[0].toString()]).toEqual(['GET', 'SET', 'DEL'])
    expect([get2[1].toString(), set2[2].toString(), get3[1].toString(), del[1].toString()]).toEqual([
      'b',
      '2',
      'e',
      'f',
    ])
  })

  it('counts the bytes of a partial command, arguments already read included', () => {
    const parser = new RespParser(LIMITS)
    const partial = Buffer.from(`${command('SET', 'key', 'x'.repeat(500)).slice(0, 300)}`)
    parser.push(partial)
    expect(parser.next()).toBeNull()
    expect(parser.bufferedBytes).toBe(partial.length)
    expect(parser.peakBytes).toBe(partial.length)
  })

  it('refuses a declared length over a limit at its header, before any data', () => {
    const parser = new RespParser(LIMITS)
    parser.push(Buffer.from('*1\r\n$1025\r\n'))
    expect(() => parser.next()).toThrow(/^Protocol error: invalid bulk length: 1025 bytes, the limit is 1024$/)
    expect(parser.bufferedBytes).toBe(0)
    expect(() => parser.next()).toThrow(RespProtocolError) // final
  })

  it('refuses a command over its byte limit, too many arguments, bad headers and nesting', () => {
    const bad: [string, RegExp][] = [
      [
        command('SET', 'a', 'x'.repeat(1000), 'y'.repeat(1000), 'z'.repeat(1000), 'w'.repeat(1000), 'q'.repeat(1000)),
        /command of more/,
      ],
      [`*17\r\n`, /invalid multibulk length: 17 arguments/],
      ['*2\r\n*1\r\n', /expected '\$', got '\*'/],
      ['*1\r\n$3\r\nabcde', /not terminated by CRLF/],
      ['*1\r\n$-1\r\n', /invalid bulk length/],
      ['*x\r\n', /invalid multibulk length/],
      ['*1\rX', /expected CRLF/],
      [`*${'9'.repeat(70)}`, /too big mbulk count string/],
      [`${'a'.repeat(300)}`, /too big inline request/],
      ['GET "unclosed\r\n', /unbalanced quotes/],
    ]
    for (const [input, error] of bad) {
      const parser = new RespParser(LIMITS)
      parser.push(Buffer.from(input))
      expect(
        () => {
          while (parser.next() !== null) {}
        },
        input.slice(0, 40),
      ).toThrow(error)
    }
  })

  it('splits inline commands as redis-cli quotes them', () => {
    const split = (s: string) => splitInline(Buffer.from(s), 16).map((b) => b.toString('latin1'))
    expect(split("SET  k   \"a\\x41\\n\" 'it\\'s'")).toEqual(['SET', 'k', 'aA\n', "it's"])
    expect(() => split('SET "a"b')).toThrow(/unbalanced quotes/)
  })
})
