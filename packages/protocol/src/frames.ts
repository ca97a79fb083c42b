import { Packr } from './msgpack.js'

/**
 * Wire framing. One WebSocket binary message carries one msgpack value: a
 * single message object, or an array of them when a sender has several ready
 * at once (the client's auto-pipelining, the server's coalesced replies).
 *
 * Plain msgpack only (no msgpackr records or structured clone), so that any
 * msgpack library can speak to tandem. Strings stay strings and binary stays
 * binary, which is how values keep the type they were stored with.
 */
const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  moreTypes: false,
  int64AsType: 'number',
})

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
    const values = packr.unpackMultiple(data as Buffer)
    if (values?.length !== 1) throw new FrameDecodeError('frame must hold exactly one msgpack value')
    return values[0]
  } catch (err) {
    if (err instanceof FrameDecodeError) throw err
    throw new FrameDecodeError(`malformed msgpack: ${(err as Error).message}`, { cause: err })
  }
}

/** Splits a decoded frame into its messages. */
export function framedMessages(decoded: unknown): unknown[] {
  return Array.isArray(decoded) ? decoded : [decoded]
}
