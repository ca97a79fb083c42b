import { packFrames } from '@tandem/protocol'

/**
 * Replies waiting to leave one connection, encoded as they are built so
 * that their bytes are known (and counted against the connection's reply
 * budget) before anything is framed. A flush sends them in as few frames
 * as fit under the frame limit (see packFrames).
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

  /** Takes every waiting reply, as frames of at most maxFrameBytes. */
  takeFrames(): Buffer[] {
    const frames = packFrames(this.replies, this.maxFrameBytes)
    this.clear()
    return frames
  }

  clear(): void {
    this.replies = []
    this.bytes = 0
  }
}
