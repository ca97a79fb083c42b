import type { ClientSocket } from './client-socket.js'
import { headerBytes, OP_BINARY, writeHeader } from './ws-frames.js'

/** The longest msgpack array header (0xdd + u32 count). */
const MAX_ARRAY_HEADER = 5

/**
 * Replies waiting to leave one connection, encoded as they are built so
 * that their bytes are known (and counted against the connection's reply
 * budget) before anything is framed. A flush sends them in as few frames
 * as fit under the frame limit: one reply alone, or several as one
 * msgpack array whose elements are the encoded replies, unchanged (as the
 * protocol's packFrames groups them). A frame of several is built in one
 * buffer, its WebSocket header, array header and replies copied in once.
 */
export class ReplyOutbox {
  private replies: Buffer[] = []
  /** Bytes of the replies waiting. */
  bytes = 0

  constructor(private readonly maxFrameBytes: number) {}

  get length(): number {
    return this.replies.length
  }

  /** Whether a reply of this many bytes can be sent at all (alone in a frame). */
  fits(bytes: number): boolean {
    return bytes <= this.maxFrameBytes
  }

  push(encoded: Buffer): void {
    this.replies.push(encoded)
    this.bytes += encoded.length
  }

  /** Sends every waiting reply on ws, in frames of at most maxFrameBytes (a reply larger than that alone in one). */
  sendTo(ws: ClientSocket): void {
    const replies = this.replies
    const n = replies.length
    if (n === 1) {
      ws.send(replies[0])
    } else {
      ws.cork()
      let i = 0
      while (i < n) {
        let j = i + 1
        let size = replies[i].length
        while (j < n && MAX_ARRAY_HEADER + size + replies[j].length <= this.maxFrameBytes) size += replies[j++].length
        if (j === i + 1) ws.send(replies[i])
        else ws.sendFrame(arrayFrame(replies, i, j, size))
        i = j
      }
      ws.uncork()
    }
    replies.length = 0
    this.bytes = 0
  }

  clear(): void {
    this.replies = []
    this.bytes = 0
  }
}

/** One binary frame whose payload is a msgpack array of messages[from, to) (`bytes` long together). */
function arrayFrame(messages: readonly Buffer[], from: number, to: number, bytes: number): Buffer {
  const count = to - from
  const payloadLength = (count < 16 ? 1 : count < 0x10000 ? 3 : 5) + bytes
  const out = Buffer.allocUnsafe(headerBytes(payloadLength) + payloadLength)
  let at = writeHeader(out, 0, OP_BINARY, payloadLength)
  if (count < 16) {
    out[at++] = 0x90 | count
  } else if (count < 0x10000) {
    out[at] = 0xdc
    at = out.writeUInt16BE(count, at + 1)
  } else {
    out[at] = 0xdd
    at = out.writeUInt32BE(count, at + 1)
  }
  for (let i = from; i < to; i++) {
    out.set(messages[i], at)
    at += messages[i].length
  }
  return out
}
