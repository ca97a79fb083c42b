import { Packr, prng as random } from '@tandem/protocol'
import { describe, expect, it } from 'vitest'
import { readForApply } from './entry-scan.js'
import { onWriterFault, packedOrigin, putEntryBytes, writeEntry, writePutEntry, writerFaults } from './entry-writer.js'
import { decodeEntry, encodeEntry, type LogEntry } from './log-entry.js'
import { TextBytes } from './text-bytes.js'

// The log's own msgpackr options (log-entry.ts): the writer must give these bytes exactly.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, int64AsType: 'number' })

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
  1_800_000_000_000 * 65_536 + 7,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  Number.MAX_VALUE,
]

// Units of every UTF-8 width, a surrogate pair, and lone surrogates (written as U+FFFD).
const UNITS = [
  'a',
  'Z',
  '~',
  '\u00e9',
  '\u07ff',
  '\u0800',
  '\u20ac',
  '\uffff',
  '\ud83d\ude00',
  '\ud800',
  '\udc00',
  '\u0000',
]

/** Lengths in UTF-16 units around every header boundary and the short/long encoding switch. */
const LENGTHS = [0, 1, 10, 31, 32, 33, 63, 64, 65, 85, 86, 100, 255, 256, 257, 1000, 21_845, 21_846, 65_535, 65_536]

function stringOf(next: () => number, units: number, alphabet: string[]): string {
  let out = ''
  while (out.length < units) out += alphabet[Math.floor(next() * alphabet.length)]
  // A surrogate pair may have run one unit over: cut it, leaving a lone surrogate as a real input could.
  return out.slice(0, units)
}

function randomValue(next: () => number): unknown {
  const kind = Math.floor(next() * 6)
  const length = LENGTHS[Math.floor(next() * LENGTHS.length)]
  if (kind === 0) return stringOf(next, length, ['a', 'b', '0'])
  if (kind === 1) return stringOf(next, length, UNITS)
  if (kind === 2) return Buffer.from(stringOf(next, length, ['x', '\u00e9']), 'utf8')
  if (kind === 3) {
    const bytes = new Uint8Array(length + 7)
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(next() * 256)
    return bytes.subarray(3, 3 + length) // a view into a larger buffer: only its own bytes are written
  }
  if (kind === 4) return NUMBERS[Math.floor(next() * NUMBERS.length)]
  return new Uint8Array(0)
}

function opOf(next: () => number): unknown[] {
  const key = stringOf(next, Math.floor(next() * 40), next() < 0.8 ? ['k', 'e', 'y', ':', '1'] : UNITS)
  const kind = Math.floor(next() * 5)
  if (kind === 0) return [0, key, randomValue(next)]
  if (kind === 1) return [1, key]
  if (kind === 2) return [0, key, randomValue(next), { x: NUMBERS[Math.floor(next() * NUMBERS.length)] }]
  if (kind === 3) {
    const c: Record<string, number> = {}
    const origins = Math.floor(next() * 20)
    for (let i = 0; i < origins; i++) c[stringOf(next, 32, ['0', 'f', 'a', '9'])] = Math.floor(next() * 2 ** 40)
    return [1, key, { c }]
  }
  return [2, key]
}

function entryOf(next: () => number): unknown[] {
  const ops: unknown[] = []
  const count = [0, 1, 2, 15, 16, 17][Math.floor(next() * 6)]
  for (let i = 0; i < count; i++) ops.push(opOf(next))
  const pick = () => NUMBERS[Math.floor(next() * NUMBERS.length)]
  return [pick(), pick(), stringOf(next, [0, 32, 36][Math.floor(next() * 3)], ['0', 'a', 'f']), pick(), pick(), ops]
}

describe('entry writer: the bytes of msgpackr, written by hand', () => {
  it('writes every generated entry shape as the log Packr does, byte for byte', () => {
    const next = random(14)
    let checked = 0
    for (let i = 0; i < 1000; i++) {
      const fields = entryOf(next)
      const expected = Buffer.from(packr.pack(fields))
      const written = writeEntry(fields)
      // Every shape here is one the writer takes on (none left to msgpackr).
      expect(written, `entry ${i}`).not.toBeNull()
      if (!written?.equals(expected)) expect(written?.toString('hex'), `entry ${i}`).toBe(expected.toString('hex'))
      checked++
    }
    expect(checked).toBe(1000)
  })

  it('writes each string length and unit width with the header msgpackr picks', () => {
    for (const length of LENGTHS) {
      for (const unit of UNITS) {
        const value = unit.repeat(Math.ceil(length / unit.length)).slice(0, length)
        const fields = [1, 1, '', 1, 1, [[0, value, value]]]
        expect(writeEntry(fields)?.toString('hex'), `${length} x ${JSON.stringify(unit)}`).toBe(
          Buffer.from(packr.pack(fields)).toString('hex'),
        )
      }
    }
  })

  it('keeps every entry it handed out intact while it writes on into new slabs', () => {
    const next = random(7)
    const kept: [Buffer, string][] = []
    // Large values fill several slabs; earlier views must not be written over.
    for (let i = 0; i < 400; i++) {
      const fields = [i + 1, 1, 'o', i + 1, 5, [[0, `k${i}`, stringOf(next, 1000 + (i % 7) * 5000, UNITS)]]]
      kept.push([writeEntry(fields) as Buffer, Buffer.from(packr.pack(fields)).toString('hex')])
    }
    for (const [bytes, hex] of kept) expect(bytes.toString('hex')).toBe(hex)
  })

  /**
   * The entries the writer hands out are views of its slab, so where an
   * entry starts and how long the slab is can be read from them: the next
   * entry starts at the first multiple of 8 after the last one's end.
   * Writes padding entries (a bin value sized to fit) until the next entry
   * starts exactly `before` bytes ahead of the slab's end.
   */
  function moveToSlabEnd(before: number): void {
    const pad = (n: number) => [1, 1, 'p', 1, 1, [[0, 'k', new Uint8Array(n)]]]
    const base = packr.pack(pad(0)).length
    let last = writeEntry(pad(0)) as Buffer
    for (let i = 0; i < 100_000; i++) {
      const nextAt = (last.byteOffset + last.length + 7) & ~7
      const left = last.buffer.byteLength - nextAt - before
      if (left === 0) return
      // Too close to fill exactly: a padding entry too big for what is left starts a new slab.
      const n = left < base ? 200 : left - base <= 200 ? left - base : 100
      last = writeEntry(pad(n)) as Buffer
    }
    throw new Error(`could not reach ${before} bytes before a slab's end`)
  }

  it('writes an entry whose maps run past the end of a slab as msgpackr does', () => {
    const c: Record<string, number> = {}
    for (let i = 0; i < 8; i++) c[`${'0123456789abcdef'.repeat(2).slice(0, 31)}${i}`] = i * 1000
    const shapes = [
      [7, 1, 'origin', 7, 2 ** 40, [[1, 'key', { c }]]],
      [8, 1, 'origin', 8, 2 ** 40, [[0, 'key', 'value', { c, x: 1_800_000_000_000 }]]],
      [9, 1, 'origin', 9, 2 ** 40, [[0, 'key', 'value', { x: 1_800_000_000_000 }]]],
    ]
    let placed = 0
    for (const fields of shapes) {
      const expected = Buffer.from(packr.pack(fields)).toString('hex')
      // Every start from a few bytes before the end to past the entry's own length, so
      // that the slab runs out inside each of its maps' keys and values.
      for (let before = 8; before <= expected.length / 2 + 16; before += 8) {
        moveToSlabEnd(before)
        const written = writeEntry(fields) as Buffer
        expect(written.toString('hex'), `${before} bytes before the end`).toBe(expected)
        placed++
      }
    }
    expect(placed).toBeGreaterThan(50)
  })

  it('goes on writing after an entry that ends in the last bytes of an oversized slab', () => {
    // A value too large for a slab of the usual size gets a slab sized for it; entries
    // after it fill what it left, the last of them up to the very end of that slab.
    const big = writeEntry([1, 1, 'o', 1, 1, [[0, 'k', 'v'.repeat(30_001)]]]) as Buffer
    expect(big.buffer.byteLength).toBeGreaterThan(64 * 1024)
    // Ends with a float64 expiry, whose room is exactly what it writes.
    const ttl = (n: number) => [2, 1, 'o', 2, 1, [[0, 'k', new Uint8Array(n), { x: 1_800_000_000_000 }]]]
    const base = packr.pack(ttl(0)).length
    let last = big
    for (let i = 0; i < 10_000; i++) {
      const nextAt = (last.byteOffset + last.length + 7) & ~7
      const left = last.buffer.byteLength - nextAt
      const n = left - base <= 200 ? left - base : 100
      if (n < 0) break
      last = writeEntry(ttl(n)) as Buffer
      expect(last.buffer).toBe(big.buffer)
      if (n === left - base) break
    }
    // The last entry took the slab's last byte.
    expect(last.byteOffset + last.length).toBe(big.buffer.byteLength)
    for (let i = 0; i < 3; i++) {
      const fields = [3 + i, 1, 'o', 3 + i, 1, [[0, 'a', 'b']]]
      expect(writeEntry(fields)?.toString('hex')).toBe(Buffer.from(packr.pack(fields)).toString('hex'))
    }
  })

  it('writes a string given as its UTF-8 (TextBytes) as msgpackr writes the string', () => {
    let checked = 0
    for (const length of LENGTHS) {
      for (const unit of UNITS) {
        const value = unit.repeat(Math.ceil(length / unit.length)).slice(0, length)
        // Its UTF-8 (a lone surrogate as U+FFFD, as the writer and msgpackr write it), as a
        // view into a larger buffer.
        const around = Buffer.from(`<${value}>`, 'utf8')
        const text = new TextBytes(around.subarray(1, around.length - 1))
        const expected = Buffer.from(packr.pack([1, 1, '', 1, 1, [[0, value, value]]])).toString('hex')
        expect(
          writeEntry([1, 1, '', 1, 1, [[0, value, text]]])?.toString('hex'),
          `${length} x ${JSON.stringify(unit)}`,
        ).toBe(expected)
        checked++
      }
    }
    // Across a slab's end, with a TTL map after the value.
    const value = `${'\u00e9'.repeat(40)}${'v'.repeat(60)}`
    const fields = (v: unknown) => [9, 1, 'origin', 9, 2 ** 40, [[0, 'key', v, { x: 1_800_000_000_000 }]]]
    const expected = Buffer.from(packr.pack(fields(value))).toString('hex')
    for (let before = 8; before <= expected.length / 2 + 16; before += 8) {
      moveToSlabEnd(before)
      expect((writeEntry(fields(new TextBytes(Buffer.from(value)))) as Buffer).toString('hex')).toBe(expected)
      checked++
    }
    expect(checked).toBeGreaterThan(LENGTHS.length * UNITS.length)
  })

  it('encodeEntry logs a TextBytes value as its string when msgpackr writes the entry', () => {
    // An op option the writer leaves to msgpackr (null) sends the whole entry there.
    const ops = (v: unknown) => [
      [0, 'a', v],
      [0, 'b', v, { x: 5, y: null }],
    ]
    const value = 'h\u00e9llo \u{1f600}'
    const entry = { seq: 1, epoch: 1, origin: 'o', originSeq: 1, hlc: 2, ops: ops(new TextBytes(Buffer.from(value))) }
    expect(writeEntry([1, 1, 'o', 1, 2, entry.ops])).toBeNull()
    const raw = encodeEntry(entry as LogEntry)
    expect(raw.toString('hex')).toBe(Buffer.from(packr.pack([1, 1, 'o', 1, 2, ops(value)])).toString('hex'))
    expect(decodeEntry(raw).ops[1][2]).toBe(value)
  })

  it('leaves to msgpackr the values it does not write, and gives back nothing of them', () => {
    const unsupported: unknown[] = [
      null,
      undefined,
      true,
      false,
      new Map([['a', 1]]),
      10n,
      new Int16Array(2),
      Object.create(null),
      { hasOwnProperty: 1 },
      [[[[[[[1]]]]]]],
    ]
    for (const value of unsupported) {
      const before = writeEntry([1, 1, 'o', 1, 1, []]) as Buffer
      const copy = Buffer.from(before)
      expect(writeEntry([1, 1, 'o', 1, 1, [[0, 'k', value]]])).toBeNull()
      // The entry written before is untouched by the one given up on.
      expect(before).toEqual(copy)
    }
  })

  it('starts over on a fresh slab after a throw it did not mean, and msgpackr writes that entry', () => {
    // The fault: an op options map whose field throws the first time it is read. The
    // writer meets the throw inside its slab; msgpackr, reading the field again, does not.
    let reads = 0
    const options = {}
    Object.defineProperty(options, 'x', {
      enumerable: true,
      get() {
        if (reads++ === 0) throw new Error('injected fault')
        return 1_800_000_000_000
      },
    })
    const reported: unknown[] = []
    onWriterFault((err) => reported.push(err))
    try {
      const faultsBefore = writerFaults()
      const before = encodeEntry({ seq: 1, epoch: 1, origin: 'o', originSeq: 1, hlc: 1, ops: [[0, 'a', 'b']] })
      const kept = Buffer.from(before)

      const faulty: LogEntry = { seq: 2, epoch: 1, origin: 'o', originSeq: 2, hlc: 1, ops: [[0, 'k', 'v', options]] }
      const bytes = encodeEntry(faulty)
      const expected = packr.pack([2, 1, 'o', 2, 1, [[0, 'k', 'v', { x: 1_800_000_000_000 }]]])
      expect(bytes.toString('hex')).toBe(Buffer.from(expected).toString('hex'))
      expect(writerFaults()).toBe(faultsBefore + 1)
      expect(reported).toHaveLength(1)
      expect((reported[0] as Error).message).toBe('injected fault')

      // The next entries are written by hand again, from the start of a new slab; the one before is intact.
      const fields = [3, 1, 'o', 3, 1, [[0, 'c', 'd', { x: 7 }]]]
      const after = writeEntry(fields) as Buffer
      expect(after).not.toBeNull()
      expect(after.buffer).not.toBe(before.buffer)
      expect(after.byteOffset).toBe(0)
      expect(after.toString('hex')).toBe(Buffer.from(packr.pack(fields)).toString('hex'))
      expect(before).toEqual(kept)
      expect(writerFaults()).toBe(faultsBefore + 1)
    } finally {
      onWriterFault(() => {})
    }
  })

  it('is what encodeEntry writes, and the log reads it back (decoder and the raw scan)', () => {
    const entry: LogEntry = {
      seq: 70_000,
      epoch: 3,
      origin: '0123456789abcdef0123456789abcdef',
      originSeq: 12,
      hlc: 1_800_000_000_000 * 65_536 + 9,
      ops: [
        [0, 'user:\u00e9', 'x'.repeat(100)],
        [0, 'bin', Buffer.from([0xc1, 0, 0xff])],
        [0, 'ttl', 'v', { x: 1_800_000_000_123 }],
        [1, 'gone'],
      ],
    }
    const raw = encodeEntry(entry)
    expect(raw.toString('hex')).toBe(
      Buffer.from(packr.pack([entry.seq, entry.epoch, entry.origin, entry.originSeq, entry.hlc, entry.ops])).toString(
        'hex',
      ),
    )
    expect(decodeEntry(raw)).toEqual(entry)
    const applied = readForApply(Buffer.from(raw))
    expect(applied.seq).toBe(70_000)
    expect(applied.hlc).toBe(entry.hlc)
    expect(applied.ops.map((op) => [Buffer.from(op.key).toString('utf8'), op.del, op.binary, op.expiresAt])).toEqual([
      ['user:\u00e9', false, false, undefined],
      ['bin', false, true, undefined],
      ['ttl', false, false, 1_800_000_000_123],
      ['gone', true, false, undefined],
    ])
    expect(Buffer.from(applied.ops[1].value as Uint8Array)).toEqual(Buffer.from([0xc1, 0, 0xff]))
  })

  it('writes a plain put in place (writePutEntry) as msgpackr writes the entry, within its bound', () => {
    const next = random(21)
    const seqs = NUMBERS.filter((n) => Number.isInteger(n) && n >= 0)
    let checked = 0
    for (let i = 0; i < 2000; i++) {
      const pick = () => seqs[Math.floor(next() * seqs.length)]
      const key = stringOf(next, LENGTHS[Math.floor(next() * 12)], next() < 0.7 ? ['k', 'e', 'y', ':', '1'] : UNITS)
      const kind = Math.floor(next() * 3)
      const raw = randomValue(next)
      const text = typeof raw === 'string' ? raw : stringOf(next, LENGTHS[Math.floor(next() * LENGTHS.length)], UNITS)
      const bytes = raw instanceof Uint8Array ? raw : Buffer.from(text, 'latin1')
      const value = kind === 0 ? text : kind === 1 ? bytes : new TextBytes(Buffer.from(text, 'utf8'))
      const fields = [
        pick(),
        pick(),
        stringOf(next, [0, 32, 36][i % 3], ['0', 'a', 'f']),
        pick(),
        pick(),
        [[0, key, value]],
      ]
      const expected = Buffer.from(packr.pack([...fields.slice(0, 5), [[0, key, kind === 2 ? text : value]]]))
      // The key as a data key holds it: its UTF-8 after a prefix.
      const dataKey = Buffer.concat([Buffer.from('!data!'), Buffer.from(key, 'utf8')])
      const origin = packedOrigin(fields[2] as string)
      const most = putEntryBytes(origin, dataKey, 6, value)
      const out = Buffer.alloc(3 + most + 8, 0xee)
      const end = writePutEntry(
        out,
        3,
        ...(fields.slice(0, 2) as [number, number]),
        origin,
        fields[3] as number,
        fields[4] as number,
        dataKey,
        6,
        value,
      )
      expect(end - 3).toBeLessThanOrEqual(most)
      if (!out.subarray(3, end).equals(expected)) {
        expect(out.subarray(3, end).toString('hex'), `entry ${i}`).toBe(expected.toString('hex'))
      }
      // Nothing written past its end.
      expect(out.subarray(end).every((b) => b === 0xee)).toBe(true)
      checked++
    }
    expect(checked).toBe(2000)
  })
})
