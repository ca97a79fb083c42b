import { isUtf8 } from 'node:buffer'
import { interned } from '../util/interned.js'
import { decodeEntry, type LogEntry, OP_COLLECT, OP_DEL, OP_PUT, opOptions } from './log-entry.js'

/**
 * A log entry as a node applies it: its placement, its identity, and each
 * op's key and value as bytes. The bytes are views into the entry's raw
 * msgpack (no JavaScript string is built for a key or a value), which is
 * what a node stores anyway: it only copies them behind a prefix or a tag
 * byte.
 */
export interface ApplyOp {
  del: boolean
  key: Uint8Array
  /**
   * The value's bytes (null for a delete): valid UTF-8 unless `binary`,
   * as every maker of an op checks (scanEntry) or encodes them from a
   * string (fromDecoded, the Store's local ops); a resolver builds a
   * record from them without checking them again.
   */
  value: Uint8Array | null
  /** Whether the value was stored as binary (else as a UTF-8 string). */
  binary: boolean
  /** The op's causal context, when it carries one (vclock mode). */
  ctx?: Record<string, number>
  /** OP_COLLECT: drop the key's tombstone (del is true too). */
  collect?: boolean
  /** (put) When the value expires, ms since 1970 (the master decided it; see README, TTL). */
  expiresAt?: number
}

export interface ApplyEntry {
  /** The entry as received: stored as it is when its placement is kept. */
  raw: Buffer
  seq: number
  epoch: number
  origin: string
  originSeq: number
  hlc: number
  /** Offset in `raw` where the identity (origin onwards) begins: see placeEntry(). */
  identityAt: number
  ops: ApplyOp[]
}

/**
 * Reads an encoded entry for applying. Entries tandem writes are read
 * straight from their bytes; anything else that is still a valid entry
 * (other msgpack encodings of the same fields, ops with options) goes
 * through the full decoder. Throws on an entry whose fields or ops have the
 * wrong types.
 */
export function readForApply(raw: Buffer): ApplyEntry {
  return scanEntry(raw) ?? fromDecoded(decodeEntry(raw), raw)
}

/** The ops of a decoded entry in apply form, checking their types. */
export function fromDecoded(entry: LogEntry, raw: Buffer): ApplyEntry {
  if (!Number.isSafeInteger(entry.seq) || !Number.isSafeInteger(entry.epoch) || typeof entry.hlc !== 'number') {
    throw new Error('malformed log entry: seq, epoch or hlc')
  }
  if (typeof entry.origin !== 'string' || !Number.isSafeInteger(entry.originSeq)) {
    throw new Error('malformed log entry: origin or originSeq')
  }
  if (!Array.isArray(entry.ops)) throw new Error('malformed log entry: ops')
  const ops: ApplyOp[] = entry.ops.map((op) => {
    if (!Array.isArray(op) || typeof op[1] !== 'string') throw new Error('malformed log entry op')
    const key = Buffer.from(op[1], 'utf8')
    const options = opOptions(op)
    const ctx = options?.c === undefined ? undefined : checkContext(options.c)
    let applied: ApplyOp
    if (op[0] === OP_DEL) applied = { del: true, key, value: null, binary: false }
    else if (op[0] === OP_COLLECT) applied = { del: true, key, value: null, binary: false, collect: true }
    else if (op[0] !== OP_PUT) throw new Error(`malformed log entry op type ${String(op[0])}`)
    else if (typeof op[2] === 'string') applied = { del: false, key, value: Buffer.from(op[2], 'utf8'), binary: false }
    else if (op[2] instanceof Uint8Array) applied = { del: false, key, value: op[2], binary: true }
    else throw new Error('malformed log entry value')
    if (ctx) applied.ctx = ctx
    if (options?.x !== undefined) {
      if (applied.del || !Number.isSafeInteger(options.x) || options.x < 0) throw new Error('malformed expiry time')
      applied.expiresAt = options.x
    }
    return applied
  })
  return {
    raw,
    seq: entry.seq,
    epoch: entry.epoch,
    origin: entry.origin,
    originSeq: entry.originSeq,
    hlc: entry.hlc,
    identityAt: identityOffset(raw),
    ops,
  }
}

function checkContext(ctx: unknown): Record<string, number> {
  if (ctx === null || typeof ctx !== 'object' || Array.isArray(ctx)) throw new Error('malformed causal context')
  for (const counter of Object.values(ctx)) {
    if (!Number.isSafeInteger(counter) || (counter as number) < 0) throw new Error('malformed causal context counter')
  }
  return ctx as Record<string, number>
}

/** Offset of the identity (the origin field) in an encoded entry. */
export function identityOffset(raw: Buffer): number {
  const r = readerOf(raw)
  if (r.arrayLength() === null || r.number() === null || r.number() === null) {
    throw new Error('malformed log entry: placement')
  }
  return r.offset
}

/**
 * An entry's origin and counter, read without its ops (a peer feed filters
 * its log by them); null when the entry is not in tandem's own encoding.
 */
export function peekIdentity(raw: Buffer): { origin: string; originSeq: number } | null {
  const r = readerOf(raw)
  if (r.arrayLength() === null || r.number() === null || r.number() === null) return null
  const origin = r.origin()
  const originSeq = r.number()
  if (origin === null || originSeq === null) return null
  return { origin, originSeq }
}

/**
 * An entry's HLC timestamp, read without its ops or any object made (a
 * peer link checks every entry of a frame against its clock before the
 * store reads the entries); null when the entry is not in tandem's own
 * encoding.
 */
export function peekHlc(raw: Buffer): number | null {
  const r = readerOf(raw)
  if (r.arrayLength() !== 6 || r.number() === null || r.number() === null || !r.skipString()) return null
  if (r.number() === null) return null
  return r.number()
}

/**
 * The one Reader every read here uses, started anew on each entry: the
 * reads run to their end with nothing called back in between, and a peer's
 * entry is read twice (its HLC as it arrives, the whole when its group is
 * built), so a Reader each time was one more object per read.
 */
let shared: Reader | null = null

function readerOf(raw: Buffer): Reader {
  if (shared === null) shared = new Reader()
  shared.reset(raw)
  return shared
}

/** The last origin read from bytes, so that a run of entries from one origin builds its string once. */
let lastOriginBytes: Buffer = Buffer.alloc(0)
let lastOrigin = ''

function originOf(bytes: Buffer): string {
  if (!bytes.equals(lastOriginBytes)) {
    // The same object as the version vector's key for it: its Map finds it by identity (interned).
    lastOrigin = interned(bytes.toString('utf8'))
    lastOriginBytes = Buffer.from(bytes)
  }
  return lastOrigin
}

/**
 * Reads `[seq, epoch, origin, originSeq, hlc, ops]` as tandem's encoder
 * writes it (see log-entry.ts), or returns null for anything else (an op
 * with options, an encoding it does not expect), which the full decoder
 * then handles.
 */
export function scanEntry(raw: Buffer): ApplyEntry | null {
  const r = readerOf(raw)
  if (r.arrayLength() !== 6) return null
  const seq = r.number()
  const epoch = r.number()
  const identityAt = r.offset
  const origin = r.origin()
  if (origin === null) return null
  const originSeq = r.number()
  const hlc = r.number()
  const count = r.arrayLength()
  if (seq === null || epoch === null || originSeq === null || hlc === null || count === null) return null
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(epoch) || !Number.isSafeInteger(originSeq)) return null
  const ops: ApplyOp[] = new Array(count)
  for (let i = 0; i < count; i++) {
    const length = r.arrayLength()
    const type = r.number()
    const key = r.string()
    if (key === null) return null
    if (type === OP_DEL && length === 2) {
      ops[i] = { del: true, key, value: null, binary: false }
      continue
    }
    if (type !== OP_PUT || length !== 3) return null
    const value = r.string()
    if (value !== null) {
      ops[i] = { del: false, key, value, binary: false }
      continue
    }
    const bytes = r.binary()
    if (bytes === null) return null
    ops[i] = { del: false, key, value: bytes, binary: true }
  }
  if (!r.done) return null
  return { raw, seq, epoch, origin, originSeq, hlc, identityAt, ops }
}

/** Whether buf[at, at + length) holds the bytes of `other` (of that length). */
function sameBytes(buf: Buffer, at: number, other: Buffer, length: number): boolean {
  for (let i = 0; i < length; i++) if (buf[at + i] !== other[i]) return false
  return true
}

/** The few msgpack forms a log entry uses; every read returns null (and moves nothing) on another form or past the end. */
class Reader {
  private at = 0
  private buf: Buffer = Buffer.alloc(0)

  /** Starts reading `buf` from its first byte. */
  reset(buf: Buffer): void {
    this.buf = buf
    this.at = 0
    this.headerBytes = 0
  }

  get done(): boolean {
    return this.at === this.buf.length
  }

  get offset(): number {
    return this.at
  }

  private has(n: number): boolean {
    return this.at + n <= this.buf.length
  }

  arrayLength(): number | null {
    if (!this.has(1)) return null
    const b = this.buf[this.at]
    if (b >= 0x90 && b <= 0x9f) {
      this.at++
      return b & 0x0f
    }
    if (b === 0xdc && this.has(3)) {
      this.at += 3
      return this.buf.readUInt16BE(this.at - 2)
    }
    if (b === 0xdd && this.has(5)) {
      this.at += 5
      return this.buf.readUInt32BE(this.at - 4)
    }
    return null
  }

  /** A non-negative integer or a float64 (how large integers such as HLC timestamps are encoded). */
  number(): number | null {
    if (!this.has(1)) return null
    const b = this.buf[this.at]
    if (b <= 0x7f) {
      this.at++
      return b
    }
    let size = 0
    let value = 0
    switch (b) {
      case 0xcc:
        size = 1
        if (this.has(2)) value = this.buf[this.at + 1]
        break
      case 0xcd:
        size = 2
        if (this.has(3)) value = this.buf.readUInt16BE(this.at + 1)
        break
      case 0xce:
        size = 4
        if (this.has(5)) value = this.buf.readUInt32BE(this.at + 1)
        break
      case 0xcf:
        size = 8
        if (this.has(9)) value = this.buf.readUInt32BE(this.at + 1) * 0x1_0000_0000 + this.buf.readUInt32BE(this.at + 5)
        break
      case 0xcb:
        size = 8
        if (this.has(9)) value = this.buf.readDoubleBE(this.at + 1)
        break
      default:
        return null
    }
    if (!this.has(1 + size)) return null
    this.at += 1 + size
    return value
  }

  /** Bytes of the last string header read by stringLength(). */
  private headerBytes = 0

  /** A string's length (its header's size in headerBytes), or -1 on another form or past the end. */
  private stringLength(): number {
    if (!this.has(1)) return -1
    const b = this.buf[this.at]
    let header = 0
    let length = -1
    if (b >= 0xa0 && b <= 0xbf) {
      header = 1
      length = b & 0x1f
    } else if (b === 0xd9 && this.has(2)) {
      header = 2
      length = this.buf[this.at + 1]
    } else if (b === 0xda && this.has(3)) {
      header = 3
      length = this.buf.readUInt16BE(this.at + 1)
    } else if (b === 0xdb && this.has(5)) {
      header = 5
      length = this.buf.readUInt32BE(this.at + 1)
    }
    this.headerBytes = header
    return length >= 0 && this.has(this.headerBytes + length) ? length : -1
  }

  /**
   * A string's bytes, only if they are valid UTF-8: the decoder would turn
   * anything else into replacement characters, and the replica must store
   * what that reading gives (tandem's encoder only ever writes valid UTF-8).
   */
  string(): Buffer | null {
    const length = this.stringLength()
    if (length < 0) return null
    const start = this.at + this.headerBytes
    const bytes = this.buf.subarray(start, start + length)
    if (!isUtf8(bytes)) return null
    this.at = start + length
    return bytes
  }

  /** Past a string, its bytes unchecked; false (nothing moved) on another form or past the end. */
  skipString(): boolean {
    const length = this.stringLength()
    if (length < 0) return false
    this.at += this.headerBytes + length
    return true
  }

  /**
   * The origin field, as string(), as a JavaScript string: compared in
   * place with the last origin read (already checked and built), which a
   * run of one origin's entries repeats, so that only a new origin is
   * sliced, checked and decoded. Compared byte by byte here: an origin is
   * a few dozen bytes, and Buffer#compare with ranges checks its five
   * arguments and crosses into C++ for them (most of the time this read
   * took).
   */
  origin(): string | null {
    const length = this.stringLength()
    if (length < 0) return null
    const start = this.at + this.headerBytes
    if (length === lastOriginBytes.length && sameBytes(this.buf, start, lastOriginBytes, length)) {
      this.at = start + length
      return lastOrigin
    }
    const bytes = this.string()
    return bytes === null ? null : originOf(bytes)
  }

  binary(): Buffer | null {
    if (!this.has(1)) return null
    const b = this.buf[this.at]
    let header = 0
    let length = 0
    if (b === 0xc4 && this.has(2)) [header, length] = [2, this.buf[this.at + 1]]
    else if (b === 0xc5 && this.has(3)) [header, length] = [3, this.buf.readUInt16BE(this.at + 1)]
    else if (b === 0xc6 && this.has(5)) [header, length] = [5, this.buf.readUInt32BE(this.at + 1)]
    else return null
    if (!this.has(header + length)) return null
    const start = this.at + header
    this.at = start + length
    return this.buf.subarray(start, this.at)
  }
}
