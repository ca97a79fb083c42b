/**
 * Memory for the entries frames a master sends its replicas, reused: a
 * frame is cut from a slab, and a slab is written again only once every
 * frame cut from it is done with: its holder has let it go (the commit's
 * dispatch to the feeds, see SharedEntriesFrame) and every socket it was
 * handed to has called back (written to the kernel, or failed and dropped).
 *
 * Why: a slab made anew for every few frames is fresh memory to map and
 * fault in on the thread that commits, and, since frames outlive a
 * young-generation collection while they wait for their socket, external
 * memory in the old generation that only a full mark-compact gives back:
 * a master feeding replicas ran one about every second, against none
 * without replicas. Replicas that keep up release a frame within the
 * commit that made it, so the same slab, still in the CPU's caches, takes
 * the next one.
 *
 * A slab whose frames never all call back is never reused: it is left to
 * the garbage collector with the last frame. Free slabs kept are bounded
 * (keepFree); the rest are dropped.
 */
export interface FrameSlab {
  readonly bytes: Buffer
  /** Where the next frame goes. */
  at: number
  /** Frames and sends not yet done with. */
  refs: number
}

export class FrameSlabs {
  private current: FrameSlab | null = null
  private readonly free: FrameSlab[] = []
  /** The slab of the frame carve() returned last (null: it was allocated alone). */
  lastSlab: FrameSlab | null = null

  constructor(
    private readonly slabBytes = 1024 * 1024,
    private readonly keepFree = 4,
  ) {}

  /**
   * A frame of `size` bytes, held once by the caller (release it with
   * release(lastSlab) when done). One over a quarter of a slab is
   * allocated alone and not reused (lastSlab null).
   */
  readonly carve = (size: number): Buffer => {
    if (size > this.slabBytes / 4) {
      this.lastSlab = null
      return Buffer.allocUnsafeSlow(size)
    }
    let slab = this.current
    if (slab !== null && slab.refs === 0) slab.at = 0 // nothing cut from it is in use
    if (slab === null || slab.at + size > slab.bytes.length) {
      if (slab !== null && slab.refs === 0) this.recycle(slab)
      slab = this.free.pop() ?? { bytes: Buffer.allocUnsafeSlow(this.slabBytes), at: 0, refs: 0 }
      this.current = slab
    }
    const frame = slab.bytes.subarray(slab.at, slab.at + size)
    // Keep the next frame 8-byte aligned.
    slab.at += (size + 7) & ~7
    slab.refs++
    this.lastSlab = slab
    return frame
  }

  /** One more user of a frame cut from `slab` (a socket it is handed to). */
  hold(slab: FrameSlab): void {
    slab.refs++
  }

  /** A user of a frame cut from `slab` is done with it. */
  release(slab: FrameSlab): void {
    slab.refs--
    if (slab.refs === 0 && slab !== this.current) this.recycle(slab)
  }

  /** Slabs free for reuse (for tests). */
  get freeSlabs(): number {
    return this.free.length
  }

  private recycle(slab: FrameSlab): void {
    slab.at = 0
    if (this.free.length < this.keepFree) this.free.push(slab)
  }
}
