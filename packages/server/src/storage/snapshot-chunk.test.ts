import { describe, expect, it } from 'vitest'
import { ChunkPacker, packChunk, unpackChunk } from './snapshot-chunk.js'

const prefix = Buffer.from('!data!')

function entries(n: number): [Buffer, Buffer][] {
  const out: [Buffer, Buffer][] = []
  for (let i = 0; i < n; i++) {
    out.push([
      Buffer.concat([prefix, Buffer.from(`key-${i}-${'é'.repeat(i % 3)}`)]),
      Buffer.from([i % 2, ...Buffer.from(`v${i}`)]),
    ])
  }
  return out
}

function unpackAll(chunk: Buffer): [string, string][] {
  const out: [string, string][] = []
  const count = unpackChunk(chunk, prefix, (key, record) => out.push([key.toString('hex'), record.toString('hex')]))
  expect(count).toBe(out.length)
  return out
}

describe('snapshot chunks', () => {
  it('carry every record, with the prefix put back on each key', () => {
    const input = entries(300)
    const chunk = packChunk(input, prefix.length)
    expect(unpackAll(chunk)).toEqual(input.map(([k, r]) => [k.toString('hex'), r.toString('hex')]))
  })

  it('carry keys of every length around the one where the copy changes, empty and long ones included', () => {
    const input: [Buffer, Buffer][] = []
    for (const length of [0, 1, 63, 64, 65, 66, 200, 1000]) {
      const key = Buffer.alloc(length)
      for (let i = 0; i < length; i++) key[i] = 0x61 + ((i * 7 + length) % 26)
      input.push([Buffer.concat([prefix, key]), Buffer.from([1, length & 0xff, 2])])
    }
    const chunk = packChunk(input, prefix.length)
    expect(unpackAll(chunk)).toEqual(input.map(([k, r]) => [k.toString('hex'), r.toString('hex')]))
    // With no prefix, too.
    const bare = Buffer.alloc(0)
    const keys: string[] = []
    unpackChunk(chunk, bare, (key) => keys.push(key.toString('hex')))
    expect(keys).toEqual(input.map(([k]) => k.subarray(prefix.length).toString('hex')))
  })

  it('keep keys apart: each key the callback gets stays valid after the next one', () => {
    const input = entries(5)
    const keys: Buffer[] = []
    unpackChunk(packChunk(input, prefix.length), prefix, (key) => keys.push(key))
    expect(keys.map((k) => k.toString())).toEqual(input.map(([k]) => k.toString()))
  })

  it('refuse a chunk cut at any byte, without calling back for any record', () => {
    const chunk = packChunk(entries(3), prefix.length)
    for (let cut = 1; cut < chunk.length; cut++) {
      const partial = chunk.subarray(0, cut)
      let called = 0
      let threw = false
      try {
        unpackChunk(partial, prefix, () => called++)
      } catch {
        threw = true
      }
      // A cut that falls exactly between two records is a shorter, valid chunk.
      if (!threw) expect(unpackAll(partial).length).toBeLessThan(3)
      else expect(called).toBe(0)
    }
  })

  // A snapshot reads keys back as strings (Store.snapshot), so a key that is
  // not UTF-8 could not be sent on as it arrived: refused where it arrives.
  it('refuse a key that is not UTF-8, without calling back for any record', () => {
    const bad = [
      Buffer.from([0x6b, 0xff, 0x6b]),
      Buffer.from([0x6b, 0xc3]), // cut inside a character
      Buffer.from([0xa9, 0x6b]), // starts inside one
      Buffer.from([0xed, 0xa0, 0x80]), // a surrogate's encoding
    ]
    for (const key of bad) {
      for (const p of [prefix, Buffer.alloc(0)]) {
        const chunk = packChunk(
          [
            ...entries(2).map(([k, r]): [Buffer, Buffer] => [Buffer.concat([p, k.subarray(prefix.length)]), r]),
            [Buffer.concat([p, key]), Buffer.from([0, 1])],
          ],
          p.length,
        )
        let called = 0
        expect(() => unpackChunk(chunk, p, () => called++), key.toString('hex')).toThrow(/not UTF-8/)
        expect(called).toBe(0)
      }
    }
    // Every UTF-8 width passes.
    const good = packChunk([[Buffer.from('!data!a\u00e9\u20ac\u{1f600}'), Buffer.from([0, 1])]], prefix.length)
    expect(unpackAll(good)).toHaveLength(1)
  })

  it('refuse lengths that point past the end', () => {
    const chunk = Buffer.alloc(12)
    chunk.writeUInt32BE(0xffffffff, 0)
    expect(() => unpackChunk(chunk, prefix, () => {})).toThrow(/cut short/)
  })

  it('refuse empty records (every stored record has a tag byte)', () => {
    const chunk = packChunk([[Buffer.concat([prefix, Buffer.from('k')]), Buffer.alloc(0)]], prefix.length)
    expect(() => unpackChunk(chunk, prefix, () => {})).toThrow(/empty record/)
  })

  it('are packed from string keys to the same bytes, a record larger than the buffer included', () => {
    const input = entries(40)
    input.splice(20, 0, [Buffer.concat([prefix, Buffer.from('big-😀-日本')]), Buffer.alloc(5000, 7)])
    // Not ASCII (written by the UTF-8 encoder), past the first character, and small enough to share a chunk.
    input.splice(30, 0, [Buffer.concat([prefix, Buffer.from('key-\u00e9\u20ac')]), Buffer.from([0, 1])])
    const packer = new ChunkPacker(256)
    const chunks: Buffer[] = []
    let from = 0
    input.forEach(([key, record], i) => {
      // As a snapshot reads it: the whole LevelDB key as a string, its (ASCII) prefix skipped.
      const keyBytes = packer.placeKey(key.toString('utf8'), prefix.length, record.length)
      expect(keyBytes).toBe(key.length - prefix.length)
      // The key's bytes are where keyAt says, before the record is added.
      const at = packer.keyAt
      expect(packer.bytes.subarray(at, at + keyBytes).equals(key.subarray(prefix.length))).toBe(true)
      packer.commit(keyBytes, record)
      if (packer.size >= 200 || i === input.length - 1) {
        const { chunk, count } = packer.take()
        expect(count).toBe(i + 1 - from)
        expect(chunk.equals(packChunk(input.slice(from, i + 1), prefix.length))).toBe(true)
        chunks.push(chunk)
        from = i + 1
      }
    })
    expect(packer.count).toBe(0)
    expect(chunks.flatMap(unpackAll)).toEqual(input.map(([k, r]) => [k.toString('hex'), r.toString('hex')]))
  })
})
