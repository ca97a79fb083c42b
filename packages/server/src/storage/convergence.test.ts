import { describe, expect, it } from 'vitest'
import { ConvergenceDigest } from './convergence.js'
import {
  isTombstone,
  type KeyRecord,
  PUT_RECORD_SPAN,
  readRecord,
  sealRecord,
  versionPutRecord,
  writeRecord,
} from './record.js'

/**
 * The digest is persisted with the data and compared across nodes, so the
 * hash of a key's state must stay what the README defines, byte for byte:
 * the 64-bit term (DIGEST_HASH 2, reference64 below, written out plainly)
 * of (key length, key, canonical state), the canonical state being the
 * record decoded and encoded again without what is local to a node. The
 * write path cuts that state out of the stored record instead of decoding
 * it; these tests hold it to the definition, and pin the term of fixed
 * inputs (a build that hashed otherwise would not compare with this one).
 */
function reference64(bytes: Buffer): bigint {
  const m32 = (a: number, b: number) => Math.imul(a, b)
  const rotl = (x: number, r: number) => (x << r) | (x >>> (32 - r))
  const fmix = (h: number) => {
    let x = h
    x = m32(x ^ (x >>> 16), 0x85ebca6b)
    x = m32(x ^ (x >>> 13), 0xc2b2ae35)
    return x ^ (x >>> 16)
  }
  const n = bytes.length
  let h1 = 0x9747b28c ^ n
  let h2 = 0x85ebca6b ^ n
  const blocks = Math.floor(n / 4)
  for (let b = 0; b < blocks; b++) {
    const k = m32(rotl(m32(bytes.readInt32LE(b * 4), 0xcc9e2d51), 15), 0x1b873593)
    h1 = (m32(rotl(h1 ^ k, 13), 5) + 0xe6546b64) | 0
    h2 = rotl((m32(h2 ^ k, 0x2c1b3c6d) + 0x297a2d39) | 0, 17)
  }
  const tail = bytes.subarray(blocks * 4)
  if (tail.length > 0) {
    let k = 0
    for (let i = tail.length - 1; i >= 0; i--) k = (k << 8) | tail[i]
    k = m32(rotl(m32(k, 0xcc9e2d51), 15), 0x1b873593)
    h1 ^= k
    h2 ^= m32(k, 0x2c1b3c6d)
  }
  h1 = (h1 + h2) | 0
  h2 = (h2 + h1) | 0
  h1 = fmix(h1)
  h2 = fmix(h2)
  h1 = (h1 + h2) | 0
  h2 = (h2 + h1) | 0
  return (BigInt(h1 >>> 0) << 32n) | BigInt(h2 >>> 0)
}

function referenceHash(key: Uint8Array, record: Buffer): bigint {
  let state: Buffer | null = record
  if (record[0] === 0x10) {
    const parsed = readRecord(record)
    if (isTombstone(parsed)) state = null
    else {
      const canonical: KeyRecord = { version: parsed.version, expiresAt: parsed.expiresAt, body: parsed.body }
      if (parsed.body.kind === 'siblings') canonical.body = { ...parsed.body, context: {} }
      state = writeRecord(canonical)
    }
  }
  if (state === null) return 0n
  const length = Buffer.alloc(4)
  length.writeUInt32BE(key.byteLength)
  return reference64(Buffer.concat([length, key, state]))
}

function hashOf(key: Uint8Array, record: Buffer): bigint {
  const digest = new ConvergenceDigest()
  digest.change(key, undefined, record)
  return digest.value
}

const origin = 'f3a9c1d2e4b5a6978877665544332211'
const version = { hlc: 1_732_000_000_000 * 1024 + 17, counter: 2 ** 40 + 3, origin }
const values = ['', 'hello', 'ünïcødé ✓ 𝄞', 'x'.repeat(70_000), Buffer.from([0, 255, 1, 0xc3]), Buffer.alloc(0)]

/** Every kind of record a node stores, with and without each optional field. */
function shapes(): KeyRecord[] {
  const out: KeyRecord[] = []
  for (const value of values) {
    out.push({ body: { kind: 'value', value } })
    out.push({ version, body: { kind: 'value', value } })
    out.push({ version, expiresAt: 1_800_000_000_000, body: { kind: 'value', value } })
    out.push({ expiresAt: 1_800_000_000_000, body: { kind: 'value', value } })
    out.push({ modSeq: 2 ** 33 + 5, version, body: { kind: 'value', value } })
    out.push({ modSeq: 9, body: { kind: 'value', value } })
  }
  out.push({ version, body: { kind: 'tombstone' } })
  out.push({ modSeq: 4, body: { kind: 'tombstone' } })
  const siblings = [
    { origin, counter: 4, hlc: 99, value: 'a' },
    { origin: 'aa', counter: 2, hlc: 98, value: Buffer.from([7]) },
  ]
  out.push({ body: { kind: 'siblings', siblings, context: { [origin]: 4, aa: 2 } } })
  out.push({ body: { kind: 'siblings', siblings: [], context: { aa: 2 } } })
  return out
}

describe('convergence digest: the hash of a key state', () => {
  const key = Buffer.from('user:ключ:42', 'utf8')

  it('is the 64-bit term of the key and the canonical state, for every record shape, sealed or not', () => {
    let checked = 0
    for (const shape of shapes()) {
      const plain = writeRecord(shape)
      for (const record of [plain, sealRecord(key, 0, plain)]) {
        expect(hashOf(key, record)).toBe(referenceHash(key, record))
        checked++
      }
    }
    expect(checked).toBe(80)
  })

  it("is the same for a client put's record with its span given as known (PUT_RECORD_SPAN), its key from keyStart", () => {
    const dataKey = Buffer.concat([Buffer.from('!data!'), key])
    for (const value of values) {
      const put = versionPutRecord(version.hlc, version.counter, origin, value, dataKey, 6)
      const given = new ConvergenceDigest()
      given.change(dataKey, undefined, put, 6, PUT_RECORD_SPAN)
      expect(given.value).toBe(referenceHash(key, put))
      // And back out again: the sums return to zero.
      given.change(dataKey, put, undefined, 6)
      expect(given.value).toBe(0n)
    }
  })

  it('is, for fixed inputs, the terms this build has always given (other builds of DIGEST_HASH 2 compare with it)', () => {
    const sealed = (value: string | Buffer) =>
      sealRecord(key, 0, writeRecord({ version, body: { kind: 'value', value } }))
    expect(hashOf(key, sealed('')).toString(16)).toBe('17ade7f211ee1e5a')
    expect(hashOf(key, sealed('hello')).toString(16)).toBe('1f49a2ae793c96e0')
    expect(hashOf(key, sealed(Buffer.from([0, 255, 1]))).toString(16)).toBe('7810ff68d82dc9a1')
  })

  it('is the same for states that fill the hashing scratch buffer to its end and one byte past it', () => {
    // 64 KiB of scratch, the hashed bytes from its 16th: states around that size take either path.
    let checked = 0
    for (let size = 65_400; size <= 65_536; size += 1) {
      const value = Buffer.alloc(size, size & 0xff)
      for (const shape of [
        { modSeq: 2 ** 33 + 5, version, body: { kind: 'value', value } },
        { body: { kind: 'value', value } },
      ] as KeyRecord[]) {
        const record = sealRecord(key, 0, writeRecord(shape))
        expect(hashOf(key, record)).toBe(referenceHash(key, record))
        checked++
      }
    }
    expect(checked).toBe(274)
  })

  it('leaves tombstones out and counts what readRecord would re-encode as it decodes it', () => {
    expect(hashOf(key, sealRecord(key, 0, writeRecord({ version, body: { kind: 'tombstone' } })))).toBe(0n)
    // A string value whose bytes are not UTF-8 reads back as another string: the decoded state is what counts.
    const bad = sealRecord(key, 0, writeRecord({ version, body: { kind: 'value', value: 'ok' } }))
    const patched = Buffer.concat([bad, Buffer.from([0xff, 0xfe])])
    expect(hashOf(key, patched)).toBe(referenceHash(key, patched))
  })

  it('refuses, like readRecord, a record this build does not know', () => {
    const unknownFlag = Buffer.from([0x10, 0x20, 0x00])
    expect(() => hashOf(key, unknownFlag)).toThrow(/does not know/)
    const cut = sealRecord(key, 0, writeRecord({ version, body: { kind: 'value', value: 'v' } })).subarray(0, 12)
    expect(() => hashOf(key, cut)).toThrow(/cut short/)
  })
})

describe('convergence digest: hex', () => {
  it('follows every change and copy (it is kept between them, not recomputed per read)', () => {
    const key = Buffer.from('k')
    const record = writeRecord({ version, body: { kind: 'value', value: 'v' } })
    const digest = new ConvergenceDigest()
    expect(digest.hex).toBe('0000000000000000')
    digest.change(key, undefined, record)
    const one = digest.hex
    expect(one).toBe(referenceHash(key, record).toString(16).padStart(16, '0'))
    const other = new ConvergenceDigest()
    expect(other.hex).toBe('0000000000000000')
    other.copyFrom(digest)
    expect(other.hex).toBe(one)
    digest.change(key, record, undefined)
    expect(digest.hex).toBe('0000000000000000')
    expect(ConvergenceDigest.decode(other.encode()).hex).toBe(one)
  })

  it('is the sum of the persisted u64s mod 2^64, kept through changes, adds and copies, carries and wraps included', () => {
    const MOD = 1n << 64n
    // What the digest says it is, against the sum of the u64s it persists (read back from its bytes).
    const check = (digest: ConvergenceDigest) => {
      const bytes = digest.encode()
      let sum = 0n
      for (let b = 0; b < 256; b++) sum += bytes.readBigUInt64BE(b * 8)
      const expected = (sum % MOD).toString(16).padStart(16, '0')
      expect([digest.hex, digest.value.toString(16).padStart(16, '0')]).toEqual([expected, expected])
      return expected
    }
    const u64s = (each: (bucket: number) => bigint) => {
      const bytes = Buffer.alloc(256 * 8)
      for (let b = 0; b < 256; b++) bytes.writeBigUInt64BE(each(b), b * 8)
      return ConvergenceDigest.decode(bytes)
    }
    let seed = 5
    const random32 = () => {
      seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0
      return BigInt(seed)
    }
    const decoded = [
      u64s(() => 0n),
      u64s((b) => (b === 7 ? 1n : 0n)),
      u64s((b) => (b === 7 ? 1n << 32n : 0n)),
      u64s((b) => (b === 7 ? 0xabcn << 40n : 0n)),
      u64s(() => 0xffff_ffffn),
      u64s(() => 0xffff_ffffn << 32n),
      u64s(() => MOD - 1n),
      u64s((b) => (b < 2 ? 0x8000_0000n : 0n)),
      u64s(() => (random32() << 32n) | random32()),
    ]
    expect(decoded.map(check)).toEqual([
      '0000000000000000',
      '0000000000000001',
      '0000000100000000',
      '000abc0000000000',
      '000000ffffffff00',
      'ffffff0000000000',
      'ffffffffffffff00',
      '0000000100000000',
      expect.stringMatching(/^[0-9a-f]{16}$/),
    ])
    // Changes on a digest near the wrap, and groups' changes made from zero and added on (as a node's groups are).
    const digest = u64s(() => MOD - 1n - (random32() & 0xffn))
    check(digest)
    const held = new Map<string, Buffer>()
    for (let group = 0; group < 20; group++) {
      const delta = new ConvergenceDigest()
      for (let i = 0; i < 50; i++) {
        const name = `key:${Number(random32() % 300n)}`
        const before = held.get(name)
        const after =
          random32() % 5n === 0n
            ? undefined
            : writeRecord({ version, body: { kind: 'value', value: `v${group}.${i}` } })
        delta.change(Buffer.from(name), before, after)
        if (after) held.set(name, after)
        else held.delete(name)
      }
      check(delta)
      digest.add(delta)
      check(digest)
    }
    const copy = new ConvergenceDigest()
    copy.copyFrom(digest)
    expect(check(copy)).toBe(check(digest))
    expect(ConvergenceDigest.decode(digest.encode()).hex).toBe(digest.hex)
  })
})

describe('convergence digest: the sums', () => {
  it('adds and removes states mod 2^64, as the persisted big-endian u64s say', () => {
    // Seeded, so a failure replays: 3,000 states put, replaced and removed, every sum wrapping many times.
    let seed = 11
    const random = () => {
      seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0
      return seed >>> 8
    }
    const digest = new ConvergenceDigest()
    const held = new Map<string, Buffer>()
    const MOD = 1n << 64n
    let expected = 0n
    for (let i = 0; i < 3000; i++) {
      const name = `key:${random() % 500}`
      const key = Buffer.from(name)
      const before = held.get(name)
      const after =
        random() % 4 === 0
          ? undefined
          : writeRecord({ version: { hlc: random(), counter: i + 1, origin }, body: { kind: 'value', value: `v${i}` } })
      digest.change(key, before, after)
      if (before) expected -= referenceHash(key, before)
      if (after) {
        expected += referenceHash(key, after)
        held.set(name, after)
      } else held.delete(name)
      expected = ((expected % MOD) + MOD) % MOD
    }
    expect(held.size).toBeGreaterThan(200)
    expect(digest.value).toBe(expected)
    const encoded = digest.encode()
    let summed = 0n
    for (let b = 0; b < 256; b++) summed += encoded.readBigUInt64BE(b * 8)
    expect(summed % MOD).toBe(expected)
    expect(ConvergenceDigest.decode(encoded).hex).toBe(expected.toString(16).padStart(16, '0'))
    // Removing every state brings every sum back to zero.
    for (const [name, record] of held) digest.change(Buffer.from(name), record, undefined)
    expect(digest.encode().equals(Buffer.alloc(256 * 8))).toBe(true)
    expect(digest.hex).toBe('0000000000000000')
  })
})
