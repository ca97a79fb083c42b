import { createServer, type Server, type Socket } from 'node:net'
import { type FloorStore, type GroupWaiter, VALUE_BYTES } from './floor-store.js'

/**
 * The floor server's Redis protocol side: the smallest correct RESP for
 * what redis-benchmark and ioredis send (SET key value, GET, MSET, PING,
 * and the INFO / CONFIG / SELECT / COMMAND a client asks at connect).
 * Requests are read straight off the socket's chunks (no copy unless one
 * straddles two reads); the replies of one read leave in one write, after
 * the group holding its SETs is written (store mode) or at once (no
 * storage). A connection's replies keep its requests' order.
 */

const MAX_BULK = 64 * 1024 * 1024
const MAX_ARGS = 1024 * 1024
const OK = Buffer.from('+OK\r\n')
const OKS = Buffer.from('+OK\r\n'.repeat(4096))
const NIL = Buffer.from('$-1\r\n')
const PONG = Buffer.from('+PONG\r\n')
const EMPTY_ARRAY = Buffer.from('*0\r\n')
const INFO = '# Server\r\nredis_version:7.0.0\r\nredis_mode:standalone\r\nloading:0\r\n'
const INFO_REPLY = Buffer.from(`$${INFO.length}\r\n${INFO}\r\n`)
/** Paused reading while this much of a connection's replies wait for the socket. */
const MAX_UNSENT = 16 * 1024 * 1024

class RespConnection implements GroupWaiter {
  waitGroup = 0
  /** Replies not yet written, in order; OK replies are the shared OK buffer. */
  parts: Buffer[] = []
  oks = 0
  rest: Buffer | null = null
  /** Argument offsets and lengths of the request being read (reused). */
  readonly argAt: number[] = []
  readonly argLen: number[] = []

  constructor(readonly socket: Socket) {}

  reply(b: Buffer): void {
    this.parts.push(b)
    if (b === OK) this.oks++
  }

  flush(): void {
    const parts = this.parts
    if (parts.length === 0) return
    const all = this.oks === parts.length
    this.parts = []
    this.oks = 0
    if (this.socket.destroyed) return
    if (parts.length === 1) this.socket.write(parts[0])
    else if (all && parts.length <= 4096) this.socket.write(OKS.subarray(0, parts.length * OK.length))
    else this.socket.write(Buffer.concat(parts))
    if (this.socket.writableLength > MAX_UNSENT) {
      this.socket.pause()
      this.socket.once('drain', () => this.socket.resume())
    }
  }

  groupDone(group: number, err: Error | null): void {
    if (err) {
      // Never an OK for a write LevelDB refused.
      this.socket.destroy(err)
      return
    }
    if (this.waitGroup !== group) return
    this.waitGroup = 0
    this.flush()
  }
}

export function startRespFloor(store: FloorStore | null, host: string, port: number): Promise<Server> {
  const server = createServer({ noDelay: true }, (socket) => {
    const conn = new RespConnection(socket)
    socket.on('data', (chunk: Buffer) => {
      if (!read(conn, chunk, store)) {
        conn.flush()
        socket.end()
        return
      }
      if (conn.waitGroup === 0) conn.flush()
    })
    socket.on('error', () => {})
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve(server))
  })
}

/** Reads every whole request of the chunk; false on a protocol error (its -ERR queued). */
function read(conn: RespConnection, chunk: Buffer, store: FloorStore | null): boolean {
  const buf = conn.rest === null ? chunk : Buffer.concat([conn.rest, chunk])
  conn.rest = null
  let pos = 0
  while (pos < buf.length) {
    const start = pos
    if (buf[pos] !== 0x2a) return protocolError(conn, "expected '*'")
    const n = readInt(buf, pos + 1)
    if (n === INCOMPLETE) return keep(conn, buf, start)
    if (n === BAD || lastInt < 1 || lastInt > MAX_ARGS) return protocolError(conn, 'invalid multibulk length')
    const count = lastInt
    pos = n
    let args = 0
    for (; args < count; args++) {
      if (pos >= buf.length) break
      if (buf[pos] !== 0x24) return protocolError(conn, "expected '$'")
      const at = readInt(buf, pos + 1)
      if (at === INCOMPLETE) break
      if (at === BAD || lastInt < 0 || lastInt > MAX_BULK) return protocolError(conn, 'invalid bulk length')
      const len = lastInt
      if (at + len + 2 > buf.length) break
      if (buf[at + len] !== 0x0d || buf[at + len + 1] !== 0x0a) return protocolError(conn, 'bulk not ended by CRLF')
      conn.argAt[args] = at
      conn.argLen[args] = len
      pos = at + len + 2
    }
    if (args < count) return keep(conn, buf, start)
    execute(conn, buf, count, store)
  }
  return true
}

function keep(conn: RespConnection, buf: Buffer, start: number): boolean {
  if (buf.length - start > MAX_BULK + 1024) return protocolError(conn, 'request too large')
  // A copy: the chunk it came in may be large and is otherwise done with.
  conn.rest = Buffer.from(buf.subarray(start))
  return true
}

function protocolError(conn: RespConnection, why: string): boolean {
  conn.reply(Buffer.from(`-ERR Protocol error: ${why}\r\n`))
  return false
}

const INCOMPLETE = -1
const BAD = -2
/** The integer readInt read (a module variable: no object per call). */
let lastInt = 0

/** Reads a decimal integer ended by CRLF at `pos`; returns the offset after the CRLF. */
function readInt(buf: Buffer, pos: number): number {
  let value = 0
  let negative = false
  if (pos < buf.length && buf[pos] === 0x2d) {
    negative = true
    pos++
  }
  const first = pos
  while (pos < buf.length) {
    const c = buf[pos]
    if (c === 0x0d) {
      if (pos + 1 >= buf.length) return INCOMPLETE
      if (buf[pos + 1] !== 0x0a || pos === first || pos - first > 12) return BAD
      lastInt = negative ? -value : value
      return pos + 2
    }
    if (c < 0x30 || c > 0x39) return BAD
    value = value * 10 + (c - 0x30)
    pos++
  }
  return pos - first > 12 ? BAD : INCOMPLETE
}

/** Whether argument i of the request is `name` (upper case ASCII), in any case. */
function is(conn: RespConnection, buf: Buffer, i: number, name: string): boolean {
  const at = conn.argAt[i]
  if (conn.argLen[i] !== name.length) return false
  for (let k = 0; k < name.length; k++) if ((buf[at + k] & 0xdf) !== name.charCodeAt(k)) return false
  return true
}

function arg(conn: RespConnection, buf: Buffer, i: number): Buffer {
  return buf.subarray(conn.argAt[i], conn.argAt[i] + conn.argLen[i])
}

function execute(conn: RespConnection, buf: Buffer, count: number, store: FloorStore | null): void {
  if (count === 3 && is(conn, buf, 0, 'SET')) {
    if (store) store.put(conn, arg(conn, buf, 1), arg(conn, buf, 2), VALUE_BYTES)
    conn.reply(OK)
  } else if (count === 2 && is(conn, buf, 0, 'GET')) {
    if (store === null) return conn.reply(NIL)
    const found = store.get(arg(conn, buf, 1))
    // A value not yet written is answered once it is (never a write that may fail).
    if (store.busy) store.holdFor(conn)
    if (found === undefined) conn.reply(NIL)
    else conn.reply(Buffer.concat([Buffer.from(`$${found.value.length}\r\n`), found.value, CRLF]))
  } else if (count >= 3 && count % 2 === 1 && is(conn, buf, 0, 'MSET')) {
    if (store) for (let i = 1; i < count; i += 2) store.put(conn, arg(conn, buf, i), arg(conn, buf, i + 1), VALUE_BYTES)
    conn.reply(OK)
  } else if (is(conn, buf, 0, 'PING')) {
    conn.reply(count === 2 ? bulk(arg(conn, buf, 1)) : PONG)
  } else if (is(conn, buf, 0, 'INFO')) {
    conn.reply(INFO_REPLY)
  } else if (is(conn, buf, 0, 'CONFIG') || is(conn, buf, 0, 'COMMAND')) {
    conn.reply(EMPTY_ARRAY)
  } else if (is(conn, buf, 0, 'SELECT') || is(conn, buf, 0, 'CLIENT')) {
    conn.reply(OK)
  } else {
    const name = arg(conn, buf, 0)
      .toString('latin1')
      .slice(0, 64)
      .replace(/[^\x20-\x7e]/g, '?')
    conn.reply(
      Buffer.from(`-ERR unknown command '${name}' (the floor server takes SET key value, GET, MSET, PING)\r\n`),
    )
  }
}

const CRLF = Buffer.from('\r\n')

function bulk(b: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`$${b.length}\r\n`), b, CRLF])
}
