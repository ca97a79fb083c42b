import { createServer, type Server } from 'node:http'
import { Packr, Unpackr } from 'msgpackr'
import { type WebSocket, WebSocketServer } from 'ws'
import { type FloorStore, type GroupWaiter, VALUE_BYTES, VALUE_STRING } from './floor-store.js'

/**
 * The floor server's WebSocket side, for tandem's SDK: one msgpack value a
 * binary message (a request, or an array of them), the replies of one
 * message in one message, as tandem frames them. It answers what the SDK
 * sends on its way to a put or a get (ping, status: a master at this
 * address) and put, get and batch of puts; anything else is INVALID.
 */

const options = { useRecords: false, mapsAsObjects: true, moreTypes: false, int64AsType: 'number' } as const
const packr = new Packr(options)
const unpackr = new Unpackr(options)
const MAX_FRAME_BYTES = 64 * 1024 * 1024
const MAX_UNSENT = 16 * 1024 * 1024

interface Request {
  id?: unknown
  op?: unknown
  key?: unknown
  value?: unknown
  ops?: unknown
}

class WsConnection implements GroupWaiter {
  waitGroup = 0
  replies: unknown[] = []

  constructor(readonly ws: WebSocket) {}

  flush(): void {
    const replies = this.replies
    if (replies.length === 0) return
    this.replies = []
    if (this.ws.readyState !== this.ws.OPEN) return
    this.ws.send(packr.pack(replies.length === 1 ? replies[0] : replies))
    if (this.ws.bufferedAmount > MAX_UNSENT) this.ws.close(1013, 'replies not read')
  }

  groupDone(group: number, err: Error | null): void {
    if (err) {
      this.ws.terminate()
      return
    }
    if (this.waitGroup !== group) return
    this.waitGroup = 0
    this.flush()
  }
}

export function startWsFloor(store: FloorStore | null, host: string, port: number): Promise<Server> {
  const server = createServer((_req, res) => {
    res.writeHead(404).end()
  })
  const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: MAX_FRAME_BYTES })
  wss.on('connection', (ws) => {
    const conn = new WsConnection(ws)
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      let decoded: unknown
      try {
        if (!isBinary) throw new Error('text frame')
        decoded = unpackr.unpack(data)
      } catch {
        ws.close(1007, 'malformed frame')
        return
      }
      const requests = (Array.isArray(decoded) ? decoded : [decoded]) as Request[]
      for (const r of requests) answer(conn, r, store, address())
      if (conn.waitGroup === 0) conn.flush()
    })
    ws.on('error', () => {})
  })
  const address = () => {
    const a = server.address()
    return a && typeof a === 'object' ? `${host}:${a.port}` : ''
  }
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve(server))
  })
}

function answer(conn: WsConnection, r: Request, store: FloorStore | null, address: string): void {
  if (r === null || typeof r !== 'object') return
  const id = r.id
  switch (r.op) {
    case 'put': {
      if (typeof r.key !== 'string' || !isValue(r.value)) return invalid(conn, id, 'put needs a string key and a value')
      const seq = store ? store.put(conn, r.key, bytes(r.value), typeOf(r.value)) : 0
      conn.replies.push({ id, result: { seq } })
      return
    }
    case 'batch': {
      const ops = r.ops
      if (!Array.isArray(ops)) return invalid(conn, id, 'batch needs ops')
      for (const op of ops as Request[]) {
        if (op?.op !== undefined || typeof op?.key !== 'string' || !isValue(op.value))
          return invalid(conn, id, 'the floor server takes batches of puts only')
      }
      let seq = 0
      for (const op of ops as { key: string; value: Uint8Array | string }[]) {
        if (store) seq = store.put(conn, op.key, bytes(op.value), typeOf(op.value))
      }
      conn.replies.push({ id, result: { seq } })
      return
    }
    case 'get': {
      if (typeof r.key !== 'string') return invalid(conn, id, 'get needs a string key')
      if (store === null) {
        conn.replies.push({ id, result: null })
        return
      }
      const found = store.get(r.key)
      if (store.busy) store.holdFor(conn)
      const value =
        found === undefined ? null : found.type === VALUE_STRING ? found.value.toString('utf8') : found.value
      conn.replies.push({ id, result: value })
      return
    }
    case 'ping':
      conn.replies.push({ id, result: 'pong' })
      return
    case 'status':
      conn.replies.push({ id, result: status(store, address) })
      return
    default:
      invalid(conn, id, `the floor server takes put, get, batch, ping and status, not ${String(r.op).slice(0, 32)}`)
  }
}

function isValue(v: unknown): v is Uint8Array | string {
  return typeof v === 'string' || v instanceof Uint8Array
}

/** msgpackr decodes bin as a Buffer in Node; anything else is viewed as one. */
function bytes(v: Uint8Array | string): Buffer | string {
  return typeof v === 'string' || Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength)
}

function typeOf(v: Uint8Array | string): number {
  return typeof v === 'string' ? VALUE_STRING : VALUE_BYTES
}

function invalid(conn: WsConnection, id: unknown, message: string): void {
  conn.replies.push({ id, error: { code: 'INVALID', message } })
}

function status(store: FloorStore | null, address: string): Record<string, unknown> {
  const seq = store?.seq ?? 0
  return {
    nodeId: 'floor',
    role: 'master',
    epoch: 1,
    seq,
    upstream: null,
    readOnly: false,
    replicas: [],
    keys: 0,
    diskBytes: null,
    log: { oldestSeq: 1, newestSeq: seq, entries: seq },
    address,
    failover: null,
    // As tandem's status counts them: group commits and the writes in them.
    ...(store ? { commit: { groups: store.groups, writes: store.puts } } : {}),
  }
}
