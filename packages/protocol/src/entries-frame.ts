/**
 * The replication entries frame, {type: 'entries', entries, head}, built
 * from entries that are already msgpack bins (each log entry's bytes after
 * its bin header, laid end to end). A master keeps its newest entries that
 * way (the server's LogTail), so a frame for its replicas is one header and
 * one copy of a run of bytes, with no object per entry and no msgpack
 * encoder walking the entries one by one. The result is plain msgpack: any
 * decoder reads the same message as encodeFrame({type: 'entries',
 * entries, head}) gives.
 */

/** Bytes of the msgpack bin header in front of `length` bytes (bin 8, bin 16 or bin 32). */
export function binHeaderLength(length: number): number {
  return length < 0x100 ? 2 : length < 0x10000 ? 3 : 5
}

/** Writes the msgpack bin header for `length` bytes at `at`; returns where the bytes go. */
export function writeBinHeader(target: Uint8Array, at: number, length: number): number {
  if (length < 0x100) {
    target[at] = 0xc4
    target[at + 1] = length
    return at + 2
  }
  if (length < 0x10000) {
    target[at] = 0xc5
    target[at + 1] = length >>> 8
    target[at + 2] = length & 0xff
    return at + 3
  }
  target[at] = 0xc6
  target[at + 1] = length >>> 24
  target[at + 2] = (length >>> 16) & 0xff
  target[at + 3] = (length >>> 8) & 0xff
  target[at + 4] = length & 0xff
  return at + 5
}

// fixmap of 3, "type", "entries", then the key "entries".
const PREFIX = Buffer.from([
  0x83,
  0xa4,
  ...Buffer.from('type'),
  0xa7,
  ...Buffer.from('entries'),
  0xa7,
  ...Buffer.from('entries'),
])
const HEAD_KEY = Buffer.from([0xa4, ...Buffer.from('head')])
const VV_KEY = Buffer.from([0xa2, ...Buffer.from('vv')])

/**
 * Frames are cut from a shared slab, as msgpackr does for the frames it
 * encodes: a new buffer of tens of KiB per frame costs far more than
 * copying into it (fresh memory to map and fault in, and external memory
 * that drives the garbage collector). A slab is dropped, and collected once
 * the last frame cut from it is, when the next frame does not fit.
 */
const SLAB_BYTES = 1024 * 1024
let slab = Buffer.allocUnsafeSlow(0)
let slabAt = 0

function carve(size: number): Buffer {
  if (size > SLAB_BYTES / 4) return Buffer.allocUnsafeSlow(size)
  if (slabAt + size > slab.length) {
    slab = Buffer.allocUnsafeSlow(SLAB_BYTES)
    slabAt = 0
  }
  const out = slab.subarray(slabAt, slabAt + size)
  // Keep the next frame 8-byte aligned.
  slabAt += (size + 7) & ~7
  return out
}

/**
 * The entries frame holding `count` entries whose bin-encoded bytes are
 * `bins` (one run of them, or several laid end to end in the frame), and
 * `head` (a seq: a non-negative safe integer). With `vv` (the msgpack of a
 * version vector: a peer's entries frame), the frame is {type: 'entries',
 * entries, head, vv}, as encodeFrame gives that object. `alloc`, when
 * given, gives the frame's memory (exactly the size asked) instead of the
 * module's slab.
 */
export function encodeEntriesFrame(
  count: number,
  bins: Uint8Array | readonly Uint8Array[],
  head: number,
  vv?: Uint8Array,
  alloc: (size: number) => Buffer = carve,
): Buffer {
  if (!Number.isSafeInteger(head) || head < 0) throw new RangeError(`head must be a seq, got ${head}`)
  const arrayHeader = count < 16 ? 1 : count < 0x10000 ? 3 : 5
  const headBytes = head < 0x80 ? 1 : head < 0x100 ? 2 : head < 0x10000 ? 3 : head < 2 ** 32 ? 5 : 9
  let binBytes = 0
  if (bins instanceof Uint8Array) binBytes = bins.length
  else for (let i = 0; i < bins.length; i++) binBytes += bins[i].length
  const vvBytes = vv === undefined ? 0 : VV_KEY.length + vv.length
  const frame = alloc(PREFIX.length + arrayHeader + binBytes + HEAD_KEY.length + headBytes + vvBytes)
  let at = PREFIX.copy(frame, 0)
  // A fourth key (vv) makes it a fixmap of 4.
  if (vv !== undefined) frame[0] = 0x84
  if (count < 16) frame[at++] = 0x90 | count
  else if (count < 0x10000) {
    frame[at++] = 0xdc
    frame.writeUInt16BE(count, at)
    at += 2
  } else {
    frame[at++] = 0xdd
    frame.writeUInt32BE(count, at)
    at += 4
  }
  if (bins instanceof Uint8Array) {
    frame.set(bins, at)
    at += bins.length
  } else {
    for (let i = 0; i < bins.length; i++) {
      frame.set(bins[i], at)
      at += bins[i].length
    }
  }
  at += HEAD_KEY.copy(frame, at)
  if (head < 0x80) frame[at++] = head
  else if (head < 0x100) {
    frame[at] = 0xcc
    frame[at + 1] = head
    at += 2
  } else if (head < 0x10000) {
    frame[at] = 0xcd
    frame.writeUInt16BE(head, at + 1)
    at += 3
  } else if (head < 2 ** 32) {
    frame[at] = 0xce
    frame.writeUInt32BE(head, at + 1)
    at += 5
  } else {
    frame[at] = 0xcf
    frame.writeBigUInt64BE(BigInt(head), at + 1)
    at += 9
  }
  if (vv !== undefined) {
    at += VV_KEY.copy(frame, at)
    frame.set(vv, at)
  }
  return frame
}
