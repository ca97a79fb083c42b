/**
 * Replies, and the writer that turns them into RESP2 or RESP3 bytes.
 *
 * Commands answer with plain values where the mapping is obvious (a string
 * or Uint8Array is a bulk string, a number an integer, null a null, an
 * array an array) and with the tagged forms below for the rest. Replies are
 * encoded only when they are written, in order, into one buffer per turn:
 * a pipelined connection's replies leave in one socket write.
 */

export type Reply =
  | string
  | Uint8Array
  | number
  | null
  | Reply[]
  | SimpleString
  | ErrorReply
  | MapReply
  | SetReply
  | VerbatimReply
  | PushReply
  | BooleanReply
  | NullArrayReply
  | Replies

export class SimpleString {
  constructor(readonly text: string) {}
}

export class ErrorReply {
  /** `text` starts with the error's prefix: `ERR ...`, `READONLY ...`. */
  constructor(readonly text: string) {}
}

/** A map in RESP3, a flat array of keys and values in RESP2. */
export class MapReply {
  constructor(readonly entries: [Reply, Reply][]) {}
}

/** A set in RESP3, an array in RESP2. */
export class SetReply {
  constructor(readonly items: Reply[]) {}
}

/** A verbatim string (`=`) in RESP3, a bulk string in RESP2. */
export class VerbatimReply {
  constructor(
    readonly text: string,
    readonly format = 'txt',
  ) {}
}

/** An out-of-band push (`>`) in RESP3, an array in RESP2 (pub/sub messages). */
export class PushReply {
  constructor(readonly items: Reply[]) {}
}

/** Several replies to one command, written one after the other (SUBSCRIBE a b: one per channel). */
export class Replies {
  constructor(readonly items: Reply[]) {}
}

/** A boolean in RESP3, the integer 1 or 0 in RESP2. */
class BooleanReply {
  constructor(readonly value: boolean) {}
}

/** The RESP2 null array (`*-1`), which some replies use instead of the null bulk string; null in RESP3. */
class NullArrayReply {}

export const OK = new SimpleString('OK')
export const NULL_ARRAY = new NullArrayReply()

/** One error line: CR and LF would end the reply early. */
export function errorReply(prefix: string, message: string): ErrorReply {
  return new ErrorReply(`${prefix} ${message.replace(/[\r\n]+/g, ' ')}`)
}

const INITIAL_BYTES = 16 * 1024
/** Longest string whose bulk header is guessed (guessedBulk): room is made for 3 bytes a character. */
const GUESS_SIZE_CHARS = 64 * 1024
const CRLF = Buffer.from('\r\n')
/** The longest bulk header: `$`, a length's digits and CRLF. */
const MAX_HEADER_BYTES = 24
const NULL2 = Buffer.from('$-1\r\n')
const NULL3 = Buffer.from('_\r\n')
const NULL_ARRAY2 = Buffer.from('*-1\r\n')
const OK_BYTES = Buffer.from('+OK\r\n')
const DOLLAR = 36
const PLUS = 43
const COLON = 58
const STAR = 42
const CR = 13
const LF = 10

/**
 * Appends encoded replies to a buffer; take() hands back what was written
 * since the last take as a view of it, which is never written again: the
 * next replies go on after it, and a buffer with no room left is replaced
 * (the views handed out keep the old one while the socket holds them).
 * So a flush of replies costs no copy and no allocation of its own, only
 * one buffer for every INITIAL_BYTES of replies.
 */
export class RespWriter {
  private buf = Buffer.allocUnsafeSlow(INITIAL_BYTES)
  /** Where the bytes not yet taken start, and where the next byte goes. */
  private start = 0
  private len = 0

  get length(): number {
    return this.len - this.start
  }

  /** The bytes written since the last take, as a view the socket may keep (never written again). */
  take(): Buffer {
    const out = this.buf.subarray(this.start, this.len)
    this.start = this.len
    // A huge reply does not keep its buffer for the rest of the connection.
    if (this.buf.length > 4 * 1024 * 1024) this.replace(INITIAL_BYTES)
    return out
  }

  private reserve(bytes: number): void {
    if (this.len + bytes <= this.buf.length) return
    const written = this.len - this.start
    let size = INITIAL_BYTES
    while (size < written + bytes) size *= 2
    this.replace(size)
  }

  /** A new buffer of `size` bytes, with what was written and not yet taken moved over. */
  private replace(size: number): void {
    const next = Buffer.allocUnsafeSlow(size)
    const written = this.len - this.start
    if (written > 0) this.buf.copy(next, 0, this.start, this.len)
    this.buf = next
    this.start = 0
    this.len = written
  }

  private ascii(text: string): void {
    this.reserve(text.length)
    this.len += this.buf.write(text, this.len, 'latin1')
  }

  private bytes(data: Uint8Array): void {
    this.reserve(data.length)
    this.buf.set(data, this.len)
    this.len += data.length
  }

  /**
   * A type byte, a non-negative integer and CRLF (`$100\r\n`, `:3\r\n`),
   * written byte by byte: the header of every bulk and integer reply,
   * without a string built and encoded for it.
   */
  private header(type: number, n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) return this.ascii(`${String.fromCharCode(type)}${n}\r\n`)
    let digits = 1
    for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++
    this.reserve(digits + 3)
    const buf = this.buf
    let at = this.len
    buf[at] = type
    at += digits
    for (let x = n, i = at; i > this.len; i--) {
      buf[i] = 48 + (x % 10)
      x = Math.floor(x / 10)
    }
    buf[at + 1] = CR
    buf[at + 2] = LF
    this.len = at + 3
  }

  /** A bulk string holding `value` (UTF-8 for strings). */
  bulk(value: string | Uint8Array): void {
    if (typeof value === 'string' && value.length <= GUESS_SIZE_CHARS) return this.guessedBulk(value)
    if (typeof value === 'string') {
      const size = Buffer.byteLength(value, 'utf8')
      this.header(DOLLAR, size)
      this.reserve(size + 2)
      this.len += this.buf.write(value, this.len, 'utf8')
    } else {
      this.header(DOLLAR, value.length)
      this.reserve(value.length + 2)
      this.buf.set(value, this.len)
      this.len += value.length
    }
    this.buf[this.len++] = CR
    this.buf[this.len++] = LF
  }

  /**
   * A string's bulk written with the header of one byte a character (the
   * ASCII values most are), so its UTF-8 size is not counted in a pass of
   * its own; a string with other characters is moved to the header its
   * size needs (at most one digit longer: a character is at most 3 bytes).
   */
  private guessedBulk(value: string): void {
    // Room for all of it first: a new buffer moves what is written, and the offsets below must hold.
    this.reserve(MAX_HEADER_BYTES + 3 * value.length + 2)
    const start = this.len
    this.header(DOLLAR, value.length)
    const guessedAt = this.len
    const size = this.buf.write(value, guessedAt, 'utf8')
    if (size !== value.length) {
      const guessedDigits = guessedAt - start - 3
      const digits = String(size).length
      if (digits !== guessedDigits) this.buf.copyWithin(guessedAt + digits - guessedDigits, guessedAt, guessedAt + size)
      this.len = start
      this.header(DOLLAR, size)
    }
    this.len += size
    this.buf[this.len++] = CR
    this.buf[this.len++] = LF
  }

  write(reply: Reply, resp3: boolean): void {
    if (typeof reply === 'string' || reply instanceof Uint8Array) return this.bulk(reply)
    if (reply === OK) return this.bytes(OK_BYTES)
    if (reply === null) return this.bytes(resp3 ? NULL3 : NULL2)
    if (typeof reply === 'number') return this.integer(reply)
    if (Array.isArray(reply)) {
      this.header(STAR, reply.length)
      for (const item of reply) this.write(item, resp3)
      return
    }
    if (reply instanceof SimpleString) return this.ascii(`+${reply.text}\r\n`)
    if (reply instanceof ErrorReply) {
      const text = Buffer.from(reply.text, 'utf8')
      this.ascii('-')
      this.bytes(text)
      return this.bytes(CRLF)
    }
    if (reply instanceof MapReply) {
      if (resp3) this.ascii(`%${reply.entries.length}\r\n`)
      else this.ascii(`*${reply.entries.length * 2}\r\n`)
      for (const [k, v] of reply.entries) {
        this.write(k, resp3)
        this.write(v, resp3)
      }
      return
    }
    if (reply instanceof SetReply) {
      this.ascii(`${resp3 ? '~' : '*'}${reply.items.length}\r\n`)
      for (const item of reply.items) this.write(item, resp3)
      return
    }
    if (reply instanceof PushReply) {
      this.ascii(`${resp3 ? '>' : '*'}${reply.items.length}\r\n`)
      for (const item of reply.items) this.write(item, resp3)
      return
    }
    if (reply instanceof VerbatimReply) {
      if (!resp3) return this.bulk(reply.text)
      const body = Buffer.from(`${reply.format}:${reply.text}`, 'utf8')
      this.ascii(`=${body.length}\r\n`)
      this.bytes(body)
      return this.bytes(CRLF)
    }
    if (reply instanceof BooleanReply) {
      return this.ascii(resp3 ? (reply.value ? '#t\r\n' : '#f\r\n') : reply.value ? ':1\r\n' : ':0\r\n')
    }
    if (reply instanceof Replies) {
      for (const item of reply.items) this.write(item, resp3)
      return
    }
    if (reply instanceof NullArrayReply) return this.bytes(resp3 ? NULL3 : NULL_ARRAY2)
  }

  /** `reply` `count` times: the replies of a run of commands answered alike (SETs all OK). */
  repeat(reply: Reply, count: number, resp3: boolean): void {
    if (reply !== OK) {
      for (let i = 0; i < count; i++) this.write(reply, resp3)
      return
    }
    this.reserve(5 * count)
    const buf = this.buf
    let at = this.len
    for (let i = 0; i < count; i++) {
      buf[at++] = PLUS
      buf[at++] = 79 // O
      buf[at++] = 75 // K
      buf[at++] = CR
      buf[at++] = LF
    }
    this.len = at
  }

  private integer(n: number): void {
    if (n >= 0) return this.header(COLON, n)
    this.ascii(`:${n}\r\n`)
  }
}
