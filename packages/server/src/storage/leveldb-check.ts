import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { crc32c, unmaskCrc } from './crc32c.js'

/**
 * Checks the checksums of a closed LevelDB's files, before it is opened.
 *
 * classic-level opens LevelDB with paranoid_checks off and reads with
 * verify_checksums off, and offers no option to turn either on. So a
 * flipped byte in a table is returned as data, and a damaged record of the
 * write-ahead log is dropped at open with a line in LevelDB's own LOG file
 * and nothing else: acknowledged writes vanish. This walks the files
 * LevelDB would use and checks every CRC-32C it stored, the way LevelDB
 * itself would with those options on:
 *
 * - the write-ahead logs still to be replayed and the current MANIFEST:
 *   every physical record (log format: 32 KiB blocks of records, each with
 *   a masked CRC of its type and payload). A record cut short at the very
 *   end of a file is a write that a crash interrupted before it was
 *   acknowledged, and is not damage; LevelDB ignores it too;
 * - every table the MANIFEST lists as live (`level` 'all'): the footer, the
 *   index and meta-index blocks, the filter block and every data block
 *   (each block is followed by a compression byte and a masked CRC).
 *
 * Files LevelDB no longer uses (a table left half-written by a crash in a
 * compaction, an old log) are not checked: LevelDB deletes them at open.
 */

export interface DamagedFile {
  /** File name inside the db dir (e.g. 000005.log); empty for the db as a whole. */
  file: string
  problem: string
}

export type CheckLevel = 'all' | 'logs' | 'none'

const LOG_BLOCK = 32 * 1024
const LOG_HEADER = 7
const TABLE_FOOTER = 48
const TABLE_MAGIC_LO = 0x8b80fb57
const TABLE_MAGIC_HI = 0xdb477524

/** The damaged files of the LevelDB in `dir` (empty when all is well, or when there is no db yet). */
export async function checkLevelDb(dir: string, level: CheckLevel): Promise<DamagedFile[]> {
  if (level === 'none') return []
  let current: string
  try {
    current = (await readFile(join(dir, 'CURRENT'), 'utf8')).trim()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
  const damaged: DamagedFile[] = []
  if (!/^MANIFEST-\d+$/.test(current))
    return [{ file: 'CURRENT', problem: `names no manifest (${JSON.stringify(current.slice(0, 40))})` }]
  let manifest: Buffer
  try {
    manifest = await readFile(join(dir, current))
  } catch (err) {
    return [{ file: current, problem: `cannot be read: ${(err as Error).message}` }]
  }
  const edits: Buffer[] = []
  const manifestProblem = readLogRecords(manifest, (record) => edits.push(record))
  if (manifestProblem) return [{ file: current, problem: manifestProblem }]
  let version: LiveFiles
  try {
    version = replayManifest(edits)
  } catch (err) {
    return [{ file: current, problem: `does not parse: ${(err as Error).message}` }]
  }
  const names = await readdir(dir)
  for (const name of names) {
    const m = /^(\d+)\.log$/.exec(name)
    if (!m) continue
    const number = Number(m[1])
    if (number < version.logNumber && number !== version.prevLogNumber) continue
    const problem = readLogRecords(await readFile(join(dir, name)), () => {})
    if (problem) damaged.push({ file: name, problem })
  }
  if (level === 'all') {
    for (const number of version.tables) {
      const name = names.includes(`${pad(number)}.ldb`) ? `${pad(number)}.ldb` : `${pad(number)}.sst`
      if (!names.includes(name)) {
        damaged.push({ file: `${pad(number)}.ldb`, problem: 'is listed in the manifest but missing' })
        continue
      }
      const problem = await checkTable(join(dir, name))
      if (problem) damaged.push({ file: name, problem })
    }
  }
  return damaged
}

/**
 * The table files the manifest of the closed LevelDB in `dir` lists as live,
 * the ones checkLevelDb reads. A table a stop or a kill left behind in the
 * middle of a memtable flush is on disk but not live: LevelDB deletes it at
 * its next open, and damage in it harms nothing.
 */
export async function liveTables(dir: string): Promise<string[]> {
  const current = (await readFile(join(dir, 'CURRENT'), 'utf8')).trim()
  const edits: Buffer[] = []
  const problem = readLogRecords(await readFile(join(dir, current)), (record) => edits.push(record))
  if (problem) throw new Error(`${current} ${problem}`)
  const names = await readdir(dir)
  return [...replayManifest(edits).tables].map((number) =>
    names.includes(`${pad(number)}.sst`) ? `${pad(number)}.sst` : `${pad(number)}.ldb`,
  )
}

function pad(n: number): string {
  return String(n).padStart(6, '0')
}

// ---- log format (write-ahead log and manifest) -----------------------------

/**
 * Calls `onRecord` with each logical record of a log file; returns what is
 * wrong with the file, or null. Mirrors LevelDB's log reader: trailing
 * zeros of a block and a record cut short by the end of the file are not
 * damage; a checksum mismatch, a record overrunning its block inside the
 * file, or fragments out of order are.
 */
function readLogRecords(buf: Buffer, onRecord: (record: Buffer) => void): string | null {
  let fragments: Buffer[] | null = null
  let blockStart = 0
  while (blockStart < buf.length) {
    const blockEnd = Math.min(blockStart + LOG_BLOCK, buf.length)
    let at = blockStart
    while (at + LOG_HEADER <= blockEnd) {
      const length = buf.readUInt16LE(at + 4)
      const type = buf[at + 6]
      if (type === 0 && length === 0) break // zeros: the rest of the block is padding
      const end = at + LOG_HEADER + length
      if (end > blockEnd) {
        // Cut short by the end of the file: a write the crash interrupted.
        if (blockEnd === buf.length) return null
        return `bad record length at byte ${at}`
      }
      const expected = unmaskCrc(buf.readUInt32LE(at))
      if (crc32c(buf, at + 6, end) !== expected) return `checksum mismatch in the record at byte ${at}`
      const payload = buf.subarray(at + LOG_HEADER, end)
      if (type === 1) {
        if (fragments) return `record at byte ${at} starts inside an unfinished record`
        onRecord(payload)
      } else if (type === 2) {
        if (fragments) return `record at byte ${at} starts inside an unfinished record`
        fragments = [payload]
      } else if (type === 3 || type === 4) {
        if (!fragments) return `record fragment at byte ${at} has no start`
        fragments.push(payload)
        if (type === 4) {
          onRecord(Buffer.concat(fragments))
          fragments = null
        }
      } else {
        return `unknown record type ${type} at byte ${at}`
      }
      at = end
    }
    blockStart += LOG_BLOCK
  }
  return null
}

// ---- manifest ---------------------------------------------------------------

interface LiveFiles {
  logNumber: number
  prevLogNumber: number
  tables: Set<number>
}

/** Replays the manifest's version edits into the set of live tables and the logs still to replay. */
function replayManifest(edits: Buffer[]): LiveFiles {
  const live: LiveFiles = { logNumber: 0, prevLogNumber: 0, tables: new Set() }
  for (const edit of edits) {
    const r = new Reader(edit)
    while (!r.done) {
      const tag = r.varint()
      switch (tag) {
        case 1: // comparator name
          r.slice()
          break
        case 2:
          live.logNumber = r.varint()
          break
        case 3: // next file number
        case 4: // last sequence
          r.varint()
          break
        case 5: // compaction pointer: level, key
          r.varint()
          r.slice()
          break
        case 6: // deleted file: level, number
          r.varint()
          live.tables.delete(r.varint())
          break
        case 7: // new file: level, number, size, smallest, largest
          r.varint()
          live.tables.add(r.varint())
          r.varint()
          r.slice()
          r.slice()
          break
        case 9:
          live.prevLogNumber = r.varint()
          break
        default:
          throw new Error(`unknown tag ${tag}`)
      }
    }
  }
  return live
}

// ---- tables -----------------------------------------------------------------

/**
 * What is wrong with one table file, or null. A table is read whole (LevelDB
 * keeps them to about 2 MiB): one read per file, not one per 4 KiB block.
 */
async function checkTable(path: string): Promise<string | null> {
  const buf = await readFile(path)
  const size = buf.length
  if (size < TABLE_FOOTER) return `is ${size} bytes, shorter than a table footer`
  if (buf.readUInt32LE(size - 8) !== TABLE_MAGIC_LO || buf.readUInt32LE(size - 4) !== TABLE_MAGIC_HI) {
    return 'has no table magic number at its end'
  }
  /** Checks a block's CRC (over its contents and compression byte); returns its uncompressed contents. */
  const block = (handle: Handle, what: string): Buffer => {
    const end = handle.offset + handle.size
    if (end + 5 > size) throw new Error(`${what} at byte ${handle.offset} runs past the end`)
    if (crc32c(buf, handle.offset, end + 1) !== unmaskCrc(buf.readUInt32LE(end + 1))) {
      throw new Error(`checksum mismatch in the ${what} at byte ${handle.offset}`)
    }
    const contents = buf.subarray(handle.offset, end)
    if (buf[end] === 0) return contents
    if (buf[end] === 1) return snappyDecompress(contents)
    throw new Error(`unknown compression ${buf[end]} of the ${what} at byte ${handle.offset}`)
  }
  try {
    const footer = new Reader(buf.subarray(size - TABLE_FOOTER))
    const metaIndex = footer.handle()
    const index = footer.handle()
    for (const [, value] of blockEntries(block(index, 'index block'))) block(new Reader(value).handle(), 'data block')
    for (const [key, value] of blockEntries(block(metaIndex, 'meta-index block'))) {
      // A filter block is stored raw, with the same trailer.
      if (key.toString('latin1').startsWith('filter.')) block(new Reader(value).handle(), 'filter block')
    }
  } catch (err) {
    return (err as Error).message
  }
  return null
}

/** The key/value entries of a block (keys are prefix-compressed against the previous one). */
function blockEntries(block: Buffer): [Buffer, Buffer][] {
  if (block.length < 4) throw new Error('block too short')
  const restarts = block.readUInt32LE(block.length - 4)
  const limit = block.length - 4 * (restarts + 1)
  if (limit < 0) throw new Error('block restart array runs past its start')
  const r = new Reader(block.subarray(0, limit))
  const out: [Buffer, Buffer][] = []
  let key = Buffer.alloc(0)
  while (!r.done) {
    const shared = r.varint()
    const unshared = r.varint()
    const valueLength = r.varint()
    if (shared > key.length) throw new Error('block entry shares more key than the previous one has')
    key = Buffer.concat([key.subarray(0, shared), r.bytes(unshared)])
    out.push([key, r.bytes(valueLength)])
  }
  return out
}

interface Handle {
  offset: number
  size: number
}

class Reader {
  at = 0
  constructor(private readonly buf: Buffer) {}

  get done(): boolean {
    return this.at >= this.buf.length
  }

  varint(): number {
    let result = 0
    let factor = 1
    for (let i = 0; i < 10; i++) {
      if (this.at >= this.buf.length) throw new Error('varint runs past the end')
      const b = this.buf[this.at++]
      result += (b & 0x7f) * factor
      if (b < 0x80) return result
      factor *= 128
    }
    throw new Error('varint too long')
  }

  bytes(n: number): Buffer {
    if (this.at + n > this.buf.length) throw new Error('field runs past the end')
    const out = this.buf.subarray(this.at, this.at + n)
    this.at += n
    return out
  }

  slice(): Buffer {
    return this.bytes(this.varint())
  }

  handle(): Handle {
    return { offset: this.varint(), size: this.varint() }
  }
}

// ---- snappy (index blocks may be compressed) ---------------------------------

/** Decompresses a raw snappy block; throws on anything malformed. */
function snappyDecompress(src: Buffer): Buffer {
  const r = new Reader(src)
  const length = r.varint()
  const out = Buffer.allocUnsafe(length)
  let o = 0
  let i = r.at
  while (i < src.length) {
    const tag = src[i++]
    let len: number
    let offset: number
    switch (tag & 3) {
      case 0: {
        len = tag >>> 2
        if (len >= 60) {
          const n = len - 59
          if (i + n > src.length) throw new Error('snappy literal length runs past the end')
          len = src.readUIntLE(i, n)
          i += n
        }
        len++
        if (i + len > src.length || o + len > length) throw new Error('snappy literal runs past the end')
        src.copy(out, o, i, i + len)
        i += len
        o += len
        continue
      }
      case 1:
        len = ((tag >>> 2) & 7) + 4
        offset = ((tag >>> 5) << 8) | src[i++]
        break
      case 2:
        len = (tag >>> 2) + 1
        offset = src.readUInt16LE(i)
        i += 2
        break
      default:
        len = (tag >>> 2) + 1
        offset = src.readUInt32LE(i)
        i += 4
    }
    if (offset === 0 || offset > o || o + len > length) throw new Error('snappy copy out of range')
    for (let k = 0; k < len; k++, o++) out[o] = out[o - offset]
  }
  if (o !== length) throw new Error(`snappy block holds ${o} bytes, its header says ${length}`)
  return out
}
