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
 * bulk) is a protocol error at once, never a 1 GB buffer. Parsing resumes
 * where it stopped when a command arrives in several reads: the arguments
 * already read are kept (slices of the reads they came in), and only the
 * unparsed rest is joined to the next read, so a command is never parsed
 * twice, nor a large bulk copied more than once.
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

/** What the parser holds between commands: shared, so a drained read or a finished command allocates nothing. */
const NO_BYTES = Buffer.alloc(0)
const NO_ARGS: Buffer[] = []

export class RespParser {
  /** Unparsed bytes start at `pos` of `buf`; `more` holds reads not yet joined to it. */
  private buf: Buffer = NO_BYTES
  private pos = 0
  private more: Buffer[] = []
  private moreBytes = 0
  /** Bytes `buf` (from pos) plus `more` must reach before parsing can progress. */
  private needed = 0
  // The multibulk command being parsed: its declared length, the arguments
  // read so far (slices of the buffers they arrived in) and their bytes.
  private argc = -1
  private args: Buffer[] = NO_ARGS
  private nargs = 0
  private commandBytes = 0
  /** Where the header line that `header()` just read ends (after its CRLF). */
  private lineNext = 0
  private failed: RespProtocolError | null = null
  /** The most bytes this parser has held at once. */
  peakBytes = 0

  constructor(public limits: RespLimits) {}

  /** Bytes held: unparsed input and the arguments of a partly received command. */
  get bufferedBytes(): number {
    return this.buf.length - this.pos + this.moreBytes + (this.argc === -1 ? 0 : this.commandBytes)
  }

  /** Whether bytes wait to be parsed (a complete command may be among them). */
  get hasInput(): boolean {
    const unparsed = this.buf.length - this.pos + this.moreBytes
    return unparsed > 0 && unparsed >= this.needed
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
    try {
      for (;;) {
        if (!this.hasInput) return null
        // The current buffer cannot complete what is pending: bring in more.
        if (this.moreBytes > 0 && this.buf.length - this.pos < Math.max(this.needed, 1)) this.join()
        this.needed = 0
        const command = this.parseOne()
        if (command !== null && command.length > 0) return command
        // null: more bytes are needed (`needed` says how many); []: an empty line or `*0`.
      }
    } catch (err) {
      if (err instanceof RespProtocolError) {
        this.failed = err
        this.release()
      }
      throw err
    }
  }

  /** One command from the current buffer; null when it needs more bytes, [] for nothing to run. */
  private parseOne(): Buffer[] | null {
    if (this.argc === -1) {
      if (this.pos >= this.buf.length) {
        this.needed = 1
        return null
      }
      if (this.buf[this.pos] !== STAR) return this.inline()
      if (!this.multibulkHeader()) return null
      if (this.argc === -1) return []
    }
    return this.bulks()
  }

  /** Drops everything held (the connection is closing). */
  release(): void {
    this.buf = NO_BYTES
    this.pos = 0
    this.more = []
    this.moreBytes = 0
    this.args = NO_ARGS
    this.argc = -1
  }

  /**
   * Joins the unparsed tail of the buffer and the reads that came after it
   * into one buffer. The tail is at most one pending element (parsing
   * resumes at the element it stopped in), so this copies little beyond
   * the new reads themselves, and a bulk that arrives in many reads is
   * joined once, when all of it is in (`needed`).
   */
  private join(): void {
    if (this.pos === this.buf.length && this.more.length === 1) this.buf = this.more[0]
    else this.buf = Buffer.concat([this.buf.subarray(this.pos), ...this.more])
    this.pos = 0
    this.more = []
    this.moreBytes = 0
  }

  private fail(message: string): never {
    throw new RespProtocolError(`Protocol error: ${message}`)
  }

  /**
   * Reads the integer of the header line whose digits start at `from`
   * (after its type byte) in one pass: its value, with lineNext set past
   * the CRLF; null when the line is incomplete (needed is then set).
   */
  private header(from: number, what: string, tooLong: string): number | null {
    const buf = this.buf
    const end = Math.min(buf.length, from + MAX_HEADER_LINE)
    let i = from
    const negative = i < end && buf[i] === 45
    if (negative) i++
    const digitsFrom = i
    let n = 0
    let valid = true
    for (; i < end; i++) {
      const d = buf[i] - 48
      if (d === CR - 48) break
      if (d < 0 || d > 9) valid = false
      n = n * 10 + d
    }
    if (i === end) {
      if (end - from >= MAX_HEADER_LINE) this.fail(tooLong)
      this.needed = buf.length - this.pos + 1
      return null
    }
    if (!valid || i === digitsFrom || i - digitsFrom > 18) this.fail(`invalid ${what}`)
    if (i + 1 >= buf.length) {
      this.needed = buf.length - this.pos + 1
      return null
    }
    if (buf[i + 1] !== LF) this.fail(`expected CRLF at the end of a ${what} line`)
    this.lineNext = i + 2
    return negative ? -n : n
  }

  /** `*N`: sets up the command (argc stays -1 for an empty one). False when the line is incomplete. */
  private multibulkHeader(): boolean {
    const argc = this.header(this.pos + 1, 'multibulk length', 'too big mbulk count string')
    if (argc === null) return false
    if (argc > this.limits.maxArgs) {
      this.fail(`invalid multibulk length: ${argc} arguments, the limit is ${this.limits.maxArgs}`)
    }
    if (argc < -1) this.fail('invalid multibulk length')
    this.commandBytes = this.lineNext - this.pos
    this.consumeTo(this.lineNext)
    if (argc <= 0) return true
    this.argc = argc
    this.args = new Array<Buffer>(argc)
    this.nargs = 0
    return true
  }

  /** The command's bulk strings, resuming where the last call stopped; null until all are in. */
  private bulks(): Buffer[] | null {
    while (this.nargs < this.argc) {
      const buf = this.buf
      const at = this.pos
      if (at >= buf.length) {
        this.needed = 1
        return null
      }
      if (buf[at] !== DOLLAR) this.fail(`expected '$', got '${printable(buf[at])}'`)
      const length = this.header(at + 1, 'bulk length', 'too big bulk count string')
      if (length === null) return null
      if (length < 0) this.fail('invalid bulk length')
      if (length > this.limits.maxBulkBytes) {
        this.fail(`invalid bulk length: ${length} bytes, the limit is ${this.limits.maxBulkBytes}`)
      }
      const dataStart = this.lineNext
      const total = this.commandBytes + (dataStart - at) + length + 2
      if (total > this.limits.maxCommandBytes) {
        this.fail(`command of more than ${this.limits.maxCommandBytes} bytes, the limit`)
      }
      const dataEnd = dataStart + length
      if (dataEnd + 2 > buf.length) {
        // Wait for the whole bulk; parsing resumes at its header.
        this.needed = dataEnd + 2 - at
        return null
      }
      if (buf[dataEnd] !== CR || buf[dataEnd + 1] !== LF) this.fail('bulk string not terminated by CRLF')
      // A command named GET or SET (most of a pipelined load) gets a shared
      // name, not a view of its own; Buffer#slice shares memory like
      // subarray, and builds the view directly instead of through TypedArray
      // species lookup: the parser's hottest line.
      // (The index is read first: `args[nargs++] = nargs === 0 ...` would test the incremented count, and the
      // shared name was never given.)
      const index = this.nargs
      this.args[index] = index === 0 && length === 3 ? commandName(buf, dataStart) : buf.slice(dataStart, dataEnd)
      this.nargs = index + 1
      this.commandBytes = total
      this.consumeTo(dataEnd + 2)
    }
    const args = this.args
    this.args = NO_ARGS
    this.argc = -1
    return args
  }

  private consumeTo(index: number): void {
    this.pos = index
    if (index === this.buf.length) {
      this.buf = NO_BYTES
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
    this.consumeTo(lf + 1)
    return args
  }
}

/** The names commandName shares: the bytes of GET and SET as any client sends them (no one's input). */
const GET_NAME = Buffer.from('GET')
const SET_NAME = Buffer.from('SET')

/** A 3-byte command name at `at`: GET_NAME or SET_NAME when it is one of those in any case, else a view of it. */
function commandName(buf: Buffer, at: number): Buffer {
  if ((buf[at + 1] | 0x20) === 0x65 && (buf[at + 2] | 0x20) === 0x74) {
    const first = buf[at] | 0x20
    if (first === 0x67) return GET_NAME
    if (first === 0x73) return SET_NAME
  }
  return buf.slice(at, at + 3)
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
