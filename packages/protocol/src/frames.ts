import { holdsNeverUsed, isRecordRefusal, NEVER_USED_REFUSED, Packr, plainUnpackr, RECORD_REFUSED } from './msgpack.js'

/**
 * Wire framing. One WebSocket binary message carries one msgpack value: a
 * single message object, or an array of them when a sender has several ready
 * at once (the client's auto-pipelining, the server's coalesced replies).
 *
 * Plain msgpack only (no msgpackr records or structured clone), so that any
 * msgpack library can speak to tandem. Strings stay strings and binary stays
 * binary, which is how values keep the type they were stored with. Decoding
 * holds to it too: msgpackr's own extension types, record definitions and
 * the never-used byte 0xc1 are refused as malformed msgpack (msgpack.ts).
 */
const options = {
  useRecords: false,
  mapsAsObjects: true,
  moreTypes: false,
  int64AsType: 'number',
} as const
const packr = new Packr(options)
const unpackr = plainUnpackr(options)

export function encodeFrame(value: unknown): Buffer {
  return packr.pack(value)
}

export class FrameDecodeError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'FrameDecodeError'
  }
}

/** Decodes one frame. Throws FrameDecodeError on anything that is not one whole msgpack value. */
export function decodeFrame(data: Uint8Array): unknown {
  if (data.length === 0) throw new FrameDecodeError('empty frame')
  try {
    // unpack() accepts a prefix; insist the value spans the whole frame.
    const values = unpackr.unpackMultiple(data as Buffer)
    if (values?.length !== 1) throw new FrameDecodeError('frame must hold exactly one msgpack value')
    if (holdsNeverUsed(data, values[0])) throw new FrameDecodeError(`malformed msgpack: ${NEVER_USED_REFUSED}`)
    return values[0]
  } catch (err) {
    if (err instanceof FrameDecodeError) throw err
    const why = isRecordRefusal(err) ? RECORD_REFUSED : (err as Error).message
    throw new FrameDecodeError(`malformed msgpack: ${why}`, { cause: err })
  }
}

/** The longest msgpack array header (0xdd + u32 count). */
const MAX_ARRAY_HEADER = 5

/**
 * Groups messages, each already encoded, into as few frames as fit in
 * `maxFrameBytes`: one message alone, or several as one msgpack array
 * whose elements are the encoded messages, unchanged. A message larger
 * than the limit still gets a frame of its own; callers check first.
 */
export function packFrames(encoded: readonly Buffer[], maxFrameBytes: number): Buffer[] {
  const frames: Buffer[] = []
  let i = 0
  while (i < encoded.length) {
    let j = i + 1
    let size = MAX_ARRAY_HEADER + encoded[i].length
    while (j < encoded.length && size + encoded[j].length <= maxFrameBytes) size += encoded[j++].length
    frames.push(j === i + 1 ? encoded[i] : Buffer.concat([arrayHeader(j - i), ...encoded.slice(i, j)]))
    i = j
  }
  return frames
}

function arrayHeader(count: number): Buffer {
  if (count < 16) return Buffer.from([0x90 | count])
  if (count < 0x10000) return Buffer.from([0xdc, count >> 8, count & 0xff])
  const header = Buffer.allocUnsafe(5)
  header[0] = 0xdd
  header.writeUInt32BE(count, 1)
  return header
}

/** Splits a decoded frame into its messages. */
export function framedMessages(decoded: unknown): unknown[] {
  return Array.isArray(decoded) ? decoded : [decoded]
}
