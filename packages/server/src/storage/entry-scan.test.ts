import { Packr } from 'msgpackr'
import { describe, expect, it } from 'vitest'
import { fromDecoded, peekHlc, readForApply, scanEntry } from './entry-scan.js'
import { decodeEntry, type EntryOp, encodeEntry, type LogEntry, OP_DEL, OP_PUT } from './log-entry.js'

function rng(seed: number): () => number {
  let x = seed
  return () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    return x / 0x7fffffff
  }
}

/** Strings of every msgpack length class (fixstr, str8, str16, str32), some not ASCII. */
function text(random: () => number): string {
  const lengths = [0, 1, 31, 32, 255, 256, 65_535, 65_536]
  const length = lengths[Math.floor(random() * lengths.length)]
  const units = ['a', 'z0', 'é', '€', '😀', ' ']
  const unit = units[Math.floor(random() * units.length)]
  return unit.repeat(Math.ceil(length / Buffer.byteLength(unit)))
}

function randomEntry(random: () => number): LogEntry {
  const ops: EntryOp[] = []
  const count = [0, 1, 2, 15, 16][Math.floor(random() * 5)]
  for (let i = 0; i < count; i++) {
    const key = text(random) || 'k'
    const r = random()
    if (r < 0.2) ops.push([OP_DEL, key])
    else if (r < 0.6) ops.push([OP_PUT, key, text(random)])
    else ops.push([OP_PUT, key, Buffer.from(text(random))])
  }
  const seqs = [1, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1]
  const seq = seqs[Math.floor(random() * seqs.length)]
  return {
    seq,
    epoch: Math.floor(random() * 1000),
    origin: 'abcdef0123456789',
    originSeq: seq,
    hlc: Math.floor(Date.now() * 1024 + random() * 1024),
    ops,
  }
}

const hex = (b: Uint8Array | null) => (b === null ? null : Buffer.from(b).toString('hex'))

describe('entry scan (replica apply path)', () => {
  it('reads every entry tandem encodes exactly as the full decoder does', () => {
    const random = rng(7)
    for (let n = 0; n < 150; n++) {
      const entry = randomEntry(random)
      const raw = encodeEntry(entry)
      const scanned = scanEntry(raw)
      expect(scanned).not.toBeNull()
      const decoded = fromDecoded(decodeEntry(raw), raw)
      expect(scanned!.seq).toBe(decoded.seq)
      expect(scanned!.epoch).toBe(decoded.epoch)
      expect(scanned!.hlc).toBe(decoded.hlc)
      expect([scanned!.origin, scanned!.originSeq, scanned!.identityAt]).toEqual([
        decoded.origin,
        decoded.originSeq,
        decoded.identityAt,
      ])
      expect(scanned!.ops.map((o) => [o.del, hex(o.key), hex(o.value), o.binary])).toEqual(
        decoded.ops.map((o) => [o.del, hex(o.key), hex(o.value), o.binary]),
      )
    }
  })

  it('peeks the HLC of every entry tandem encodes as the full read gives it, and of a cut entry only when it holds it', () => {
    const random = rng(5)
    for (let n = 0; n < 150; n++) {
      const raw = encodeEntry(randomEntry(random))
      const hlc = readForApply(raw).hlc
      expect(peekHlc(raw)).toBe(hlc)
      // Cut anywhere: the HLC as encoded, or null; never another number.
      const cut = raw.subarray(0, Math.floor(random() * raw.length))
      expect([hlc, null]).toContain(peekHlc(cut))
    }
    // Options on an op: the ops are not looked at.
    const withContext = encodeEntry({
      seq: 5,
      epoch: 1,
      origin: 'o',
      originSeq: 5,
      hlc: 10,
      ops: [[OP_DEL, 'd', { c: { p: 1 } }]],
    })
    expect(peekHlc(withContext)).toBe(10)
    // Not an entry at all (a map), an origin that is not a string: null.
    expect(peekHlc(new Packr({ useRecords: false }).pack({ a: 1 }))).toBeNull()
    expect(peekHlc(new Packr({ useRecords: false }).pack([1, 0, 5, 1, 1, []]))).toBeNull()
  })

  it('reads each origin of entries that alternate between origins of one length, differing in any byte', () => {
    const origins = ['abcdef0123456789', 'abcdef012345678a', 'bbcdef0123456789', 'abcdeg0123456789', 'abc']
    const random = rng(3)
    for (let n = 0; n < 200; n++) {
      const origin = origins[Math.floor(random() * origins.length)]
      const raw = encodeEntry({ seq: n + 1, epoch: 1, origin, originSeq: n + 1, hlc: 5, ops: [[OP_PUT, 'k', 'v']] })
      expect(readForApply(raw).origin).toBe(origin)
    }
  })

  it('leaves other encodings of a valid entry to the full decoder', () => {
    // An op with options (a causal context), and numbers as int64 of another encoder.
    const withContext = encodeEntry({
      seq: 5,
      epoch: 1,
      origin: 'o',
      originSeq: 5,
      hlc: 10,
      ops: [
        [OP_PUT, 'k', 'v', { c: { o: 4, p: 2 } }],
        [OP_DEL, 'd', { c: { p: 1 } }],
      ],
    })
    expect(scanEntry(withContext)).toBeNull()
    const read = readForApply(withContext)
    expect(read.ops[0].key).toEqual(Buffer.from('k'))
    expect(read.ops.map((op) => op.ctx)).toEqual([{ o: 4, p: 2 }, { p: 1 }])
    expect(read.ops[1].del).toBe(true)
    const other = new Packr({ useRecords: false, variableMapSize: true }).pack([5, 1, 'o', 5, 10, [[0, 'k', 'v']]])
    expect(hex(readForApply(other).ops[0].value)).toBe(hex(Buffer.from('v')))
  })

  it('never misreads a cut or corrupted entry: it is refused or read as the decoder reads it', () => {
    const random = rng(11)
    for (let n = 0; n < 200; n++) {
      const raw = encodeEntry(randomEntry(random))
      const cut = raw.subarray(0, Math.floor(random() * raw.length))
      expect(scanEntry(cut)).toBeNull()
      const flipped = Buffer.from(raw)
      flipped[Math.floor(random() * flipped.length)] ^= 1 << Math.floor(random() * 8)
      let viaScan: unknown
      let viaDecoder: unknown
      try {
        viaScan = scanEntry(flipped)
      } catch (err) {
        viaScan = err
      }
      if (viaScan === null || viaScan instanceof Error) continue
      try {
        viaDecoder = fromDecoded(decodeEntry(flipped), flipped)
      } catch {
        continue // the decoder refuses what the scanner took: only the bytes were odd, not their reading
      }
      const a = viaScan as ReturnType<typeof fromDecoded>
      const b = viaDecoder as ReturnType<typeof fromDecoded>
      const reading = (e: typeof a) => [
        e.seq,
        e.epoch,
        e.hlc,
        e.ops.map((o) => [o.del, hex(o.key), hex(o.value), o.binary]),
      ]
      expect(reading(a)).toEqual(reading(b))
    }
  })

  it('leaves strings that are not valid UTF-8 to the decoder, so both read them alike', () => {
    const packr = new Packr({ useRecords: false })
    const raw = packr.pack([1, 0, 'o', 1, 1, [[0, 'kk', 'vv']]])
    const at = raw.indexOf(Buffer.from('kk'))
    raw[at] = 0xff // a byte that never starts a UTF-8 sequence
    expect(scanEntry(raw)).toBeNull()
    expect(hex(readForApply(raw).ops[0].key)).toBe(hex(Buffer.from('\ufffdk')))
  })

  it('refuses entries whose ops have the wrong types', () => {
    const packr = new Packr({ useRecords: false })
    for (const ops of [[[0, 5, 'v']], [[7, 'k', 'v']], [[0, 'k', 5]], ['x']]) {
      expect(() => readForApply(packr.pack([1, 0, 'o', 1, 1, ops]))).toThrow(/malformed/)
    }
  })
})
