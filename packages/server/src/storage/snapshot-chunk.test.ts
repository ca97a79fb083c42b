import { describe, expect, it } from 'vitest'
import { packChunk, unpackChunk } from './snapshot-chunk.js'

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

  it('refuse lengths that point past the end', () => {
    const chunk = Buffer.alloc(12)
    chunk.writeUInt32BE(0xffffffff, 0)
    expect(() => unpackChunk(chunk, prefix, () => {})).toThrow(/cut short/)
  })

  it('refuse empty records (every stored record has a tag byte)', () => {
    const chunk = packChunk([[Buffer.concat([prefix, Buffer.from('k')]), Buffer.alloc(0)]], prefix.length)
    expect(() => unpackChunk(chunk, prefix, () => {})).toThrow(/empty record/)
  })
})
