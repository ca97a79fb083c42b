import { describe, expect, it } from 'vitest'
import {
  decodeRecord,
  decodeRecordBytes,
  encodeRecord,
  isLiveRecord,
  isSealed,
  isTombstone,
  isTombstoneRecord,
  type KeyRecord,
  PUT_RECORD_SPAN,
  readRecord,
  recordExpiresAt,
  recordHlc,
  recordIntact,
  recordModSeq,
  recordVersion,
  replicatedSpan,
  sealRecord,
  seqRecord,
  siblingCountOf,
  utf8LwwRecord,
  versionPutRecord,
  versionRecord,
  writeRecord,
} from './record.js'
import { TextBytes } from './text-bytes.js'

const key = Buffer.from('user:42', 'utf8')

describe('record checksums', () => {
  it('a put record is sealed and reads back its value, mod seq and expiry', () => {
    for (const value of ['hello', 'h\u00e9llo \u2713 \u{1f600}', Buffer.from([0, 1, 2, 255]), '']) {
      for (const expiresAt of [undefined, 1_700_000_000_123]) {
        const record = seqRecord(key, 0, value, 2 ** 40 + 7, expiresAt)
        expect(isSealed(record)).toBe(true)
        expect(recordIntact(key, 0, record, true)).toBe(true)
        expect(decodeRecord(record)).toEqual(value)
        const parsed = readRecord(record)
        expect(parsed.modSeq).toBe(2 ** 40 + 7)
        expect(parsed.expiresAt).toBe(expiresAt)
        expect(recordExpiresAt(record)).toBe(expiresAt)
        expect(recordModSeq(record)).toBe(2 ** 40 + 7)
        expect(isLiveRecord(record)).toBe(true)
        // The same bytes as sealing the generic encoding of the same contents.
        const generic = writeRecord({ modSeq: 2 ** 40 + 7, expiresAt, body: { kind: 'value', value } })
        expect(isSealed(generic)).toBe(false)
        expect(sealRecord(key, 0, generic).equals(record)).toBe(true)
      }
    }
  })

  it('a string given as its UTF-8 (TextBytes) makes the same record as the string', () => {
    for (const value of ['hello', 'h\u00e9llo \u2713 \u{1f600}', '', 'x'.repeat(70_000)]) {
      // A view into a larger buffer, as a RESP argument is: only its own bytes are the value.
      const around = Buffer.from(`<<${value}>>`, 'utf8')
      const bytes = around.subarray(2, around.length - 2)
      for (const expiresAt of [undefined, 1_700_000_000_123]) {
        const record = seqRecord(key, 0, new TextBytes(bytes), 9, expiresAt)
        expect(record.equals(seqRecord(key, 0, value, 9, expiresAt))).toBe(true)
        expect(decodeRecord(record)).toBe(value)
      }
    }
  })

  it('the key is read from keyStart on (a data key with its sublevel prefix)', () => {
    const prefixed = Buffer.concat([Buffer.from('!data!'), key])
    const record = seqRecord(prefixed, 6, 'v', 3)
    expect(record.equals(seqRecord(key, 0, 'v', 3))).toBe(true)
    expect(recordIntact(prefixed, 6, record, true)).toBe(true)
  })

  // Rule: one flipped bit anywhere in a sealed record is found, in a data dir that holds only sealed records.
  it('every single-bit flip of a sealed record fails the check', () => {
    const records = [
      seqRecord(key, 0, 'some value', 12, 1_700_000_000_000),
      sealRecord(key, 0, encodeRecord(Buffer.from([9, 8, 7]))),
      sealRecord(
        key,
        0,
        writeRecord({ version: { hlc: 123456, counter: 3, origin: 'node-a' }, body: { kind: 'value', value: 'x' } }),
      ),
      sealRecord(
        key,
        0,
        writeRecord({
          body: {
            kind: 'siblings',
            siblings: [
              { origin: 'a', counter: 1, hlc: 5, value: 'one' },
              { origin: 'b', counter: 2, hlc: 6, value: Buffer.from('two') },
            ],
            context: { a: 1, b: 2 },
          },
        }),
      ),
    ]
    for (const record of records) {
      expect(recordIntact(key, 0, record, true)).toBe(true)
      for (let i = 0; i < record.length; i++) {
        for (let bit = 0; bit < 8; bit++) {
          const damaged = Buffer.from(record)
          damaged[i] ^= 1 << bit
          if (recordIntact(key, 0, damaged, true)) throw new Error(`a flip of bit ${bit} of byte ${i} passed`)
        }
      }
    }
  })

  it('the fields read in place (mod seq, expiry, liveness) are found past the checksum', () => {
    const version = { hlc: 77, counter: 2, origin: 'peer-b' }
    const cases: KeyRecord[] = [
      { modSeq: 9, expiresAt: 123, body: { kind: 'value', value: 'v' } },
      { version, body: { kind: 'tombstone' } },
      { modSeq: 4, version, body: { kind: 'siblings', siblings: [], context: { a: 1 } } },
      {
        expiresAt: 5,
        version,
        body: { kind: 'siblings', siblings: [{ origin: 'a', counter: 1, hlc: 1, value: 'x' }], context: {} },
      },
    ]
    for (const c of cases) {
      const plain = writeRecord(c)
      const sealed = sealRecord(key, 0, plain)
      expect(recordModSeq(sealed)).toBe(recordModSeq(plain))
      expect(recordExpiresAt(sealed)).toBe(recordExpiresAt(plain))
      expect(isLiveRecord(sealed)).toBe(isLiveRecord(plain))
    }
    expect(isLiveRecord(sealRecord(key, 0, writeRecord(cases[1])))).toBe(false)
    expect(isLiveRecord(sealRecord(key, 0, writeRecord(cases[3])))).toBe(true)
  })

  it('a record read under another key fails the check', () => {
    const record = seqRecord(key, 0, 'v', 1)
    expect(recordIntact(Buffer.from('user:43'), 0, record)).toBe(false)
    expect(recordIntact(Buffer.from('user:4'), 0, record)).toBe(false)
  })

  it('sealing keeps what a record of an older build holds, and changes nothing for readers', () => {
    const olds = [
      encodeRecord('plain string'),
      encodeRecord(Buffer.from([1, 2, 3])),
      writeRecord({ modSeq: 5, body: { kind: 'value', value: 'cas' } }),
      writeRecord({ version: { hlc: 1, counter: 1, origin: 'o' }, body: { kind: 'tombstone' } }),
    ]
    for (const old of olds) {
      const sealed = sealRecord(key, 0, old)
      expect(sealed.length).toBeLessThanOrEqual(old.length + 6)
      expect(readRecord(sealed)).toEqual(readRecord(old))
      expect(decodeRecord(sealed)).toEqual(decodeRecord(old))
      // Sealing twice gives the same bytes: a record's bytes are a function of its key and contents.
      expect(sealRecord(key, 0, sealed).equals(sealed)).toBe(true)
    }
  })

  // Data-dir compatibility: records of a build that did not seal them still read, unchecked.
  it('a record without a checksum passes unless the data dir holds only sealed records', () => {
    const old = writeRecord({ modSeq: 5, body: { kind: 'value', value: 'before checksums' } })
    expect(recordIntact(key, 0, old)).toBe(true)
    expect(recordIntact(key, 0, encodeRecord('plain'))).toBe(true)
    expect(recordIntact(key, 0, old, true)).toBe(false)
    expect(decodeRecord(old)).toBe('before checksums')
  })

  it('a flag this build does not know is still refused', () => {
    const record = seqRecord(key, 0, 'v', 1)
    record[1] |= 0x10
    expect(() => readRecord(record)).toThrow(/newer tandem/)
  })
})

describe('records read from their header (the multi-master write path)', () => {
  const origin = 'f3a9c1d2e4b5a6978877665544332211'
  const version = { hlc: 1_732_000_000_000 * 1024 + 17, counter: 2 ** 40 + 3, origin }
  const values = ['', 'hello', 'ünïcødé ✓ 𝄞', Buffer.from([0, 255, 1, 0xc3])]
  const shapes: KeyRecord[] = [
    ...values.flatMap((value): KeyRecord[] => [
      { body: { kind: 'value', value } },
      { version, body: { kind: 'value', value } },
      { modSeq: 2 ** 33 + 5, expiresAt: 1_800_000_000_000, version, body: { kind: 'value', value } },
    ]),
    { version, body: { kind: 'tombstone' } },
    { modSeq: 4, body: { kind: 'tombstone' } },
    {
      version,
      body: {
        kind: 'siblings',
        siblings: [
          { origin, counter: 4, hlc: 99, value: 'a' },
          { origin: 'aa', counter: 2, hlc: 98, value: Buffer.from([7]) },
        ],
        context: { [origin]: 4, aa: 2 },
      },
    },
    { body: { kind: 'siblings', siblings: [], context: { aa: 2 } } },
  ]

  it('tombstone, sibling count and version agree with readRecord, sealed or not', () => {
    for (const shape of shapes) {
      const plain = writeRecord(shape)
      for (const record of [plain, sealRecord(key, 0, plain)]) {
        const parsed = readRecord(record)
        expect(isTombstoneRecord(record)).toBe(isTombstone(parsed))
        expect(siblingCountOf(record)).toBe(parsed.body.kind === 'siblings' ? parsed.body.siblings.length : 0)
        expect(recordVersion(record)).toEqual(parsed.version)
        expect(recordHlc(record)).toBe(parsed.version?.hlc ?? -1)
      }
    }
    // Records with no version: a single master's (modification seq, expiry) and the plain ones.
    for (const record of [seqRecord(key, 0, 'v', 3), seqRecord(key, 0, 'v', 3, 1e12), encodeRecord('v')]) {
      expect(recordVersion(record)).toBeUndefined()
      expect(recordHlc(record)).toBe(-1)
    }
  })

  it('decodeRecord and decodeRecordBytes give what readRecord holds, for every shape, sealed or not', () => {
    const expected = (parsed: KeyRecord) => {
      const body = parsed.body
      if (body.kind === 'value') return body.value
      if (body.kind === 'tombstone' || body.siblings.length === 0) return undefined
      return body.siblings.length === 1 ? body.siblings[0].value : 'siblings'
    }
    const asBytes = (value: unknown) => (typeof value === 'string' ? Buffer.from(value, 'utf8') : value)
    const local = values.flatMap((value) =>
      [undefined, 1_800_000_000_000].map(
        (at) => ({ modSeq: 2 ** 40 + 9, expiresAt: at, body: { kind: 'value', value } }) as KeyRecord,
      ),
    )
    for (const shape of [...shapes, ...local]) {
      const plain = writeRecord(shape)
      for (const record of [plain, sealRecord(key, 0, plain)]) {
        const want = expected(readRecord(record))
        if (want === 'siblings') {
          expect(() => decodeRecord(record)).toThrow(/concurrent values/)
          expect(() => decodeRecordBytes(record)).toThrow(/concurrent values/)
          continue
        }
        expect(decodeRecord(record)).toEqual(want)
        const bytes = decodeRecordBytes(record)
        expect(bytes === undefined ? undefined : Buffer.from(bytes)).toEqual(asBytes(want))
      }
    }
    for (const value of values) {
      for (const record of [encodeRecord(value), seqRecord(key, 0, value, 3), seqRecord(key, 0, value, 3, 1e12)]) {
        expect(Buffer.from(decodeRecordBytes(record) as Buffer)).toEqual(asBytes(value))
      }
    }
  })

  it('the value of a local put record is read with the checks readRecord makes', () => {
    const overU53 = seqRecord(key, 0, 'v', 1)
    overU53.writeUInt32BE(0x20_0000, 6) // MOD_SEQ's high word: 2^53
    const badType = seqRecord(key, 0, 'v', 1)
    badType[14] = 0x07
    const cut = seqRecord(key, 0, 'v', 1, 1e12).subarray(0, 20)
    const unknownFlag = seqRecord(key, 0, 'v', 1)
    unknownFlag[1] |= 0x10
    for (const [record, error] of [
      [overU53, /over 2\^53/],
      [badType, /unknown value type/],
      [cut, /cut short/],
      [unknownFlag, /newer tandem/],
    ] as const) {
      expect(() => readRecord(record)).toThrow(error)
      expect(() => decodeRecord(record)).toThrow(error)
      expect(() => decodeRecordBytes(record)).toThrow(error)
    }
  })

  it('refuses what readRecord refuses', () => {
    const unknownFlag = Buffer.from([0x10, 0x20, 0x00])
    expect(() => isTombstoneRecord(unknownFlag)).toThrow(/does not know/)
    expect(() => recordVersion(unknownFlag)).toThrow(/does not know/)
    const cut = writeRecord({ version, body: { kind: 'value', value: 'v' } }).subarray(0, 12)
    expect(() => recordVersion(cut)).toThrow(/cut short/)
    // Left to recordVersion, which decodes and refuses them.
    expect(recordHlc(unknownFlag)).toBeNaN()
    expect(recordHlc(cut)).toBeNaN()
  })

  it("utf8LwwRecord writes the generic encoding's bytes in place, sealed or not, at every field width", () => {
    const widths = [0, 1, 0xff, 0x1_0000, 0xffff_ffff, 0x1_0000_0000, 2 ** 53 - 1]
    const origins = ['f3a9c1d2e4b5a6978877665544332211', 'nœud-é', '']
    let n = 0
    for (const hlc of widths) {
      for (const counter of widths) {
        const v = { hlc, counter, origin: origins[n++ % origins.length] }
        for (const value of [...values, null]) {
          const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value
          const binary = value !== null && typeof value !== 'string'
          const body: KeyRecord['body'] = value === null ? { kind: 'tombstone' } : { kind: 'value', value }
          const unsealed = writeRecord({ version: v, body })
          expect(utf8LwwRecord(v.hlc, v.counter, v.origin, bytes, binary).equals(unsealed)).toBe(true)
          const sealed = utf8LwwRecord(v.hlc, v.counter, v.origin, bytes, binary, key)
          expect(sealed.equals(sealRecord(key, 0, unsealed))).toBe(true)
          expect(recordIntact(key, 0, sealed, true)).toBe(true)
        }
      }
    }
    expect(() => utf8LwwRecord(2 ** 53, 1, origin, null, false, key)).toThrow(/not an integer/)
    expect(() => utf8LwwRecord(1, 1.5, origin, null, false, key)).toThrow(/not an integer/)
    expect(() => utf8LwwRecord(1, 1, 'é'.repeat(128), null, false, key)).toThrow(/over 255 bytes/)
  })

  it('versionRecord gives the bytes of the generic encoding, and null for a string that is not UTF-8', () => {
    for (const value of values) {
      const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value
      const built = versionRecord(version, bytes, typeof value !== 'string')
      expect(built?.equals(writeRecord({ version, body: { kind: 'value', value } }))).toBe(true)
    }
    const tomb = versionRecord(version, null, false)
    expect(tomb?.equals(writeRecord({ version, body: { kind: 'tombstone' } }))).toBe(true)
    expect(versionRecord(version, Buffer.from([0xff]), false)).toBeNull()
  })

  it('writes each origin of records built in turn for origins of one length, multi-byte ones and the empty one, as it reads back', () => {
    const origins = [
      'f3a9c1d2e4b5a6978877665544332211',
      'f3a9c1d2e4b5a6978877665544332212',
      'nœud-é',
      'n',
      '',
      'nœud-é',
    ]
    for (let n = 0; n < 3; n++) {
      for (const origin of origins) {
        const v = { hlc: 1_732_000_000_000 * 1024 + n, counter: n + 1, origin }
        const built = versionRecord(v, Buffer.from('x'), false, key) as Buffer
        expect(readRecord(built).version).toEqual(v)
        expect(recordIntact(key, 0, built, true)).toBe(true)
        expect(readRecord(writeRecord({ version: v, body: { kind: 'tombstone' } })).version).toEqual(v)
      }
    }
    expect(() =>
      writeRecord({ version: { hlc: 1, counter: 1, origin: 'é'.repeat(128) }, body: { kind: 'tombstone' } }),
    ).toThrow(/over 255 bytes/)
  })

  it('versionRecord with a key gives the bytes of sealing the unsealed one for that key', () => {
    for (const value of [...values, null]) {
      const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value
      const binary = value !== null && typeof value !== 'string'
      const unsealed = versionRecord(version, bytes, binary) as Buffer
      const sealed = versionRecord(version, bytes, binary, key) as Buffer
      expect(isSealed(unsealed)).toBe(false)
      expect(isSealed(sealed)).toBe(true)
      expect(sealed.equals(sealRecord(key, 0, unsealed))).toBe(true)
      expect(recordIntact(key, 0, sealed, true)).toBe(true)
      expect(readRecord(sealed)).toEqual(readRecord(unsealed))
    }
    expect(versionRecord(version, Buffer.from([0xff]), false, key)).toBeNull()
  })

  it("versionPutRecord gives versionRecord's sealed bytes for a value as a write carries it, the key read from keyStart", () => {
    const dataKey = Buffer.concat([Buffer.from('!data!'), key])
    // A lone surrogate goes in as U+FFFD, as Buffer.from writes it.
    for (const value of [...values, 'half \ud800 pair', new TextBytes(Buffer.from('ünïcødé ✓', 'utf8'))]) {
      const binary = value instanceof Uint8Array
      const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : binary ? value : value.bytes
      const expected = versionRecord(version, bytes, binary, key) as Buffer
      const built = versionPutRecord(version.hlc, version.counter, version.origin, value, dataKey, 6)
      expect(built.equals(expected)).toBe(true)
      expect(recordIntact(key, 0, built, true)).toBe(true)
      // The digest takes this span without reading the record (ConvergenceDigest.change).
      expect(replicatedSpan(built)).toBe(PUT_RECORD_SPAN)
    }
    expect(() => versionPutRecord(2 ** 53, 1, origin, 'v', key, 0)).toThrow(/not an integer/)
    expect(() => versionPutRecord(1, -1, origin, 'v', key, 0)).toThrow(/not an integer/)
    expect(() => versionPutRecord(1, 1, 'é'.repeat(128), 'v', key, 0)).toThrow(/over 255 bytes/)
  })
})
