import { describe, expect, it } from 'vitest'
import { closePayload, FrameReader, type FrameSink, serverFrame, WS_CLOSE, writeHeader } from './ws-frames.js'

type Event =
  | { kind: 'message'; data: Buffer; isBinary: boolean }
  | { kind: 'ping' | 'pong'; data: Buffer }
  | { kind: 'close'; code: number; reason: string }
  | { kind: 'error'; code: number; message: string }

/** A reader over a sink that records everything, copying payloads (the reader hands views of its input). */
function reader(maxPayload = 1 << 20): { r: FrameReader; events: Event[] } {
  const events: Event[] = []
  const sink: FrameSink = {
    onMessage: (data, isBinary) => events.push({ kind: 'message', data: Buffer.from(data), isBinary }),
    onPing: (data) => events.push({ kind: 'ping', data: Buffer.from(data) }),
    onPong: (data) => events.push({ kind: 'pong', data: Buffer.from(data) }),
    onCloseFrame: (code, reason) => events.push({ kind: 'close', code, reason }),
    onProtocolError: (code, message) => events.push({ kind: 'error', code, message }),
  }
  return { r: new FrameReader(sink, maxPayload), events }
}

interface FrameOptions {
  fin?: boolean
  rsv?: number
  masked?: boolean
  mask?: number[]
  /** Declared length, when not the payload's. */
  length?: number
}

/** A client frame as a client writes it (masked unless told not to). */
function frame(opcode: number, payload: Buffer, o: FrameOptions = {}): Buffer {
  const length = o.length ?? payload.length
  const masked = o.masked ?? true
  const mask = Buffer.from(o.mask ?? [0x37, 0xfa, 0x21, 0x3d])
  const ext = length < 126 ? 0 : length < 0x10000 ? 2 : 8
  const header = Buffer.alloc(2 + ext + (masked ? 4 : 0))
  header[0] = ((o.fin ?? true) ? 0x80 : 0) | ((o.rsv ?? 0) << 4) | opcode
  if (ext === 0) header[1] = length
  else if (ext === 2) {
    header[1] = 126
    header.writeUInt16BE(length, 2)
  } else {
    header[1] = 127
    header.writeBigUInt64BE(BigInt(length), 2)
  }
  if (masked) header[1] |= 0x80
  const body = Buffer.from(payload)
  if (masked) {
    mask.copy(header, 2 + ext)
    for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3]
  }
  return Buffer.concat([header, body])
}

function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = (i * 131 + seed * 7) & 0xff
  return b
}

/** Feeds the bytes in pieces cut at the given sizes (cycled), as a socket might deliver them. */
function feed(r: FrameReader, data: Buffer, cuts: number[]): void {
  let at = 0
  let i = 0
  while (at < data.length) {
    const n = cuts[i++ % cuts.length]
    r.push(data.subarray(at, at + n))
    at += n
  }
}

const BINARY = 0x2
const TEXT = 0x1
const CONT = 0x0
const CLOSE = 0x8
const PING = 0x9
const PONG = 0xa

describe('client frame reader', () => {
  it('reads payloads of 0, 125, 126, 65535 and 65536 bytes (every length encoding, at its edges)', () => {
    for (const n of [0, 1, 125, 126, 127, 65535, 65536, 200_000]) {
      const payload = bytes(n, n)
      const wire = frame(BINARY, payload)
      // Whole in one chunk, and a byte at a time through the header then in odd pieces.
      for (const cuts of [[wire.length], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 7919]]) {
        const { r, events } = reader()
        feed(r, Buffer.from(wire), cuts)
        expect(events.length, `${n} bytes, cuts ${cuts[0]}`).toBe(1)
        expect(events[0]).toMatchObject({ kind: 'message', isBinary: true })
        expect((events[0] as { data: Buffer }).data.equals(payload), `${n} bytes, cuts ${cuts[0]}`).toBe(true)
      }
    }
  })

  it('unmasks with the mask of each frame, whatever its bytes and the payload length mod 4', () => {
    const { r, events } = reader()
    const masks = [
      [0, 0, 0, 0],
      [0xff, 0xff, 0xff, 0xff],
      [1, 2, 3, 4],
      [0x80, 0x00, 0x7f, 0xaa],
    ]
    const sent: Buffer[] = []
    const wire: Buffer[] = []
    for (let n = 0; n < 12; n++) {
      const payload = bytes(n, 3 * n)
      sent.push(payload)
      wire.push(frame(BINARY, payload, { mask: masks[n % masks.length] }))
    }
    // Several frames in one chunk, then split across chunks at every 5 bytes.
    feed(r, Buffer.concat(wire), [Buffer.concat(wire).length])
    feed(r, Buffer.concat(wire), [5])
    expect(events.map((e) => (e.kind === 'message' ? e.data : null))).toEqual([...sent, ...sent])
  })

  it('assembles a fragmented message, binary or text, from its continuation frames', () => {
    const { r, events } = reader()
    const whole = bytes(70_000, 9)
    feed(
      r,
      Buffer.concat([
        frame(BINARY, whole.subarray(0, 10), { fin: false }),
        frame(CONT, whole.subarray(10, 10), { fin: false }),
        frame(CONT, whole.subarray(10, 66_000), { fin: false }),
        frame(CONT, whole.subarray(66_000)),
        frame(TEXT, Buffer.from('hé'), { fin: false }),
        frame(CONT, Buffer.from('llo')),
      ]),
      [4096],
    )
    expect(events.map((e) => e.kind === 'message' && e.isBinary)).toEqual([true, false])
    expect((events[0] as { data: Buffer }).data.equals(whole)).toBe(true)
    expect((events[1] as { data: Buffer }).data.toString()).toBe('héllo')
  })

  it('hands on a ping and a pong that come between the fragments of a message, in order', () => {
    const { r, events } = reader()
    feed(
      r,
      Buffer.concat([
        frame(BINARY, Buffer.from('ab'), { fin: false }),
        frame(PING, Buffer.from('p1')),
        frame(CONT, Buffer.from('cd'), { fin: false }),
        frame(PONG, Buffer.alloc(0)),
        frame(CONT, Buffer.from('ef')),
      ]),
      [3],
    )
    expect(events).toEqual([
      { kind: 'ping', data: Buffer.from('p1') },
      { kind: 'pong', data: Buffer.alloc(0) },
      { kind: 'message', data: Buffer.from('abcdef'), isBinary: true },
    ])
  })

  it('keeps fragments in bytes of its own: not the chunks they came in, nor a slot per empty fragment', () => {
    const { r, events } = reader()
    // Each one-byte fragment rides in a chunk of pongs (as a socket read would
    // bring it): held as a view, the fragment kept the whole chunk alive. The
    // chunk is then spoilt, as if its memory were reused: the message must not change.
    const pongs = Buffer.concat(Array.from({ length: 100 }, () => frame(PONG, bytes(125))))
    const sent = bytes(50, 4)
    for (let i = 0; i < sent.length; i++) {
      const chunk = Buffer.concat([frame(i === 0 ? BINARY : CONT, sent.subarray(i, i + 1), { fin: false }), pongs])
      r.push(chunk)
      chunk.fill(0xee)
    }
    // Empty fragments between pongs carry nothing and are held as nothing.
    const empties = Buffer.concat(
      Array.from({ length: 20_000 }, () => [
        frame(CONT, Buffer.alloc(0), { fin: false }),
        frame(PONG, Buffer.alloc(0)),
      ]).flat(),
    )
    r.push(empties)
    expect(r.heldBytes).toBeLessThanOrEqual(2 * sent.length)
    r.push(frame(CONT, Buffer.alloc(0)))
    const messages = events.filter((e) => e.kind === 'message')
    expect(messages).toEqual([{ kind: 'message', data: sent, isBinary: true }])
    expect(events.filter((e) => e.kind === 'pong').length).toBe(50 * 100 + 20_000)
    expect(r.heldBytes).toBe(0)
  })

  it('reads a close frame with a code and reason, or none, and nothing after it', () => {
    const a = reader()
    a.r.push(Buffer.concat([frame(CLOSE, closePayload(4000, 'bye')), frame(BINARY, Buffer.from('late'))]))
    expect(a.events).toEqual([{ kind: 'close', code: 4000, reason: 'bye' }])
    const b = reader()
    b.r.push(frame(CLOSE, Buffer.alloc(0)))
    expect(b.events).toEqual([{ kind: 'close', code: WS_CLOSE.NO_STATUS, reason: '' }])
  })

  it('refuses broken frames with the close code RFC 6455 gives, and reads nothing after', () => {
    const cases: [string, Buffer, number][] = [
      ['an unmasked client frame', frame(BINARY, Buffer.from('x'), { masked: false }), WS_CLOSE.PROTOCOL_ERROR],
      ['a bad opcode (3)', frame(3, Buffer.from('x')), WS_CLOSE.PROTOCOL_ERROR],
      ['a bad control opcode (0xb)', frame(0xb, Buffer.alloc(0)), WS_CLOSE.PROTOCOL_ERROR],
      ['RSV1 (no deflate was negotiated)', frame(BINARY, Buffer.from('x'), { rsv: 4 }), WS_CLOSE.PROTOCOL_ERROR],
      ['RSV3', frame(BINARY, Buffer.from('x'), { rsv: 1 }), WS_CLOSE.PROTOCOL_ERROR],
      ['a continuation with no message', frame(CONT, Buffer.from('x')), WS_CLOSE.PROTOCOL_ERROR],
      [
        'a new message inside a fragmented one',
        Buffer.concat([frame(BINARY, Buffer.from('a'), { fin: false }), frame(BINARY, Buffer.from('b'))]),
        WS_CLOSE.PROTOCOL_ERROR,
      ],
      ['a fragmented ping', frame(PING, Buffer.from('x'), { fin: false }), WS_CLOSE.PROTOCOL_ERROR],
      ['a ping of 126 bytes', frame(PING, bytes(126)), WS_CLOSE.PROTOCOL_ERROR],
      ['a close frame of 1 byte', frame(CLOSE, Buffer.from([3])), WS_CLOSE.PROTOCOL_ERROR],
      ['a close code never sent (1006)', frame(CLOSE, closePayload(1006, '')), WS_CLOSE.PROTOCOL_ERROR],
      ['a close code out of range (999)', frame(CLOSE, Buffer.from([0x03, 0xe7])), WS_CLOSE.PROTOCOL_ERROR],
      ['a text frame that is not UTF-8', frame(TEXT, Buffer.from([0xc3, 0x28])), WS_CLOSE.INVALID_PAYLOAD],
      ['a close reason that is not UTF-8', frame(CLOSE, Buffer.from([0x03, 0xe8, 0xff])), WS_CLOSE.INVALID_PAYLOAD],
    ]
    for (const [what, wire, code] of cases) {
      const { r, events } = reader()
      r.push(Buffer.concat([wire, frame(BINARY, Buffer.from('after'))]))
      expect(events.length, what).toBe(1)
      expect(events[0].kind, what).toBe('error')
      expect((events[0] as { code: number }).code, what).toBe(code)
      r.push(frame(BINARY, Buffer.from('later')))
      expect(events.length, what).toBe(1)
    }
  })

  it('refuses an unmasked frame, or a bad opcode, on its first two bytes, without waiting for more', () => {
    for (const first of [Buffer.from([0x82, 0x05]), Buffer.from([0x83, 0x85]), Buffer.from([0x82, 0x7f])]) {
      const { r, events } = reader()
      r.push(first)
      expect(events, first.toString('hex')).toMatchObject([{ kind: 'error', code: WS_CLOSE.PROTOCOL_ERROR }])
    }
  })

  it('refuses a declared length over the limit at its header, before holding its payload', () => {
    for (const [declared, limit] of [
      [1001, 1000],
      [70_000, 65_536],
      [2 ** 40, 8 << 20],
      [Number.MAX_SAFE_INTEGER, 8 << 20],
    ]) {
      const { r, events } = reader(limit)
      // The header alone, and the first bytes of the payload: nothing waits for the rest.
      r.push(frame(BINARY, Buffer.alloc(0), { length: declared }))
      expect(events, `${declared} > ${limit}`).toEqual([
        { kind: 'error', code: WS_CLOSE.TOO_BIG, message: `a message larger than --max-frame-bytes (${limit})` },
      ])
      r.push(Buffer.alloc(4096))
      expect(r.heldBytes).toBe(0)
    }
    // A length over 2^53 - 1 (the top bit set) is refused the same way.
    const { r, events } = reader(1000)
    const header = frame(BINARY, Buffer.alloc(0), { length: 70_000 })
    header.writeUInt32BE(0x80000000, 2)
    r.push(header)
    expect(events[0]).toMatchObject({ kind: 'error', code: WS_CLOSE.TOO_BIG })
  })

  it('counts the fragments so far against the limit, and takes a message at exactly the limit', () => {
    const { r, events } = reader(100)
    r.push(frame(BINARY, bytes(100)))
    expect(events).toEqual([{ kind: 'message', data: bytes(100), isBinary: true }])
    r.push(frame(BINARY, bytes(60), { fin: false }))
    r.push(frame(CONT, bytes(41), { length: 41 }).subarray(0, 6))
    expect(events[1]).toMatchObject({ kind: 'error', code: WS_CLOSE.TOO_BIG })
    expect(r.heldBytes).toBe(0)
  })

  it('copies a frame trickling in a byte per read into buffers of its own, not a chunk kept per byte', () => {
    const { r, events } = reader()
    const payload = bytes(20_000, 6)
    const wire = frame(BINARY, payload)
    r.push(Buffer.from(wire.subarray(0, 9)))
    // Each later one-byte chunk is spoilt once pushed (as if its memory were
    // reused): held as it came, every byte of the frame would keep a chunk alive.
    for (let at = 9; at < wire.length; at++) {
      const chunk = Buffer.from(wire.subarray(at, at + 1))
      r.push(chunk)
      if (at > 9) chunk.fill(0xee)
    }
    expect(events).toEqual([{ kind: 'message', data: payload, isBinary: true }])
    expect(r.heldBytes).toBe(0)
  })

  it('holds a frame that has not arrived whole and nothing more', () => {
    const { r, events } = reader()
    const wire = frame(BINARY, bytes(10_000))
    r.push(wire.subarray(0, 5000))
    expect(events).toEqual([])
    expect(r.heldBytes).toBe(5000 - 8)
    r.push(wire.subarray(5000))
    expect(events.length).toBe(1)
    expect((events[0] as { data: Buffer }).data.equals(bytes(10_000))).toBe(true)
    expect(r.heldBytes).toBe(0)
  })
})

describe('server frames', () => {
  it('writes each length encoding as a client reads it (unmasked, FIN set)', () => {
    for (const n of [0, 125, 126, 65535, 65536, 100_000]) {
      const payload = bytes(n, 5)
      const out = serverFrame(BINARY, payload)
      expect(out[0]).toBe(0x82)
      expect(out[1] & 0x80).toBe(0)
      const len = out[1] & 0x7f
      const [length, at] =
        len < 126 ? [len, 2] : len === 126 ? [out.readUInt16BE(2), 4] : [Number(out.readBigUInt64BE(2)), 10]
      expect(len, `${n}`).toBe(n < 126 ? n : n < 0x10000 ? 126 : 127)
      expect(length).toBe(n)
      expect(out.subarray(at).equals(payload)).toBe(true)
    }
    const big = Buffer.alloc(10)
    expect(writeHeader(big, 0, BINARY, 2 ** 33 + 5)).toBe(10)
    expect(big.readBigUInt64BE(2)).toBe(BigInt(2 ** 33 + 5))
  })

  it('cuts a close reason to 123 bytes on a character boundary', () => {
    const payload = closePayload(1009, 'é'.repeat(100))
    expect(payload.length).toBeLessThanOrEqual(125)
    expect(payload.readUInt16BE(0)).toBe(1009)
    expect(payload.subarray(2).toString('utf8')).toBe('é'.repeat(61))
  })
})
