import { encodeFrame } from '@tandem/protocol'
import {
  begin,
  finish,
  givenUp,
  LITERALS,
  startOver,
  writeNumber,
  writeRaw,
  writeValue,
} from '../util/msgpack-writer.js'

/**
 * Writes a reply's msgpack, `{id, result}`, by hand, byte for byte as
 * encodeFrame (msgpackr: useRecords false, no float32, no bundled strings)
 * writes it, for the results the common requests give: null, booleans,
 * numbers, strings, byte arrays, and plain objects and arrays of those
 * (a write's result, an mget's values, a status). Anything else (undefined,
 * a Map, a Date, nesting past RESULT_DEPTH) makes it give up, and the reply is
 * packed by msgpackr. It exists for the cost of a request: msgpackr's
 * general encoder (type dispatch, extension lookups, its per-call set-up)
 * is a measurable share of an unpipelined get's server CPU, and every
 * request has a reply.
 *
 * The writing is util/msgpack-writer.ts's, shared with the log's entries:
 * replies are views of its shared slab. A throw other than its giving up
 * (a result whose getter throws, a bug) leaves the writer on a fresh slab
 * and goes on to the caller, whose guard closes that connection alone.
 */

/** Levels of arrays and objects a result may open (the reply map itself is the fourth): deeper results go to msgpackr. */
const RESULT_DEPTH = 3

/** `{"id": ` as msgpackr starts the reply map: a map16 of 2, then the key. */
const REPLY_HEAD = [0xde, 0x00, 0x02, 0xa2, 0x69, 0x64] as const
/** The `result` key: fixstr of 6. */
const RESULT_KEY = [0xa6, 0x72, 0x65, 0x73, 0x75, 0x6c, 0x74] as const

const fixstr = (name: string): number[] => [0xa0 | name.length, ...Buffer.from(name, 'latin1')]
/** `{"seq": ` as msgpackr starts a write's identity (see encodeIdentityReply): a map16 of 4, then the key. */
const IDENTITY_HEAD = [0xde, 0x00, 0x04, ...fixstr('seq')]
const ORIGIN_KEY = fixstr('origin')
const ORIGIN_SEQ_KEY = fixstr('originSeq')
const HLC_KEY = fixstr('hlc')
/** Room for a number as writeNumber writes it (a float64 at most). */
const NUMBER_BYTES = 9

/** The origin encodeIdentityReply last wrote, and its msgpack bytes (a node's writes all carry its own). */
let lastOrigin: string | null = null
let lastOriginBytes: number[] = []

/** The msgpack bytes of `{id, result}`, exactly as encodeFrame writes them. A view of a shared slab: never written again. */
export function encodeReply(id: number, result: unknown): Buffer {
  // Room for the head, the id (a float64 at most) and the result key.
  begin(LITERALS, REPLY_HEAD.length + 9 + RESULT_KEY.length)
  try {
    writeRaw(REPLY_HEAD)
    writeNumber(id)
    writeRaw(RESULT_KEY)
    writeValue(result, RESULT_DEPTH)
    return finish()
  } catch (err) {
    if (!givenUp(err)) {
      startOver()
      throw err
    }
    return encodeFrame({ id, result })
  }
}

/**
 * encodeReply(id, {seq, origin, originSeq, hlc}), the same bytes: a
 * multi-master write's result, its identity (the fields in the order the
 * store makes them); every plain put on a multi-master node is answered
 * with one. Its keys are written as they are and the origin's bytes kept
 * from the last reply, where encodeReply walks the object and writes the
 * keys and the origin's 32 characters one by one, each reply.
 */
export function encodeIdentityReply(id: number, seq: number, origin: string, originSeq: number, hlc: number): Buffer {
  if (origin !== lastOrigin) {
    lastOriginBytes = [...encodeFrame(origin)]
    lastOrigin = origin
  }
  begin(
    LITERALS,
    REPLY_HEAD.length +
      RESULT_KEY.length +
      IDENTITY_HEAD.length +
      ORIGIN_KEY.length +
      lastOriginBytes.length +
      ORIGIN_SEQ_KEY.length +
      HLC_KEY.length +
      5 * NUMBER_BYTES,
  )
  writeRaw(REPLY_HEAD)
  writeNumber(id)
  writeRaw(RESULT_KEY)
  writeRaw(IDENTITY_HEAD)
  writeNumber(seq)
  writeRaw(ORIGIN_KEY)
  writeRaw(lastOriginBytes)
  writeRaw(ORIGIN_SEQ_KEY)
  writeNumber(originSeq)
  writeRaw(HLC_KEY)
  writeNumber(hlc)
  return finish()
}
