import { isUtf8 } from 'node:buffer'

/**
 * RFC 6455 framing for the client API's sockets, read straight from the
 * socket's chunks and written with the header built in place. The client
 * API answers one small request with one small reply, millions of times:
 * ws's Receiver (a Writable stream fed by the socket's Readable, a message
 * event per frame) was a large share of each request's cost. Replication,
 * peer links, watches, snapshots and the console keep ws.
 *
 * What a client may send, as RFC 6455 section 5 says and ws enforces:
 * masked frames only; no RSV bit (no extension is negotiated: the node
 * offers no permessage-deflate); data opcodes 1 (text) and 2 (binary),
 * continued by opcode 0 until FIN; control frames 8 (close), 9 (ping) and
 * 10 (pong), unfragmented, at most 125 bytes, allowed between the
 * fragments of a message. Anything else is a protocol error (1002). A
 * message whose declared length, alone or with its fragments so far,
 * passes the frame limit is refused (1009) as soon as its header is read,
 * before any of its payload is held.
 */

/** Close codes of the framing layer. */
export const WS_CLOSE = {
  NORMAL: 1000,
  PROTOCOL_ERROR: 1002,
  NO_STATUS: 1005,
  INVALID_PAYLOAD: 1007,
  TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
} as const

const OP_CONTINUATION = 0x0
const OP_TEXT = 0x1
export const OP_BINARY = 0x2
export const OP_CLOSE = 0x8
export const OP_PING = 0x9
export const OP_PONG = 0xa

/** What the reader hands on, in the order the frames came. */
export interface FrameSink {
  onMessage(data: Buffer, isBinary: boolean): void
  onPing(data: Buffer): void
  onPong(data: Buffer): void
  /** The peer's close frame: its code (1005 when it gave none) and reason. */
  onCloseFrame(code: number, reason: string): void
  /** The peer broke the protocol: close with this code; nothing more is read. */
  onProtocolError(closeCode: number, message: string): void
}

/** Codes a close frame may carry (RFC 6455 7.4; 1004-1006 and 1015 are never sent). */
function isValidCloseCode(code: number): boolean {
  return (
    (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999)
  )
}

/**
 * Parses client frames from socket chunks as they come. A frame found
 * whole in one chunk is unmasked in place and handed on as a view of it;
 * only a frame split across chunks (or a fragmented message) is copied
 * together, once, when its last byte arrives.
 */
export class FrameReader {
  /** Chunks (or their tails) not parsed yet, and their bytes. */
  private chunks: Buffer[] = []
  private buffered = 0
  /** The header of the frame whose payload is awaited; -1 while a header is awaited. */
  private opcode = -1
  private fin = false
  private payloadLength = 0
  private readonly mask = Buffer.alloc(4)
  /**
   * The data message being assembled from fragments: its opcode (0 when
   * none), and its bytes so far copied into one buffer that grows by
   * doubling up to the frame limit. Copied, not kept as the fragments
   * came: a fragment read in place is a view that keeps its whole socket
   * chunk alive, so one-byte fragments each riding in a 64 KiB chunk of
   * pongs would hold 64 KiB per byte counted; and a list of fragments grows
   * by one slot for every empty one, without a bound.
   */
  private messageOpcode = 0
  private assembly: Buffer = EMPTY
  /** Where small chunks are copied (see hold), and its bytes in use. */
  private scratch: Buffer = EMPTY
  private scratchUsed = 0
  private fragmentBytes = 0
  /** Set once a close frame was read or the protocol broken: nothing more is parsed. */
  private done = false

  constructor(
    private readonly sink: FrameSink,
    /** The largest message accepted (--max-frame-bytes). */
    private readonly maxPayload: number,
  ) {}

  /** Whether a fragmented message is part read. */
  get assembling(): boolean {
    return this.messageOpcode !== 0
  }

  /** Bytes held for frames not yet whole, with the room of the message being assembled. */
  get heldBytes(): number {
    return this.buffered + this.assembly.length
  }

  push(chunk: Buffer): void {
    if (this.done || chunk.length === 0) return
    if (this.buffered === 0 && this.opcode === -1 && this.messageOpcode === 0) {
      const at = this.readWholeFrames(chunk)
      if (at === chunk.length) return
      if (at > 0) chunk = chunk.subarray(at)
    }
    this.hold(chunk)
    while (!this.done) {
      if (this.opcode === -1) {
        if (!this.readHeader()) return
      } else {
        if (this.buffered < this.payloadLength) return
        this.readPayload()
      }
    }
  }

  /**
   * Keeps a chunk until the frame it carries is whole. A small chunk behind
   * others is copied into a buffer of the reader's own: a frame trickling
   * in a few bytes per read would otherwise hold a Buffer object (well over
   * 100 bytes of memory) per byte or two counted against the limits.
   */
  private hold(chunk: Buffer): void {
    this.buffered += chunk.length
    const n = this.chunks.length
    if (chunk.length >= SMALL_CHUNK || n === 0) {
      this.chunks.push(chunk)
      return
    }
    const last = this.chunks[n - 1]
    const scratch = this.scratch
    // The last chunk held ends where the scratch's bytes end, with room after: it grows in place.
    if (
      last.buffer === scratch.buffer &&
      last.byteOffset + last.length === scratch.byteOffset + this.scratchUsed &&
      this.scratchUsed + chunk.length <= scratch.length
    ) {
      chunk.copy(scratch, this.scratchUsed)
      this.scratchUsed += chunk.length
      this.chunks[n - 1] = scratch.subarray(last.byteOffset - scratch.byteOffset, this.scratchUsed)
      return
    }
    // Behind a chunk of another buffer, the scratch's room is used before a
    // new scratch is made (bytes handed on as views are never written again).
    if (this.scratchUsed + chunk.length > scratch.length) {
      this.scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES)
      this.scratchUsed = 0
    }
    const from = this.scratchUsed
    chunk.copy(this.scratch, from)
    this.scratchUsed += chunk.length
    this.chunks.push(this.scratch.subarray(from, this.scratchUsed))
  }

  /**
   * The common case, read in place: whole, final, binary frames of up to
   * 64 KiB lying in the chunk from its start. Returns where the first frame
   * it leaves to the general path begins (anything else, or cut short).
   */
  private readWholeFrames(chunk: Buffer): number {
    let at = 0
    const end = chunk.length
    while (end - at >= 6) {
      if (chunk[at] !== 0x82) break
      const b1 = chunk[at + 1]
      if ((b1 & 0x80) === 0) break
      let length = b1 & 0x7f
      let p = at + 2
      if (length === 126) {
        if (end - at < 8) break
        length = (chunk[p] << 8) | chunk[p + 1]
        p += 2
      } else if (length === 127) {
        break
      }
      if (length > this.maxPayload || end - p - 4 < length) break
      const data = chunk.subarray(p + 4, p + 4 + length)
      unmask(data, chunk[p], chunk[p + 1], chunk[p + 2], chunk[p + 3])
      at = p + 4 + length
      this.sink.onMessage(data, true)
      if (this.done) return end
    }
    return at
  }

  /** Reads a frame header when all of it has arrived; false while it has not. */
  private readHeader(): boolean {
    if (this.buffered < 2) return false
    const first = this.chunks[0]
    let b0: number
    let b1: number
    if (first.length >= 2) {
      b0 = first[0]
      b1 = first[1]
    } else {
      b0 = first[0]
      b1 = this.chunks[1][0]
    }
    // What the first two bytes tell is judged before waiting for the rest of the header.
    if ((b0 & 0x70) !== 0) return this.fail(WS_CLOSE.PROTOCOL_ERROR, 'RSV1, RSV2 and RSV3 must be clear')
    if ((b1 & 0x80) === 0) return this.fail(WS_CLOSE.PROTOCOL_ERROR, 'a client frame must be masked')
    const opcode = b0 & 0x0f
    const fin = (b0 & 0x80) !== 0
    let length = b1 & 0x7f
    if (opcode >= OP_CLOSE) {
      if (opcode > OP_PONG) return this.fail(WS_CLOSE.PROTOCOL_ERROR, `invalid opcode ${opcode}`)
      if (!fin) return this.fail(WS_CLOSE.PROTOCOL_ERROR, 'a control frame must not be fragmented')
      if (length > 125) return this.fail(WS_CLOSE.PROTOCOL_ERROR, 'a control frame carries at most 125 bytes')
    } else if (opcode === OP_CONTINUATION) {
      if (this.messageOpcode === 0) {
        return this.fail(WS_CLOSE.PROTOCOL_ERROR, 'a continuation frame with no message to continue')
      }
    } else if (opcode === OP_TEXT || opcode === OP_BINARY) {
      if (this.messageOpcode !== 0) {
        return this.fail(WS_CLOSE.PROTOCOL_ERROR, `opcode ${opcode} inside a fragmented message`)
      }
    } else {
      return this.fail(WS_CLOSE.PROTOCOL_ERROR, `invalid opcode ${opcode}`)
    }
    const extended = length === 126 ? 2 : length === 127 ? 8 : 0
    const headerBytes = 2 + extended + 4
    if (this.buffered < headerBytes) return false
    const header = this.take(headerBytes)
    if (extended === 2) {
      length = header.readUInt16BE(2)
    } else if (extended === 8) {
      const high = header.readUInt32BE(2)
      // More than 2^53 - 1 cannot even be counted; anything near it is over the limit anyway.
      if (high > 0x1fffff) return this.fail(WS_CLOSE.TOO_BIG, this.tooBig())
      length = high * 0x100000000 + header.readUInt32BE(6)
    }
    // A data message's declared length, with its fragments so far, is judged before any of its payload is held.
    if (opcode < OP_CLOSE && this.fragmentBytes + length > this.maxPayload) {
      return this.fail(WS_CLOSE.TOO_BIG, this.tooBig())
    }
    header.copy(this.mask, 0, headerBytes - 4, headerBytes)
    this.opcode = opcode
    this.fin = fin
    this.payloadLength = length
    return true
  }

  private readPayload(): void {
    const opcode = this.opcode
    this.opcode = -1
    const data = this.payloadLength === 0 ? EMPTY : this.take(this.payloadLength)
    const mask = this.mask
    unmask(data, mask[0], mask[1], mask[2], mask[3])
    if (opcode >= OP_CLOSE) return this.onControl(opcode, data)
    if (opcode !== OP_CONTINUATION && this.fin) return this.deliver(opcode, data)
    if (opcode !== OP_CONTINUATION) this.messageOpcode = opcode
    this.append(data)
    if (!this.fin) return
    const whole = this.assembly.subarray(0, this.fragmentBytes)
    const messageOpcode = this.messageOpcode
    this.assembly = EMPTY
    this.fragmentBytes = 0
    this.messageOpcode = 0
    this.deliver(messageOpcode, whole)
  }

  /** Copies a fragment behind the message's bytes so far (readHeader has kept their sum under the limit). */
  private append(data: Buffer): void {
    const need = this.fragmentBytes + data.length
    if (need > this.assembly.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.maxPayload, Math.max(need, this.assembly.length * 2)))
      this.assembly.copy(grown, 0, 0, this.fragmentBytes)
      this.assembly = grown
    }
    data.copy(this.assembly, this.fragmentBytes)
    this.fragmentBytes = need
  }

  private deliver(opcode: number, data: Buffer): void {
    if (opcode === OP_BINARY) return this.sink.onMessage(data, true)
    if (!isUtf8(data)) return void this.fail(WS_CLOSE.INVALID_PAYLOAD, 'a text frame that is not UTF-8')
    this.sink.onMessage(data, false)
  }

  private onControl(opcode: number, data: Buffer): void {
    if (opcode === OP_PING) return this.sink.onPing(data)
    if (opcode === OP_PONG) return this.sink.onPong(data)
    if (data.length === 1) return void this.fail(WS_CLOSE.PROTOCOL_ERROR, 'a close frame of 1 byte')
    let code: number = WS_CLOSE.NO_STATUS
    let reason = ''
    if (data.length >= 2) {
      code = data.readUInt16BE(0)
      if (!isValidCloseCode(code)) return void this.fail(WS_CLOSE.PROTOCOL_ERROR, `invalid close code ${code}`)
      const text = data.subarray(2)
      if (!isUtf8(text)) return void this.fail(WS_CLOSE.INVALID_PAYLOAD, 'a close reason that is not UTF-8')
      reason = text.toString('utf8')
    }
    this.done = true
    this.release()
    this.sink.onCloseFrame(code, reason)
  }

  /** Takes the next n buffered bytes: a view when one chunk holds them, else a copy. */
  private take(n: number): Buffer {
    this.buffered -= n
    const first = this.chunks[0]
    if (first.length > n) {
      this.chunks[0] = first.subarray(n)
      return first.subarray(0, n)
    }
    if (first.length === n) {
      this.chunks.shift()
      return first
    }
    const out = Buffer.allocUnsafe(n)
    let at = 0
    while (at < n) {
      const chunk = this.chunks[0]
      const want = n - at
      if (chunk.length > want) {
        chunk.copy(out, at, 0, want)
        this.chunks[0] = chunk.subarray(want)
        at = n
      } else {
        chunk.copy(out, at)
        at += chunk.length
        this.chunks.shift()
      }
    }
    return out
  }

  private tooBig(): string {
    return `a message larger than --max-frame-bytes (${this.maxPayload})`
  }

  private fail(code: number, message: string): false {
    this.done = true
    this.release()
    this.sink.onProtocolError(code, message)
    return false
  }

  private release(): void {
    this.chunks = []
    this.buffered = 0
    this.assembly = EMPTY
    this.fragmentBytes = 0
  }
}

const EMPTY = Buffer.alloc(0)
/** A chunk under this many bytes, behind others, is copied rather than kept (see hold). */
const SMALL_CHUNK = 512
const SCRATCH_BYTES = 4096

function unmask(data: Buffer, m0: number, m1: number, m2: number, m3: number): void {
  const n = data.length
  const whole = n & ~3
  let i = 0
  for (; i < whole; i += 4) {
    data[i] ^= m0
    data[i + 1] ^= m1
    data[i + 2] ^= m2
    data[i + 3] ^= m3
  }
  if (i < n) data[i] ^= m0
  if (i + 1 < n) data[i + 1] ^= m1
  if (i + 2 < n) data[i + 2] ^= m2
}

/** Bytes of a server frame's header (unmasked) for a payload of this length. */
export function headerBytes(payloadLength: number): number {
  return payloadLength < 126 ? 2 : payloadLength < 0x10000 ? 4 : 10
}

/** Writes a final, unmasked frame header for `opcode` into `out` at `at`; returns where the payload goes. */
export function writeHeader(out: Buffer, at: number, opcode: number, payloadLength: number): number {
  out[at] = 0x80 | opcode
  if (payloadLength < 126) {
    out[at + 1] = payloadLength
    return at + 2
  }
  if (payloadLength < 0x10000) {
    out[at + 1] = 126
    out.writeUInt16BE(payloadLength, at + 2)
    return at + 4
  }
  out[at + 1] = 127
  out.writeUInt32BE(Math.floor(payloadLength / 0x100000000), at + 2)
  out.writeUInt32BE(payloadLength >>> 0, at + 6)
  return at + 10
}

/** One whole server frame: header and payload in one buffer. */
export function serverFrame(opcode: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(headerBytes(payload.length) + payload.length)
  out.set(payload, writeHeader(out, 0, opcode, payload.length))
  return out
}

/** A close frame's payload: the code, then the reason cut to fit a control frame (123 bytes). */
export function closePayload(code: number, reason: string): Buffer {
  if (code === WS_CLOSE.NO_STATUS) return EMPTY
  let text = Buffer.from(reason, 'utf8')
  if (text.length > 123) {
    // Cut on a character boundary so the reason stays UTF-8.
    let end = 123
    while (end > 0 && (text[end] & 0xc0) === 0x80) end--
    text = text.subarray(0, end)
  }
  const out = Buffer.allocUnsafe(2 + text.length)
  out.writeUInt16BE(code, 0)
  text.copy(out, 2)
  return out
}
