/**
 * Log blocks: the log is stored as one LevelDB record per run of
 * consecutive entries, not one record per entry.
 *
 *   key    8-byte big-endian seq of the block's first entry
 *   value  BLOCK_MARK, then for each entry: u32 BE length, entry bytes
 *
 * The entries of a block have consecutive seqs starting at its key, and
 * blocks do not overlap, so the next block's key is this one's plus its
 * entry count. A group commit writes its entries as one block (or a few,
 * when they pass BLOCK_TARGET_BYTES), so the log costs LevelDB one record
 * per group rather than one per entry, and LevelDB's CPU per put falls
 * accordingly (the replicas suite measures a block per group, a record per
 * entry and no log side by side: BENCHMARKS.md#replicas).
 *
 * Blocks are how this node stores its log, not what it replicates: each
 * node cuts its own blocks, the entries and their seqs are the same on
 * every node. A record whose first byte begins a msgpack array is a bare
 * entry, a block of one, so data dirs holding a record per entry read as
 * they are (a build that knows no blocks cannot read a data dir that has
 * them).
 */

/** First byte of a block: a msgpack fixstr marker, which never starts an entry (always an array). */
export const BLOCK_MARK = 0xb1

/** A block is closed once it holds this many bytes, so it holds at most this plus one entry. */
export const BLOCK_TARGET_BYTES = 256 * 1024

/** Packs entries[from..to) into one block (packBlocks picks the runs). */
export function packBlock(entries: readonly Uint8Array[], from: number, to: number): Buffer {
  let size = 1
  for (let i = from; i < to; i++) size += 4 + entries[i].byteLength
  const out = Buffer.allocUnsafe(size)
  out[0] = BLOCK_MARK
  let at = 1
  for (let i = from; i < to; i++) {
    const entry = entries[i]
    out.writeUInt32BE(entry.byteLength, at)
    out.set(entry, at + 4)
    at += 4 + entry.byteLength
  }
  return out
}

/**
 * Calls `emit(firstIndex, block)` for each block the entries are cut into:
 * runs of consecutive entries closed once they reach BLOCK_TARGET_BYTES.
 */
export function packBlocks(entries: readonly Uint8Array[], emit: (firstIndex: number, block: Buffer) => void): void {
  new BlockPacker(emit).finish(entries)
}

/**
 * Cuts a run of entries into the blocks packBlocks cuts from it, packing
 * them as the run grows: add() packs the entries added to it since the
 * last call, finish() the rest, then emits the last block. A group built
 * while the group before it is written packs its entries at each join, so
 * that only the last join's are packed between that write's end and this
 * group's hand-over to LevelDB.
 */
export class BlockPacker {
  private block = EMPTY
  /** Bytes of the block being packed, 0 before its first entry. */
  private at = 0
  /** Index of its first entry. */
  private from = 0
  /** Entries packed so far. */
  private packed = 0

  constructor(private readonly emit: (firstIndex: number, block: Buffer) => void) {}

  /** Packs entries[packed..]: `entries` is the run, which only grows. */
  add(entries: readonly Uint8Array[]): void {
    let left = 0
    for (let i = this.packed; i < entries.length; i++) left += 4 + entries[i].byteLength
    for (let i = this.packed; i < entries.length; i++) {
      const entry = entries[i]
      const need = 4 + entry.byteLength
      if (this.at === 0) {
        this.from = i
        this.at = 1
      }
      // Room for the rest of the run or twice the block, but no more than
      // the block can take: it closes with the entry that passes the target.
      if (this.at + need > this.block.length) {
        this.grow(Math.min(Math.max(this.at + left, 2 * this.block.length), BLOCK_TARGET_BYTES + 1 + need))
      }
      const block = this.block
      block.writeUInt32BE(entry.byteLength, this.at)
      block.set(entry, this.at + 4)
      this.at += need
      left -= need
      if (this.at - 1 >= BLOCK_TARGET_BYTES) this.close()
    }
    this.packed = entries.length
  }

  /**
   * Where the next entry, of at most `most` bytes, is to be written in
   * place (in `buffer`), once entries[packed..] are packed: the entry's
   * first byte's offset. placed() then adds it; nothing else may come
   * between the two.
   */
  room(entries: readonly Uint8Array[], most: number): number {
    if (this.packed < entries.length) this.add(entries)
    if (this.at === 0) {
      this.from = entries.length
      this.at = 1
    }
    const need = 4 + most
    if (this.at + need > this.block.length) {
      // Twice the block (at least a pool buffer's worth), but no more than it can take.
      this.grow(Math.min(Math.max(this.at + need, 2 * this.block.length, MIN_GROWN), BLOCK_TARGET_BYTES + 1 + need))
    }
    return this.at + 4
  }

  /**
   * Entries of about `bytes` in all are to come, written in place: the
   * block's first buffer is made that large, not grown to it step by step
   * (a buffer past the pool's size is an ArrayBuffer of its own, each one
   * work for the garbage collector).
   */
  expect(bytes: number): void {
    if (this.at !== 0 || this.block.length >= bytes) return
    this.block = Buffer.allocUnsafe(Math.min(bytes, BLOCK_TARGET_BYTES))
    this.block[0] = BLOCK_MARK
  }

  /** The block being packed: room() says where in it the next entry goes. */
  get buffer(): Buffer {
    return this.block
  }

  /**
   * The entry written where room() said ends at `end`: it is added to
   * `entries` (as a view of the block, which is never written again there).
   */
  placed(entries: Uint8Array[], end: number): void {
    const block = this.block
    const start = this.at + 4
    block.writeUInt32BE(end - start, this.at)
    entries.push(block.subarray(start, end))
    this.at = end
    this.packed = entries.length
    if (this.at - 1 >= BLOCK_TARGET_BYTES) this.close()
  }

  /** Packs what add() has not and emits the last block. */
  finish(entries: readonly Uint8Array[]): void {
    this.add(entries)
    if (this.at > 0) this.close()
  }

  private close(): void {
    const block = this.block.subarray(0, this.at)
    this.block = EMPTY
    this.at = 0
    this.emit(this.from, block)
  }

  /** Moves the block into a buffer of `size` bytes (its first byte the mark). */
  private grow(size: number): void {
    const grown = Buffer.allocUnsafe(size)
    grown[0] = BLOCK_MARK
    if (this.at > 1) this.block.copy(grown, 1, 1, this.at)
    this.block = grown
  }
}

const EMPTY = Buffer.alloc(0)
/** The least a block grows to for entries written in place: under half of Buffer.poolSize, so taken from the pool. */
const MIN_GROWN = 2048

/**
 * The entries of a stored log record, as views into it. Throws on a record
 * that is neither a well-formed block nor a bare entry.
 */
export function unpackBlock(record: Uint8Array): Buffer[] {
  const bytes = Buffer.from(record.buffer, record.byteOffset, record.byteLength)
  if (bytes.length === 0) throw new Error('empty log record')
  const first = bytes[0]
  if (first !== BLOCK_MARK) {
    // fixarray, array16 or array32: a bare entry (a record per entry).
    if ((first & 0xf0) === 0x90 || first === 0xdc || first === 0xdd) return [bytes]
    throw new Error(`log record starts with 0x${first.toString(16)}, neither a block nor an entry`)
  }
  const entries: Buffer[] = []
  let at = 1
  while (at < bytes.length) {
    if (at + 4 > bytes.length) throw new Error('log block cut inside a length')
    const length = bytes.readUInt32BE(at)
    at += 4
    if (length === 0 || at + length > bytes.length) throw new Error('log block entry runs past the block')
    entries.push(bytes.subarray(at, at + length))
    at += length
  }
  if (entries.length === 0) throw new Error('log block holds no entry')
  return entries
}
