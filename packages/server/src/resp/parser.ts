/**
 * Incremental, bounded parser of Redis requests: arrays of bulk strings
 * (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) and inline commands (`GET k\r\n`).
 *
 * It is pulled, one command at a time (`next()`), rather than pushing all
 * it can: the connection asks for a command only when it may run one, so
 * the bytes a paused connection holds are one socket read plus one partial
 * command, and an AUTH takes effect before the command after it is parsed
 * (unauthenticated clients get the tighter limits, as in Redis).
 *
 * Every length is checked when its header is read, before any byte of the
 * data is buffered: a bulk or a command over its limit (a declared 1 GB
 * bulk) is a protocol error at once, never a 1 GB buffer. A command is kept
 * as offsets into one buffer while it arrives, so bytes that come in many
 * reads are copied once, when the command is complete, and a command split
 * across reads is not parsed again from its start.
 *
 * A protocol error is final: the connection answers it and closes, as
 * Redis does, since the stream cannot be resynchronised.
 */

export interface RespLimits {
  /** Most bytes in one bulk string. */
  maxBulkBytes: number
  /** Most bytes in one command (all its arguments and headers). */
  maxCommandBytes: number
  /** Most arguments in one command. */
  maxArgs: number
  /** Longest inline command line. */
  maxInlineBytes: number
}

/** Redis's limits for a client that has not authenticated yet. */
export const UNAUTHENTICATED_LIMITS = { maxArgs: 10, maxBulkBytes: 16384 } as const

/** Longest `*N` or `$N` header line; Redis allows 64 KiB, a number needs 20 bytes. */
const MAX_HEADER_LINE = 64

export class RespProtocolError extends Error {}

const CR = 13
const LF = 10
const STAR = 42
const DOLLAR = 36

export class RespParser {
  /** Unconsumed bytes start at `pos` of `buf`; `more` holds reads not yet joined to it. */
  private buf: Buffer = Buffer.alloc(0)
  private pos = 0
  private more: Buffer[] = []
  private moreBytes = 0
  /** Bytes `buf` (from pos) plus `more` must reach before parsing can progress. */
  private needed = 0
  // The multibulk command being parsed, as offsets from `pos`.
  private argc = -1
  private readonly starts: number[] = []
  private readonly ends: number[] = []
  /** Offset from `pos` where parsing resumes. */
  private scan = 0
  private commandBytes = 0
  private failed: RespProtocolError | null = null
  /** The most bytes this parser has held at once. */
  peakBytes = 0

  constructor(public limits: RespLimits) {}

  /** Bytes held: unparsed input, including a partial command. */
  get bufferedBytes(): number {
    return this.buf.length - this.pos + this.moreBytes
  }

  /** Whether bytes wait to be parsed (a complete command may be among them). */
  get hasInput(): boolean {
    return this.bufferedBytes > 0 && this.bufferedBytes >= this.needed
  }

  push(chunk: Buffer): void {
    if (this.failed) return
    if (this.pos === this.buf.length && this.moreBytes === 0) {
      this.buf = chunk
      this.pos = 0
    } else {
      this.more.push(chunk)
      this.moreBytes += chunk.length
    }
    const held = this.bufferedBytes
    if (held > this.peakBytes) this.peakBytes = held
  }

  /**
   * The next complete command (its arguments; they may share memory with
   * the input, so use them before the next push), or null when more bytes
   * are needed. Throws RespProtocolError on a malformed stream.
   */
  next(): Buffer[] | null {
    if (this.failed) throw this.failed
    if (this.bufferedBytes < this.needed || this.bufferedBytes === 0) return null
    if (this.moreBytes > 0) this.join()
    try {
      for (;;) {
        if (this.pos >= this.buf.length) return null
        const command = this.buf[this.pos] === STAR ? this.multibulk() : this.inline()
        if (command === null) return null
        if (command.length > 0) return command
        // An empty line or `*0`: nothing to run, keep reading.
      }
    } catch (err) {
      if (err instanceof RespProtocolError) {
        this.failed = err
        this.release()
      }
      throw err
    }
  }

  /** Drops everything held (the connection is closing). */
  release(): void {
    this.buf = Buffer.alloc(0)
    this.pos = 0
    this.more = []
    this.moreBytes = 0
  }

  private join(): void {
    this.buf = Buffer.concat([this.buf.subarray(this.pos), ...this.more])
    this.pos = 0
    this.more = []
    this.moreBytes = 0
  }

  private fail(message: string): never {
    throw new RespProtocolError(`Protocol error: ${message}`)
  }

  /** Index of the CR of a CRLF at or after `from`, searching at most `max` bytes; -1 if absent yet. */
  private lineEnd(from: number, max: number, tooLong: string): number {
    const limit = Math.min(this.buf.length, from + max + 2)
    const end = this.buf.indexOf(LF, from)
    if (end === -1 || end >= limit) {
      if (this.buf.length - from > max + 1) this.fail(tooLong)
      this.needed = this.buf.length - this.pos + 1
      return -1
    }
    if (end === from || this.buf[end - 1] !== CR) this.fail(`expected CRLF at the end of a header line`)
    return end - 1
  }

  private integer(from: number, to: number, what: string): number {
    if (to <= from || to - from > 19) this.fail(`invalid ${what}`)
    let i = from
    let negative = false
    if (this.buf[i] === 45) {
      negative = true
      i++
      if (i === to) this.fail(`invalid ${what}`)
    }
    let n = 0
    for (; i < to; i++) {
      const c = this.buf[i] - 48
      if (c < 0 || c > 9) this.fail(`invalid ${what}`)
      n = n * 10 + c
    }
    if (!Number.isSafeInteger(n)) this.fail(`invalid ${what}`)
    return negative ? -n : n
  }

  private multibulk(): Buffer[] | null {
    const base = this.pos
    if (this.argc === -1) {
      const end = this.lineEnd(base + 1, MAX_HEADER_LINE, 'too big mbulk count string')
      if (end === -1) return null
      const argc = this.integer(base + 1, end, 'multibulk length')
      if (argc > this.limits.maxArgs) {
        this.fail(`invalid multibulk length: ${argc} arguments, the limit is ${this.limits.maxArgs}`)
      }
      if (argc < -1) this.fail('invalid multibulk length')
      this.scan = end + 2 - base
      if (argc <= 0) {
        this.consume(this.scan)
        return []
      }
      this.argc = argc
      this.commandBytes = this.scan
      this.starts.length = 0
      this.ends.length = 0
    }
    while (this.starts.length < this.argc) {
      const at = base + this.scan
      if (at >= this.buf.length) {
        this.needed = this.scan + 1
        return null
      }
      if (this.buf[at] !== DOLLAR) {
        this.fail(`expected '$', got '${printable(this.buf[at])}'`)
      }
      const end = this.lineEnd(at + 1, MAX_HEADER_LINE, 'too big bulk count string')
      if (end === -1) return null
      const length = this.integer(at + 1, end, 'bulk length')
      if (length < 0) this.fail('invalid bulk length')
      if (length > this.limits.maxBulkBytes) {
        this.fail(`invalid bulk length: ${length} bytes, the limit is ${this.limits.maxBulkBytes}`)
      }
      const dataStart = end + 2
      const total = this.commandBytes + (dataStart - at) + length + 2
      if (total > this.limits.maxCommandBytes) {
        this.fail(`command of more than ${this.limits.maxCommandBytes} bytes, the limit`)
      }
      if (dataStart + length + 2 > this.buf.length) {
        // Wait for the whole bulk; parsing resumes at this header.
        this.needed = dataStart + length + 2 - base
        return null
      }
      if (this.buf[dataStart + length] !== CR || this.buf[dataStart + length + 1] !== LF) {
        this.fail('bulk string not terminated by CRLF')
      }
      this.commandBytes = total
      this.starts.push(dataStart - base)
      this.ends.push(dataStart + length - base)
      this.scan = dataStart + length + 2 - base
    }
    const args = new Array<Buffer>(this.argc)
    for (let i = 0; i < this.argc; i++) args[i] = this.buf.subarray(base + this.starts[i], base + this.ends[i])
    this.consume(this.scan)
    this.argc = -1
    return args
  }

  private consume(bytes: number): void {
    this.pos += bytes
    this.scan = 0
    this.needed = 0
    if (this.pos === this.buf.length) {
      this.buf = Buffer.alloc(0)
      this.pos = 0
    }
  }

  private inline(): Buffer[] | null {
    const from = this.pos
    const lf = this.buf.indexOf(LF, from)
    if (lf === -1 || lf - from > this.limits.maxInlineBytes) {
      if (this.buf.length - from > this.limits.maxInlineBytes) this.fail('too big inline request')
      this.needed = this.buf.length - from + 1
      return null
    }
    const end = lf > from && this.buf[lf - 1] === CR ? lf - 1 : lf
    const args = splitInline(this.buf.subarray(from, end), this.limits.maxArgs)
    this.consume(lf + 1 - from)
    return args
  }
}

function printable(byte: number): string {
  return byte >= 32 && byte < 127 ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`
}

const SPACE = new Set([32, 9, 11, 12, 13, 10])

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 97 && c <= 102) return c - 87
  if (c >= 65 && c <= 70) return c - 55
  return -1
}

/**
 * Splits an inline command as redis-cli and Redis do: words separated by
 * spaces, "double quotes" with \n \r \t \b \a \\ \" and \xHH escapes,
 * 'single quotes' with \' only. A closing quote must be followed by a space.
 */
export function splitInline(line: Buffer, maxArgs: number): Buffer[] {
  const args: Buffer[] = []
  let i = 0
  const n = line.length
  for (;;) {
    while (i < n && SPACE.has(line[i])) i++
    if (i >= n) return args
    if (args.length >= maxArgs) {
      throw new RespProtocolError(`Protocol error: inline command of more than ${maxArgs} arguments, the limit`)
    }
    const quote = line[i] === 34 ? 34 : line[i] === 39 ? 39 : 0
    if (quote === 0) {
      const start = i
      while (i < n && !SPACE.has(line[i])) i++
      args.push(line.subarray(start, i))
      continue
    }
    i++
    const out: number[] = []
    let closed = false
    while (i < n) {
      const c = line[i]
      if (quote === 34 && c === 92 && i + 1 < n) {
        const e = line[i + 1]
        if (e === 120 && i + 3 < n && hexValue(line[i + 2]) >= 0 && hexValue(line[i + 3]) >= 0) {
          out.push(hexValue(line[i + 2]) * 16 + hexValue(line[i + 3]))
          i += 4
          continue
        }
        out.push(e === 110 ? 10 : e === 114 ? 13 : e === 116 ? 9 : e === 98 ? 8 : e === 97 ? 7 : e)
        i += 2
        continue
      }
      if (quote === 39 && c === 92 && i + 1 < n && line[i + 1] === 39) {
        out.push(39)
        i += 2
        continue
      }
      if (c === quote) {
        if (i + 1 < n && !SPACE.has(line[i + 1])) break
        closed = true
        i++
        break
      }
      out.push(c)
      i++
    }
    if (!closed) throw new RespProtocolError('Protocol error: unbalanced quotes in request')
    args.push(Buffer.from(out))
  }
}
