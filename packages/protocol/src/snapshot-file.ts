import { isUtf8 } from 'node:buffer'
import { crc32 } from 'node:zlib'
import { DATA_FORMAT } from './data-format.js'

/**
 * The snapshot (backup) file: a node's data at one seq, with the log
 * position and epoch history it reflects, written by `tandem snapshot save`
 * and read by `tandem-server --restore`. The node streams it as it goes
 * (each frame below is one WebSocket message at /snapshot), and a restore
 * reads it as it goes: neither holds the data set in memory.
 *
 *   file   = MAGIC (8 bytes "TANDEMSN") | u16 format version | frame*
 *   frame  = u8 type | u32 payload length | payload | u32 CRC-32 of (type, length, payload)
 *   types  HEADER (first, once): JSON {seq, epoch, history, clock, nodeId, createdAt}
 *          DATA   (any number):  u32 record count | records in the snapshot-chunk layout
 *                                (u32 key length, key, u32 record length, stored record)
 *          END    (last, once):  JSON {records, frames, seq}
 *
 * (u16, u32: big-endian.) Every frame carries its own checksum, END counts
 * what came before it and nothing may follow it, so a file that was
 * damaged, cut short or written by something else is refused, and the
 * message says where. A newer format version is refused by name.
 */

export const SNAPSHOT_MAGIC = Buffer.from('TANDEMSN', 'latin1')
/**
 * The file's version follows the record format of its DATA frames
 * (data-format.ts): 2 since records carry a checksum. Files of version 1
 * (records without one) are still read; a build from before version 2
 * refuses a version-2 file by name instead of misreading its records.
 */
export const SNAPSHOT_FORMAT_VERSION = DATA_FORMAT
export const SNAPSHOT_HEADER = 0x01
export const SNAPSHOT_DATA = 0x02
export const SNAPSHOT_END = 0x03
/** Largest payload a reader accepts: a damaged length must not make it allocate gigabytes. */
export const SNAPSHOT_MAX_PAYLOAD = 64 * 1024 * 1024

/** What the HEADER frame says. */
export interface SnapshotHeader {
  /** The data reflects every entry up to this seq of `history`, and none after. */
  seq: number
  epoch: number
  history: { epoch: number; startSeq: number; by: string; id?: string; at?: number; why?: string }[]
  /** The node's clock at the snapshot: HLC high-water mark and per-origin counters. */
  clock?: { hlc: number; vv: Record<string, number> }
  /** The node the snapshot was taken on. */
  nodeId: string
  /** Wall time (ms since 1970) on that node when the snapshot was taken. */
  createdAt: number
  [extra: string]: unknown
}

/** What the END frame says. */
export interface SnapshotEnd {
  records: number
  /** Frames before END, HEADER included. */
  frames: number
  seq: number
}

export class SnapshotFileError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'SnapshotFileError'
  }
}

/** The file's first bytes: magic and format version. */
export function snapshotPreamble(): Buffer {
  const out = Buffer.allocUnsafe(SNAPSHOT_MAGIC.length + 2)
  SNAPSHOT_MAGIC.copy(out, 0)
  out.writeUInt16BE(SNAPSHOT_FORMAT_VERSION, SNAPSHOT_MAGIC.length)
  return out
}

/** One frame, checksummed; `prefix` (when given) is written before `payload` as part of it. */
export function snapshotFrame(type: number, payload: Uint8Array, prefix?: Uint8Array): Buffer {
  const length = payload.byteLength + (prefix?.byteLength ?? 0)
  const out = Buffer.allocUnsafe(5 + length + 4)
  out[0] = type
  out.writeUInt32BE(length, 1)
  let at = 5
  if (prefix) {
    out.set(prefix, at)
    at += prefix.byteLength
  }
  out.set(payload, at)
  at += payload.byteLength
  out.writeUInt32BE(crc32(out.subarray(0, at)), at)
  return out
}

export function snapshotJsonFrame(type: number, value: unknown): Buffer {
  return snapshotFrame(type, Buffer.from(JSON.stringify(value), 'utf8'))
}

/** A DATA frame from a snapshot chunk holding `count` records. */
export function snapshotDataFrame(chunk: Uint8Array, count: number): Buffer {
  const head = Buffer.allocUnsafe(4)
  head.writeUInt32BE(count, 0)
  return snapshotFrame(SNAPSHOT_DATA, chunk, head)
}

export type SnapshotItem =
  | { type: 'header'; header: SnapshotHeader }
  | { type: 'data'; chunk: Buffer; count: number }
  | { type: 'end'; end: SnapshotEnd }

/**
 * Reads a snapshot file from bytes pushed in any slices (a file stream,
 * WebSocket messages), checking each frame as it completes. push() returns
 * the items the bytes completed and throws SnapshotFileError on anything
 * wrong; finish() throws unless the file ended right after END. Holds at
 * most one frame's bytes.
 */
export class SnapshotReader {
  /** Bytes read so far (for messages). */
  offset = 0
  header: SnapshotHeader | null = null
  private buffered: Buffer[] = []
  private bufferedBytes = 0
  private preambleSeen = false
  private ended = false
  private frames = 0
  private records = 0

  push(bytes: Uint8Array): SnapshotItem[] {
    const incoming = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    if (incoming.length === 0) return []
    if (this.ended) throw this.error('bytes after the END frame')
    this.buffered.push(incoming)
    this.bufferedBytes += incoming.length
    const items: SnapshotItem[] = []
    for (;;) {
      if (!this.preambleSeen) {
        const need = SNAPSHOT_MAGIC.length + 2
        if (this.bufferedBytes < need) {
          // A short file that does not even start like one is foreign, not cut short.
          if (!this.prefixMatches()) throw this.notSnapshot()
          return items
        }
        const head = this.take(need)
        if (!head.subarray(0, SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) throw this.notSnapshot()
        const version = head.readUInt16BE(SNAPSHOT_MAGIC.length)
        if (version < 1 || version > SNAPSHOT_FORMAT_VERSION) {
          throw new SnapshotFileError(
            `snapshot format version ${version} is not one this tandem reads (it reads versions 1 to ${SNAPSHOT_FORMAT_VERSION}): written by a newer tandem?`,
          )
        }
        this.preambleSeen = true
        continue
      }
      if (this.bufferedBytes < 5) return items
      const first = this.peek(5)
      const type = first[0]
      const length = first.readUInt32BE(1)
      if (length > SNAPSHOT_MAX_PAYLOAD) {
        throw this.error(`a frame claims ${length} bytes (at most ${SNAPSHOT_MAX_PAYLOAD}): the file is damaged`)
      }
      if (this.bufferedBytes < 5 + length + 4) return items
      const start = this.offset
      const frame = this.take(5 + length + 4)
      const expected = frame.readUInt32BE(5 + length)
      if (crc32(frame.subarray(0, 5 + length)) !== expected) {
        throw new SnapshotFileError(
          `frame ${this.frames + 1} (at byte ${start}) fails its checksum: the snapshot file is damaged`,
        )
      }
      items.push(this.item(type, frame.subarray(5, 5 + length), start))
    }
  }

  /** The file is over: it must have ended with END. */
  finish(): SnapshotEnd {
    if (!this.ended) {
      throw new SnapshotFileError(
        `the snapshot file is cut short: it ends at byte ${this.offset + this.bufferedBytes} before its END frame`,
      )
    }
    return { records: this.records, frames: this.frames, seq: this.header?.seq ?? 0 }
  }

  private item(type: number, payload: Buffer, at: number): SnapshotItem {
    const index = ++this.frames
    if (index === 1 && type !== SNAPSHOT_HEADER) throw this.error('the first frame is not the HEADER')
    switch (type) {
      case SNAPSHOT_HEADER: {
        if (index !== 1) throw this.error(`a second HEADER at byte ${at}`)
        const header = this.json(payload, 'HEADER') as SnapshotHeader
        if (!Number.isSafeInteger(header?.seq) || !Array.isArray(header.history)) {
          throw this.error('the HEADER lacks seq or history')
        }
        this.header = header
        return { type: 'header', header }
      }
      case SNAPSHOT_DATA: {
        if (payload.length < 4) throw this.error(`a DATA frame at byte ${at} is too short`)
        const count = payload.readUInt32BE(0)
        const chunk = payload.subarray(4)
        this.checkChunk(chunk, count, `DATA frame ${index} (at byte ${at})`)
        this.records += count
        return { type: 'data', chunk, count }
      }
      case SNAPSHOT_END: {
        const end = this.json(payload, 'END') as SnapshotEnd
        const seen = index - 1
        if (end?.records !== this.records || end.frames !== seen || end.seq !== this.header?.seq) {
          throw this.error(
            `the END frame says ${end?.records} records in ${end?.frames} frames at seq ${end?.seq}, the file holds ${this.records} in ${seen} at seq ${this.header?.seq}`,
          )
        }
        this.ended = true
        if (this.bufferedBytes > 0) throw this.error('bytes after the END frame')
        return { type: 'end', end }
      }
      default:
        throw this.error(`frame ${index} at byte ${at} has unknown type 0x${type.toString(16)}`)
    }
  }

  /**
   * A DATA frame's records must be laid out to its last byte, as many as it
   * says, each under a key that is UTF-8: what a node refuses when it takes
   * the chunk (tandem keys are UTF-8 text, and a node reads them back as
   * strings), so that `snapshot verify` passes no file `--restore` refuses
   * for its layout or keys. Record contents are the node's to check.
   */
  private checkChunk(chunk: Buffer, count: number, frame: string): void {
    let at = 0
    let records = 0
    while (at < chunk.length) {
      if (at + 4 > chunk.length) throw this.error(`${frame} is cut short in a key length`)
      const keyLength = chunk.readUInt32BE(at)
      at += 4 + keyLength
      if (at + 4 > chunk.length) throw this.error(`${frame} is cut short in a key`)
      if (!keyIsUtf8(chunk, at - keyLength, at)) {
        throw this.error(`${frame} holds a key that is not UTF-8 (tandem keys are UTF-8 text)`)
      }
      const recordLength = chunk.readUInt32BE(at)
      at += 4 + recordLength
      if (at > chunk.length) throw this.error(`${frame} is cut short in a record`)
      if (recordLength === 0) throw this.error(`${frame} holds an empty record`)
      records++
    }
    if (records !== count) throw this.error(`${frame} says ${count} records and holds ${records}`)
  }

  private json(payload: Buffer, what: string): unknown {
    try {
      return JSON.parse(payload.toString('utf8'))
    } catch {
      throw this.error(`the ${what} frame is not valid JSON`)
    }
  }

  private prefixMatches(): boolean {
    const have = Buffer.concat(this.buffered, this.bufferedBytes)
    const n = Math.min(have.length, SNAPSHOT_MAGIC.length)
    return have.subarray(0, n).equals(SNAPSHOT_MAGIC.subarray(0, n))
  }

  private notSnapshot(): SnapshotFileError {
    return new SnapshotFileError('not a tandem snapshot file (it does not start with TANDEMSN)')
  }

  private error(message: string): SnapshotFileError {
    return new SnapshotFileError(`invalid snapshot file: ${message}`)
  }

  private peek(n: number): Buffer {
    if (this.buffered[0].length >= n) return this.buffered[0].subarray(0, n)
    const all = Buffer.concat(this.buffered, this.bufferedBytes)
    this.buffered = [all]
    return all.subarray(0, n)
  }

  private take(n: number): Buffer {
    const head = this.peek(n)
    const first = this.buffered[0]
    if (first.length === n) this.buffered.shift()
    else this.buffered[0] = first.subarray(n)
    this.bufferedBytes -= n
    this.offset += n
    return head
  }
}

/** Whether src[from..to) is UTF-8: a loop for ASCII keys (most are), the native check past it. */
function keyIsUtf8(src: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (src[i] >= 0x80) return isUtf8(src.subarray(i, to))
  return true
}
