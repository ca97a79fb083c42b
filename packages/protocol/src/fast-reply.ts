/**
 * The common reply frames read by hand, in the SDK: one message map, or an
 * array of them (a node's coalesced replies), holding nil, booleans,
 * integers (up to 64 bits, as numbers: high word times 2^32 plus low word, as
 * decodeFrame reads them),
 * float64s, ASCII strings, binary, and maps with ASCII keys and arrays of
 * those, nested at most MAX_DEPTH deep, spanning the whole frame. Returns
 * the frame's messages as decodeFrame and framedMessages give them (the
 * same fields in the same order, the same values, binary as views of the
 * frame); null for anything else, and the caller then runs decodeFrame,
 * which decides and words any error. So it never takes a frame decodeFrame
 * refuses: every byte it accepts is one of the msgpack types above, read to
 * the frame's end. A string holding a byte of 0x80 or more is left to
 * msgpackr, and so are float32s (msgpackr rounds them), extension types,
 * the never-used byte 0xc1 and a `__proto__` key (msgpackr renames it).
 *
 * It exists for the cost of a write on a multi-master node, whose reply
 * carries the write's identity, `{seq, origin, originSeq, hlc}`: msgpackr's
 * general decoder calls its native string extractor for every frame that
 * holds a string that long (the origin, 32 characters, in each reply) and
 * makes a new string of it, and the 0xc1 search of decodeFrame walks the
 * decoded frame whenever that byte is among the stamps' bytes (most frames
 * of 16 replies). Here keys a reply is known to have are constants, and a
 * string that came in one of the last frames (a node's origin: every write
 * it takes carries the same) is the same string again.
 */

/** Keys the replies of the SDK's requests, and a node's pushes, are made of: read as these constants. */
const KEYS = [
  'id',
  'result',
  'error',
  'seq',
  'origin',
  'originSeq',
  'hlc',
  'value',
  'code',
  'message',
  'details',
  'push',
  'master',
  'epoch',
]
const KEY_BYTES = KEYS.map((name) => Buffer.from(name, 'latin1'))

/** Levels of maps and arrays a frame may open (a reply array, a reply, its result and five more); deeper frames go to msgpackr. */
const MAX_DEPTH = 8

/** Strings of these lengths are looked up among the recent ones before a new one is made. */
const MIN_KEPT = 16
const MAX_KEPT = 64
/** Recent strings (each with its bytes), replaced in turn. */
const KEPT = 4
const keptBytes: Buffer[] = []
const keptStrings: string[] = []
let nextKept = 0

/** The reader's position in the frame being read. */
let at = 0

const REFUSED = Symbol('refused')

export function fastReplyMessages(data: Buffer): unknown[] | null {
  const end = data.length
  if (end === 0) return null
  at = 0
  try {
    const first = data[0]
    let messages: unknown[]
    if ((first >= 0x80 && first <= 0x8f) || first === 0xde) messages = [readValue(data, end, 1)]
    else if ((first >= 0x90 && first <= 0x9f) || first === 0xdc) messages = readValue(data, end, 1) as unknown[]
    else return null
    return at === end ? messages : null
  } catch (err) {
    if (err === REFUSED) return null
    throw err
  }
}

function readValue(data: Buffer, end: number, depth: number): unknown {
  if (at >= end) throw REFUSED
  const head = data[at]
  if (head < 0x80) {
    at++
    return head
  }
  if (head >= 0xe0) {
    at++
    return head - 0x100
  }
  if (head <= 0x8f) {
    at++
    return readMap(data, end, head & 0x0f, depth)
  }
  if (head <= 0x9f) {
    at++
    return readArray(data, end, head & 0x0f, depth)
  }
  if (head <= 0xbf) return readAscii(data, end, at + 1, head & 0x1f)
  switch (head) {
    case 0xc0:
      at++
      return null
    case 0xc2:
      at++
      return false
    case 0xc3:
      at++
      return true
    case 0xc4:
      return readBin(data, end, at + 2, at + 2 <= end ? data[at + 1] : -1)
    case 0xc5:
      return readBin(data, end, at + 3, at + 3 <= end ? data.readUInt16BE(at + 1) : -1)
    case 0xc6:
      return readBin(data, end, at + 5, at + 5 <= end ? data.readUInt32BE(at + 1) : -1)
    case 0xcb:
      need(end, 9)
      at += 9
      return data.readDoubleBE(at - 8)
    case 0xcc:
      need(end, 2)
      at += 2
      return data[at - 1]
    case 0xcd:
      need(end, 3)
      at += 3
      return data.readUInt16BE(at - 2)
    case 0xce:
      need(end, 5)
      at += 5
      return data.readUInt32BE(at - 4)
    case 0xcf:
      need(end, 9)
      at += 9
      return data.readUInt32BE(at - 8) * 0x100000000 + data.readUInt32BE(at - 4)
    case 0xd0:
      need(end, 2)
      at += 2
      return data.readInt8(at - 1)
    case 0xd1:
      need(end, 3)
      at += 3
      return data.readInt16BE(at - 2)
    case 0xd2:
      need(end, 5)
      at += 5
      return data.readInt32BE(at - 4)
    case 0xd3:
      need(end, 9)
      at += 9
      return data.readInt32BE(at - 8) * 0x100000000 + data.readUInt32BE(at - 4)
    case 0xd9:
      return readAscii(data, end, at + 2, at + 2 <= end ? data[at + 1] : -1)
    case 0xda:
      return readAscii(data, end, at + 3, at + 3 <= end ? data.readUInt16BE(at + 1) : -1)
    case 0xdb:
      return readAscii(data, end, at + 5, at + 5 <= end ? data.readUInt32BE(at + 1) : -1)
    case 0xdc:
      need(end, 3)
      at += 3
      return readArray(data, end, data.readUInt16BE(at - 2), depth)
    case 0xde:
      need(end, 3)
      at += 3
      return readMap(data, end, data.readUInt16BE(at - 2), depth)
    default:
      throw REFUSED
  }
}

function readMap(data: Buffer, end: number, count: number, depth: number): Record<string, unknown> {
  if (depth > MAX_DEPTH) throw REFUSED
  // A reply, a write's result and its identity are made as literals of their keys, in the order the
  // frame has them; any other map (or these keys in another order) key by key.
  const start = at
  if (count === 2 && keyAt(data, end, ID)) {
    const id = readValue(data, end, depth + 1)
    if (keyAt(data, end, RESULT)) return { id, result: readValue(data, end, depth + 1) }
  } else if (count === 4 && keyAt(data, end, SEQ)) {
    const seq = readValue(data, end, depth + 1)
    if (keyAt(data, end, ORIGIN)) {
      const origin = readValue(data, end, depth + 1)
      if (keyAt(data, end, ORIGIN_SEQ)) {
        const originSeq = readValue(data, end, depth + 1)
        if (keyAt(data, end, HLC)) return { seq, origin, originSeq, hlc: readValue(data, end, depth + 1) }
      }
    }
  } else if (count === 1 && keyAt(data, end, SEQ)) return { seq: readValue(data, end, depth + 1) }
  at = start
  const map: Record<string, unknown> = {}
  for (let i = 0; i < count; i++) {
    const key = readKey(data, end)
    map[key] = readValue(data, end, depth + 1)
  }
  return map
}

function readArray(data: Buffer, end: number, count: number, depth: number): unknown[] {
  if (depth > MAX_DEPTH) throw REFUSED
  // Every element takes a byte at least: a count past the frame's end is refused before any room is made.
  if (count > end - at) throw REFUSED
  const array = new Array(count)
  for (let i = 0; i < count; i++) array[i] = readValue(data, end, depth + 1)
  return array
}

const [ID, RESULT, SEQ, ORIGIN, ORIGIN_SEQ, HLC] = ['id', 'result', 'seq', 'origin', 'originSeq', 'hlc'].map((name) =>
  Buffer.from([0xa0 | name.length, ...Buffer.from(name, 'latin1')]),
)

/** Whether the key at `at` is `key` (its fixstr's bytes): if so, it is read. */
function keyAt(data: Buffer, end: number, key: Buffer): boolean {
  const length = key.length
  if (at + length > end) return false
  for (let i = 0; i < length; i++) if (data[at + i] !== key[i]) return false
  at += length
  return true
}

/** An ASCII fixstr: one of KEYS as its constant, any other as read. */
function readKey(data: Buffer, end: number): string {
  if (at >= end) throw REFUSED
  const head = data[at]
  if ((head & 0xe0) !== 0xa0) throw REFUSED
  const length = head & 0x1f
  const from = at + 1
  if (from + length > end) throw REFUSED
  for (let k = 0; k < KEY_BYTES.length; k++) {
    const name = KEY_BYTES[k]
    if (name.length !== length) continue
    let i = 0
    while (i < length && data[from + i] === name[i]) i++
    if (i === length) {
      at = from + length
      return KEYS[k]
    }
  }
  const key = readAscii(data, end, from, length)
  // msgpackr renames it (an object's prototype cannot be set from a frame).
  if (key === '__proto__') throw REFUSED
  return key
}

/** The value at `at` takes `bytes` bytes, its head's included: refused when the frame ends first. */
function need(end: number, bytes: number): void {
  if (at + bytes > end) throw REFUSED
}

function readAscii(data: Buffer, end: number, from: number, length: number): string {
  if (length < 0 || from + length > end) throw REFUSED
  const to = from + length
  if (length >= MIN_KEPT && length <= MAX_KEPT) {
    const kept = keptString(data, from, length)
    if (kept !== undefined) {
      at = to
      return kept
    }
  }
  for (let i = from; i < to; i++) if (data[i] >= 0x80) throw REFUSED
  const string = data.toString('latin1', from, to)
  if (length >= MIN_KEPT && length <= MAX_KEPT) {
    keptBytes[nextKept] = Buffer.from(data.subarray(from, to))
    keptStrings[nextKept] = string
    nextKept = (nextKept + 1) % KEPT
  }
  at = to
  return string
}

/** The recent string whose bytes these are, if any (its bytes were checked ASCII when it was made). */
function keptString(data: Buffer, from: number, length: number): string | undefined {
  for (let k = 0; k < keptBytes.length; k++) {
    const bytes = keptBytes[k]
    if (bytes.length !== length) continue
    let i = 0
    while (i < length && data[from + i] === bytes[i]) i++
    if (i === length) return keptStrings[k]
  }
  return undefined
}

function readBin(data: Buffer, end: number, from: number, length: number): Buffer {
  if (length < 0 || from + length > end) throw REFUSED
  at = from + length
  return data.subarray(from, at)
}
