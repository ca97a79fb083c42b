import { describe, expect, it } from 'vitest'
import { type FrameSlab, FrameSlabs } from './frame-slabs.js'

/** Carves a frame of `size` bytes filled with `fill`; returns it with its slab. */
function frame(slabs: FrameSlabs, size: number, fill: number): { bytes: Buffer; slab: FrameSlab } {
  const bytes = slabs.carve(size)
  bytes.fill(fill)
  const slab = slabs.lastSlab
  if (slab === null) throw new Error('expected a frame cut from a slab')
  return { bytes, slab }
}

describe('FrameSlabs', () => {
  it('never hands out the bytes of a frame still held by its maker or by a send', () => {
    const slabs = new FrameSlabs(4096, 2)
    const held: { bytes: Buffer; slab: FrameSlab; fill: number }[] = []
    // 64 frames of 600 bytes, each held by one pending send after its maker lets it go:
    // none of them may be overwritten by the frames carved after it.
    for (let i = 0; i < 64; i++) {
      const f = frame(slabs, 600, i + 1)
      slabs.hold(f.slab)
      slabs.release(f.slab)
      held.push({ ...f, fill: i + 1 })
    }
    for (const f of held) expect(f.bytes.every((b) => b === f.fill)).toBe(true)
    for (const f of held) slabs.release(f.slab)
    expect(slabs.freeSlabs, 'free slabs kept are bounded').toBeLessThanOrEqual(2)
  })

  it('cuts the next frame from the same memory once every frame of the slab is done with', () => {
    const slabs = new FrameSlabs(4096, 2)
    const first = frame(slabs, 1000, 1)
    slabs.hold(first.slab) // a socket has it
    slabs.release(first.slab) // the maker is done
    const second = frame(slabs, 1000, 2)
    expect(second.bytes.byteOffset, 'the first frame is still being written: the second goes after it').not.toBe(
      first.bytes.byteOffset,
    )
    expect(first.bytes.every((b) => b === 1)).toBe(true)
    slabs.release(second.slab)
    slabs.release(first.slab) // the socket wrote it
    const third = frame(slabs, 1000, 3)
    expect(third.bytes.buffer).toBe(first.bytes.buffer)
    expect(third.bytes.byteOffset).toBe(first.bytes.byteOffset)
  })

  it('reuses a full slab once its frames are released, and gives a large frame memory of its own', () => {
    const slabs = new FrameSlabs(4096, 2)
    const full = [1, 2, 3, 4].map((fill) => ({ ...frame(slabs, 1024, fill), fill }))
    // The slab is full and its makers still hold it: the next frame needs another slab.
    const next = frame(slabs, 1024, 5)
    expect(next.bytes.buffer).not.toBe(full[0].bytes.buffer)
    for (const f of full) {
      expect(f.bytes.every((x) => x === f.fill)).toBe(true)
      slabs.release(f.slab)
    }
    expect(slabs.freeSlabs).toBe(1)
    // Fill the second slab (still held by `next`): the frame after it takes the freed first slab.
    for (let i = 0; i < 3; i++) frame(slabs, 1024, 6)
    const reused = frame(slabs, 1024, 7)
    expect(reused.bytes.buffer).toBe(full[0].bytes.buffer)
    expect(next.bytes.every((x) => x === 5)).toBe(true)
    const large = slabs.carve(1025)
    expect(slabs.lastSlab, 'over a quarter of a slab: allocated alone').toBeNull()
    expect(large.length).toBe(1025)
  })
})
