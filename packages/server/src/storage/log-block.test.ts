import { describe, expect, it } from 'vitest'
import { BLOCK_MARK, BLOCK_TARGET_BYTES, packBlock, packBlocks, unpackBlock } from './log-block.js'
import { encodeEntry } from './log-entry.js'

function entry(seq: number, value: string): Buffer {
  return encodeEntry({ seq, epoch: 1, origin: 'n1', originSeq: seq, hlc: seq, ops: [[0, `k${seq}`, value]] })
}

describe('log blocks', () => {
  it('round-trips a run of entries byte for byte', () => {
    const entries = [entry(1, 'a'), entry(2, 'bb'), entry(3, 'x'.repeat(1000))]
    const block = packBlock(entries, 0, entries.length)
    expect(block[0]).toBe(BLOCK_MARK)
    expect(unpackBlock(block)).toEqual(entries)
    expect(unpackBlock(packBlock(entries, 1, 3))).toEqual(entries.slice(1))
  })

  it('cuts a group into blocks once they reach the target size, keeping every entry in order', () => {
    const big = 'v'.repeat(60 * 1024)
    const entries = Array.from({ length: 20 }, (_, i) => entry(i + 1, big))
    const blocks: [number, Buffer][] = []
    packBlocks(entries, (first, block) => blocks.push([first, block]))
    expect(blocks.length).toBeGreaterThan(1)
    const back: Buffer[] = []
    for (const [first, block] of blocks) {
      expect(first).toBe(back.length)
      back.push(...unpackBlock(block))
      // Only the entry that crosses the target closes a block.
      expect(block.length).toBeLessThan(BLOCK_TARGET_BYTES + 4 + entries[0].length)
    }
    // Buffer.equals: vitest's deep equality walks 1 MiB of bytes one by one.
    expect(back.length).toBe(entries.length)
    expect(back.every((raw, i) => raw.equals(entries[i]))).toBe(true)
  })

  it('closes a block with the entry that takes it past the target', () => {
    const entries = [entry(1, 'a'), entry(2, 'z'.repeat(BLOCK_TARGET_BYTES + 10)), entry(3, 'c')]
    const firsts: number[] = []
    packBlocks(entries, (first) => firsts.push(first))
    expect(firsts).toEqual([0, 2])
  })

  it('reads a bare entry (the layout before blocks) as a block of one', () => {
    const bare = entry(7, 'old')
    expect(unpackBlock(bare)).toEqual([bare])
  })

  it('refuses records that are neither a block nor an entry', () => {
    const good = packBlock([entry(1, 'a')], 0, 1)
    expect(() => unpackBlock(Buffer.alloc(0))).toThrow(/empty/)
    expect(() => unpackBlock(Buffer.from([0xa3, 1, 2, 3]))).toThrow(/neither a block nor an entry/)
    expect(() => unpackBlock(Buffer.from([BLOCK_MARK]))).toThrow(/no entry/)
    expect(() => unpackBlock(good.subarray(0, good.length - 1))).toThrow(/past the block/)
    expect(() => unpackBlock(Buffer.concat([good, Buffer.from([0, 0])]))).toThrow(/inside a length/)
    const zero = Buffer.from([BLOCK_MARK, 0, 0, 0, 0])
    expect(() => unpackBlock(zero)).toThrow(/past the block/)
  })
})
