import { TandemError } from '@tandem/protocol'

/**
 * A dialler's frame limit: the most bytes it reads in one frame, said in
 * its hello (twice its --max-frame-bytes); a larger frame closes its
 * socket, and the dialler would redial and be sent the same frame again,
 * for ever. A feed keeps every frame it sends under it: snapshot chunks are
 * cut under it, and a frame of entries that would pass it goes as several.
 * One record or one entry too large to fit alone is refused with TOOLARGE,
 * which the dialler shows in its status.
 */

/** What a snapshot frame takes beside its chunk (type, bin header, count), with room to spare. */
export const SNAPSHOT_FRAME_BYTES = 64

/**
 * The frames that carry `entries`, in order, each at most `limit` bytes:
 * one when `encode` of all of them fits, else the halves, split again as
 * long as needed. Throws TOOLARGE when one entry alone does not fit.
 */
export function framesUnder(entries: Buffer[], limit: number, encode: (entries: Buffer[]) => Buffer): Buffer[] {
  const frame = encode(entries)
  if (frame.length <= limit) return [frame]
  if (entries.length === 1) {
    throw new TandemError(
      'TOOLARGE',
      `a log entry takes a ${frame.length}-byte frame, more than the receiver reads (${limit} bytes: twice its --max-frame-bytes)`,
    )
  }
  const half = Math.ceil(entries.length / 2)
  return [...framesUnder(entries.slice(0, half), limit, encode), ...framesUnder(entries.slice(half), limit, encode)]
}

/** Whether a feed's failure is a frame too large for its dialler (refused, not retried as a failure). */
export function isTooLarge(err: unknown): err is TandemError {
  return err instanceof TandemError && err.code === 'TOOLARGE'
}
