import { describe, expect, it } from 'vitest'
import { BLOCK_MARK, BLOCK_TARGET_BYTES, BlockPacker, packBlock, packBlocks, unpackBlock } from './log-block.js'
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

  it('packs a run added to in steps into the blocks packBlocks cuts from the whole run', () => {
    // Entries of 1 byte of value to 100 KiB, so that blocks close at every
    // kind of step: within one, at its last entry, across several.
    let seed = 7
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed % n
    }
    for (let round = 0; round < 40; round++) {
      const sizes = [1, 100, 5000, 100 * 1024]
      const entries = Array.from({ length: 1 + random(60) }, (_, i) =>
        entry(i + 1, 'v'.repeat(1 + random(sizes[random(4)]))),
      )
      // The cut as documented: a block closes with the entry that takes its
      // entries' bytes (4 + length each) to the target.
      const whole: [number, Buffer][] = []
      let from = 0
      let bytes = 0
      entries.forEach((raw, i) => {
        bytes += 4 + raw.length
        if (bytes < BLOCK_TARGET_BYTES && i < entries.length - 1) return
        whole.push([from, packBlock(entries, from, i + 1)])
        from = i + 1
        bytes = 0
      })
      const once: [number, Buffer][] = []
      packBlocks(entries, (first, block) => once.push([first, Buffer.from(block)]))
      expect(once.map(([first]) => first)).toEqual(whole.map(([first]) => first))
      expect(once.every(([, block], i) => block.equals(whole[i][1]))).toBe(true)
      const stepped: [number, Buffer][] = []
      const packer = new BlockPacker((first, block) => stepped.push([first, Buffer.from(block)]))
      const run: Buffer[] = []
      while (run.length < entries.length) {
        const step = Math.min(entries.length - run.length, random(12))
        run.push(...entries.slice(run.length, run.length + step))
        if (random(3) > 0) packer.add(run)
      }
      packer.finish(run)
      if (round === 0) {
        // A run whose first two entries take exactly the target, then one byte short of it.
        const small = entry(1, 'a')
        const fill = (bytes: number) => {
          let value = 'f'.repeat(bytes - 4 - small.length - 4)
          while (4 + entry(2, value).length > bytes - 4 - small.length) value = value.slice(1)
          return entry(2, value)
        }
        for (const [target, firsts] of [
          [BLOCK_TARGET_BYTES, [0, 2]],
          [BLOCK_TARGET_BYTES - 1, [0]],
        ] as const) {
          const exact = [small, fill(target), entry(3, 'c')]
          expect(4 + small.length + 4 + exact[1].length).toBe(target)
          const seen: number[] = []
          const p = new BlockPacker((first) => seen.push(first))
          p.add(exact.slice(0, 1))
          p.finish(exact)
          expect(seen).toEqual(firsts)
        }
      }
      expect(stepped.map(([first]) => first)).toEqual(whole.map(([first]) => first))
      expect(stepped.every(([, block], i) => block.equals(whole[i][1]))).toBe(true)
      const back = stepped.flatMap(([, block]) => unpackBlock(block))
      expect(back.length).toBe(entries.length)
      expect(back.every((raw, i) => raw.equals(entries[i]))).toBe(true)
      // Entries written in place (room, placed), some given room to spare, between entries added: the same blocks.
      const placedBlocks: [number, Buffer][] = []
      const placer = new BlockPacker((first, block) => placedBlocks.push([first, Buffer.from(block)]))
      const mixed: Buffer[] = []
      for (const raw of entries) {
        if (random(2) === 0) {
          mixed.push(raw)
          if (random(3) === 0) placer.add(mixed)
          continue
        }
        const at = placer.room(mixed, raw.length + random(3) * 50)
        raw.copy(placer.buffer, at)
        placer.placed(mixed, at + raw.length)
      }
      placer.finish(mixed)
      expect(mixed.every((raw, i) => raw.equals(entries[i]))).toBe(true)
      expect(placedBlocks.map(([first]) => first)).toEqual(whole.map(([first]) => first))
      expect(placedBlocks.every(([, block], i) => block.equals(whole[i][1]))).toBe(true)
    }
  })
})
