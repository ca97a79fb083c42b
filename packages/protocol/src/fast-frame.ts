/**
 * The common request frames read by hand: one request map, or an array of
 * them (the SDK's auto-pipelining), whose keys are request field names,
 * whose values are unsigned integers up to 32 bits, ASCII strings or binary
 * (and `after`, a multi-master write's session stamp, also a float64 holding
 * a whole number from 0 to 2^53 - 1: msgpackr writes a number past 32 bits
 * as a float64, and a hybrid clock stamp is always past them), and which
 * spans the whole frame. Returns the frame's messages as
 * decodeFrame and framedMessages give them (the same fields in the same
 * order, the same values, binary as views of the frame); null for anything
 * else, and the caller then runs decodeFrame, which decides and words any
 * error. So it never takes a frame decodeFrame refuses: every byte it
 * accepts is one of the msgpack types above, read to the frame's end. A
 * string holding a byte of 0x80 or more is left to msgpackr, so no string
 * read here can have been anything but the characters of its bytes. It
 * exists for the cost of a request: msgpackr's general decoder, its
 * frame-spanning check and the 0xc1 search are a measurable share of an
 * unpipelined get's server CPU.
 */

/** The field names a request may have (requestSchema's, for get, put and del, and the rest a fast request checks). */
const FIELDS = ['id', 'op', 'key', 'value', 'consistency', 'w', 'timeoutMs', 'epoch', 'context', 'after']
const FIELD_BYTES = FIELDS.map((name) => Buffer.from(name, 'latin1'))

const OP = FIELDS.indexOf('op')
const AFTER = FIELDS.indexOf('after')
/** The ops named by their constant (no string made for them); others are read as any string. */
const OPS = ['get', 'put', 'del']
const OP_BYTES = OPS.map((name) => Buffer.from(name, 'latin1'))

/** The reader's position in the frame being read. */
let at = 0

const REFUSED = Symbol('refused')

export function fastFrameMessages(data: Buffer): unknown[] | null {
  const end = data.length
  if (end === 0) return null
  at = 0
  try {
    const first = data[0]
    let messages: unknown[]
    if (first >= 0x80 && first <= 0x8f) messages = [readMap(data, end)]
    else if (first === 0xde) messages = [readMap(data, end)]
    else {
      let count: number
      if (first >= 0x90 && first <= 0x9f) {
        count = first & 0x0f
        at = 1
      } else if (first === 0xdc && end >= 3) {
        count = (data[1] << 8) | data[2]
        at = 3
      } else return null
      messages = new Array(count)
      for (let i = 0; i < count; i++) messages[i] = readMap(data, end)
    }
    return at === end ? messages : null
  } catch (err) {
    if (err === REFUSED) return null
    throw err
  }
}

function readMap(data: Buffer, end: number): Record<string, unknown> {
  if (at >= end) throw REFUSED
  const head = data[at]
  let count: number
  if (head >= 0x80 && head <= 0x8f) {
    count = head & 0x0f
    at++
  } else if (head === 0xde && at + 3 <= end) {
    count = (data[at + 1] << 8) | data[at + 2]
    at += 3
  } else throw REFUSED
  if (count > FIELDS.length) throw REFUSED
  const message: Record<string, unknown> = {}
  let seen = 0
  for (let i = 0; i < count; i++) {
    const field = readField(data, end)
    // A repeated field is left to msgpackr (the last one wins there).
    if ((seen & (1 << field)) !== 0) throw REFUSED
    seen |= 1 << field
    message[FIELDS[field]] =
      field === OP ? readOp(data, end) : field === AFTER ? readStamp(data, end) : readValue(data, end)
  }
  return message
}

/** A fixstr naming one of FIELDS: its index. */
function readField(data: Buffer, end: number): number {
  if (at >= end) throw REFUSED
  const head = data[at]
  if ((head & 0xe0) !== 0xa0) throw REFUSED
  const length = head & 0x1f
  const from = at + 1
  if (from + length > end) throw REFUSED
  for (let f = 0; f < FIELD_BYTES.length; f++) {
    const name = FIELD_BYTES[f]
    if (name.length !== length) continue
    let i = 0
    while (i < length && data[from + i] === name[i]) i++
    if (i === length) {
      at = from + length
      return f
    }
  }
  throw REFUSED
}

function readOp(data: Buffer, end: number): unknown {
  const head = data[at]
  if (head === 0xa3 && at + 4 <= end) {
    for (let o = 0; o < OP_BYTES.length; o++) {
      const name = OP_BYTES[o]
      if (data[at + 1] === name[0] && data[at + 2] === name[1] && data[at + 3] === name[2]) {
        at += 4
        return OPS[o]
      }
    }
  }
  return readValue(data, end)
}

/**
 * A session stamp: as readValue, or a float64 whose value is a whole number
 * from 0 to Number.MAX_SAFE_INTEGER (the number msgpackr gives for it).
 * Any other float64 is left to msgpackr, and the request's check then
 * words the refusal.
 */
function readStamp(data: Buffer, end: number): unknown {
  if (at >= end || data[at] !== 0xcb) return readValue(data, end)
  if (at + 9 > end) throw REFUSED
  const value = data.readDoubleBE(at + 1)
  if (!Number.isSafeInteger(value) || value < 0) throw REFUSED
  at += 9
  return value
}

function readValue(data: Buffer, end: number): unknown {
  if (at >= end) throw REFUSED
  const head = data[at]
  if (head < 0x80) {
    at++
    return head
  }
  if ((head & 0xe0) === 0xa0) return readAscii(data, end, at + 1, head & 0x1f)
  switch (head) {
    case 0xcc:
      return readUint(data, end, 1)
    case 0xcd:
      return readUint(data, end, 2)
    case 0xce:
      return readUint(data, end, 4)
    case 0xd9:
      return readAscii(data, end, at + 2, at + 2 <= end ? data[at + 1] : -1)
    case 0xda:
      return readAscii(data, end, at + 3, at + 3 <= end ? (data[at + 1] << 8) | data[at + 2] : -1)
    case 0xdb:
      return readAscii(data, end, at + 5, at + 5 <= end ? data.readUInt32BE(at + 1) : -1)
    case 0xc4:
      return readBin(data, end, at + 2, at + 2 <= end ? data[at + 1] : -1)
    case 0xc5:
      return readBin(data, end, at + 3, at + 3 <= end ? (data[at + 1] << 8) | data[at + 2] : -1)
    case 0xc6:
      return readBin(data, end, at + 5, at + 5 <= end ? data.readUInt32BE(at + 1) : -1)
    default:
      throw REFUSED
  }
}

function readUint(data: Buffer, end: number, bytes: number): number {
  if (at + 1 + bytes > end) throw REFUSED
  const value =
    bytes === 1 ? data[at + 1] : bytes === 2 ? (data[at + 1] << 8) | data[at + 2] : data.readUInt32BE(at + 1)
  at += 1 + bytes
  return value
}

function readAscii(data: Buffer, end: number, from: number, length: number): string {
  if (length < 0 || from + length > end) throw REFUSED
  const to = from + length
  for (let i = from; i < to; i++) if (data[i] >= 0x80) throw REFUSED
  at = to
  return data.toString('latin1', from, to)
}

function readBin(data: Buffer, end: number, from: number, length: number): Buffer {
  if (length < 0 || from + length > end) throw REFUSED
  at = from + length
  return data.subarray(from, at)
}
