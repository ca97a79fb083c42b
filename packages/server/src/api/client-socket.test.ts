import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import { type AddressInfo, connect, type Socket } from 'node:net'
import { decodeFrame, encodeFrame, packFrames } from '@tandem/protocol'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { acceptUpgrade, ClientSocket } from './client-socket.js'
import { ReplyOutbox } from './reply-outbox.js'

/** Resolves once check() holds; fails at the deadline (a loaded machine gets a generous one). */
async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

interface Served {
  server: Server
  address: string
  sockets: ClientSocket[]
  refused: string[]
}

const servers: Server[] = []
afterEach(() => {
  for (const s of servers.splice(0)) s.close()
})

/** An HTTP server whose upgrades become ClientSockets that echo every message back. */
async function serve(maxPayload = 1 << 20, closeGraceMs = 5000): Promise<Served> {
  const server = createServer()
  servers.push(server)
  const served: Served = { server, address: '', sockets: [], refused: [] }
  server.on('upgrade', (req, socket: Socket, head: Buffer) => {
    socket.on('error', () => {})
    const refused = acceptUpgrade(req, socket)
    if (refused) {
      served.refused.push(refused.message)
      socket.end(`HTTP/1.1 ${refused.status} Error\r\nconnection: close\r\n\r\n`)
      return
    }
    const ws = new ClientSocket(socket, head, maxPayload, closeGraceMs)
    ws.on('message', (data: Buffer) => ws.send(Buffer.from(data)))
    ws.on('error', () => {})
    served.sockets.push(ws)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  served.address = `127.0.0.1:${(server.address() as AddressInfo).port}`
  return served
}

async function client(address: string): Promise<WebSocket> {
  const ws = new WebSocket(`ws://${address}/`, { perMessageDeflate: false })
  ws.on('error', () => {})
  await once(ws, 'open')
  return ws
}

/** A raw TCP client past the handshake, recording every byte the server sends. */
async function rawClient(
  address: string,
  allowHalfOpen = false,
): Promise<{ socket: Socket; received: () => Buffer; ended: () => boolean }> {
  const [host, port] = address.split(':')
  const socket = connect({ port: Number(port), host, allowHalfOpen })
  socket.on('error', () => {})
  let received = Buffer.alloc(0)
  let ended = false
  socket.on('close', () => {
    ended = true
  })
  socket.write(
    `GET / HTTP/1.1\r\nHost: ${address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  )
  socket.on('data', (chunk: Buffer) => {
    received = Buffer.concat([received, chunk])
  })
  await until(() => received.includes('\r\n\r\n'), 'the 101')
  const head = received.toString('latin1')
  // RFC 6455 1.3's example key and its answer.
  expect(head).toContain('HTTP/1.1 101')
  expect(head).toContain('Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=')
  const start = received.indexOf('\r\n\r\n') + 4
  return { socket, received: () => received.subarray(start), ended: () => ended }
}

/** The close code of the first close frame in bytes the server sent (null before one came). */
function closeCodeIn(bytes: Buffer): number | null {
  let at = 0
  while (at + 2 <= bytes.length) {
    let length = bytes[at + 1] & 0x7f
    let header = 2
    if (length === 126) {
      length = bytes.readUInt16BE(at + 2)
      header = 4
    } else if (length === 127) {
      length = Number(bytes.readBigUInt64BE(at + 2))
      header = 10
    }
    if ((bytes[at] & 0x0f) === 0x8) return length >= 2 ? bytes.readUInt16BE(at + header) : 1005
    at += header + length
  }
  return null
}

describe('client socket (tandem-run WebSocket over a real socket)', () => {
  it('speaks with a ws client: messages of every length encoding, in order, and a pong for a ping', async () => {
    const s = await serve()
    const ws = await client(s.address)
    const got: Buffer[] = []
    ws.on('message', (data: Buffer) => got.push(data))
    const sizes = [0, 1, 125, 126, 16 * 1024, 16 * 1024 + 1, 65535, 65536, 300_000]
    for (const n of sizes) ws.send(Buffer.alloc(n, n & 0xff))
    let pong: Buffer | null = null
    ws.on('pong', (data: Buffer) => {
      pong = data
    })
    ws.ping(Buffer.from('are you there'))
    await until(() => got.length === sizes.length && pong !== null, 'the echoes and the pong')
    expect(got.map((b) => b.length)).toEqual(sizes)
    for (let i = 0; i < sizes.length; i++) expect(got[i].equals(Buffer.alloc(sizes[i], sizes[i] & 0xff))).toBe(true)
    expect(String(pong)).toBe('are you there')
    // A reply outbox: the replies in as few messages as fit in its limit, byte for byte as packFrames groups them.
    const replies = [
      encodeFrame('a'),
      encodeFrame(Buffer.alloc(70_000, 7)),
      encodeFrame('c'),
      encodeFrame('d'),
      ...Array.from({ length: 20 }, (_, i) => encodeFrame({ id: i, result: null })),
    ]
    const outbox = new ReplyOutbox(70_000)
    for (const r of replies) outbox.push(r)
    outbox.sendTo(s.sockets[0])
    expect(outbox.length).toBe(0)
    expect(outbox.bytes).toBe(0)
    const packed = packFrames(replies, 70_000)
    expect(packed).toHaveLength(3)
    await until(() => got.length === sizes.length + packed.length, 'the replies sent together')
    expect(got.slice(sizes.length)).toEqual(packed)
    expect(decodeFrame(got[sizes.length + 2])).toEqual([
      'c',
      'd',
      ...Array.from({ length: 20 }, (_, i) => ({ id: i, result: null })),
    ])
    ws.terminate()
  })

  it('answers every ping of a burst read at once, and drops only a client that leaves its pongs unread', async () => {
    const s = await serve()
    const a = await rawClient(s.address)
    // 200 pings in one write: read in one chunk, before any pong's write has called back.
    const ping = Buffer.from([0x89, 0x84, 1, 2, 3, 4, 0x71, 0x6b, 0x6d, 0x60])
    a.socket.write(Buffer.concat(Array.from({ length: 200 }, () => ping)))
    const pongs = () => {
      let n = 0
      for (let at = a.received().indexOf(0x8a); at !== -1; at = a.received().indexOf(0x8a, at + 1)) n++
      return n
    }
    await until(() => pongs() === 200 || a.ended(), 'the pongs')
    expect(a.ended()).toBe(false)
    expect(pongs()).toBe(200)
    // One that never reads: its pongs pile up behind a full socket, and it is dropped.
    const b = await rawClient(s.address)
    b.socket.pause()
    const big = Buffer.alloc(6 + 125)
    big[0] = 0x89
    big[1] = 0x80 | 125
    for (let i = 0; i < 20_000 && !b.ended(); i++) {
      if (!b.socket.write(Buffer.concat(Array.from({ length: 50 }, () => big)))) {
        await new Promise((resolve) => {
          b.socket.once('drain', resolve)
          b.socket.once('close', resolve)
        })
      }
    }
    await until(() => b.ended(), 'the client that does not read to be dropped', 30_000)
    a.socket.destroy()
  })

  it("echoes a client's close frame and its code, then ends; 'close' comes once", async () => {
    const s = await serve()
    const ws = await client(s.address)
    await until(() => s.sockets.length === 1, 'the server side')
    let closes = 0
    s.sockets[0].on('close', () => closes++)
    ws.close(4000, 'bye')
    const [code, reason] = (await once(ws, 'close')) as [number, Buffer]
    expect(code).toBe(4000)
    expect(String(reason)).toBe('bye')
    await until(() => closes === 1, "the server side's close")
    s.sockets[0].close(1000, 'again')
    expect(closes).toBe(1)
  })

  it('closes with the code and reason given, and the socket ends once the client answers', async () => {
    const s = await serve()
    const ws = await client(s.address)
    await until(() => s.sockets.length === 1, 'the server side')
    let closed = false
    s.sockets[0].on('close', () => {
      closed = true
    })
    s.sockets[0].close(1008, 'a reason')
    s.sockets[0].send(Buffer.from('not sent after the close frame'))
    const got: Buffer[] = []
    ws.on('message', (data: Buffer) => got.push(data))
    const [code, reason] = (await once(ws, 'close')) as [number, Buffer]
    expect([code, String(reason)]).toEqual([1008, 'a reason'])
    await until(() => closed, 'the server side to close')
    expect(got).toEqual([])
  })

  it('closes 1002 on an unmasked frame and 1009 on a declared length over the limit', async () => {
    const s = await serve(1000)
    const a = await rawClient(s.address)
    a.socket.write(Buffer.from([0x82, 0x01, 0x00]))
    await until(() => closeCodeIn(a.received()) !== null, 'a close frame')
    expect(closeCodeIn(a.received())).toBe(1002)
    const b = await rawClient(s.address)
    // 1001 bytes declared (limit 1000), none of them sent: refused at the header.
    b.socket.write(Buffer.from([0x82, 0xfe, 0x03, 0xe9, 1, 2, 3, 4]))
    await until(() => closeCodeIn(b.received()) !== null, 'a close frame')
    expect(closeCodeIn(b.received())).toBe(1009)
    expect(b.received().toString('latin1')).toContain('--max-frame-bytes (1000)')
    // The client answers the close: the server ends the socket.
    b.socket.write(Buffer.from([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe9]))
    await until(() => b.ended(), 'the socket to end')
    a.socket.destroy()
  })

  it('drops a peer that never answers its close frame, or never ends after its own, after the grace', async () => {
    const s = await serve(1 << 20, 300)
    const a = await rawClient(s.address)
    await until(() => s.sockets.length === 1, 'the server side')
    s.sockets[0].close(1001, 'going away')
    await until(() => closeCodeIn(a.received()) !== null, 'a close frame')
    await until(() => a.ended(), 'the socket to be dropped')
    // A peer that sends its close frame first and then keeps its side open.
    const b = await rawClient(s.address, true)
    await until(() => s.sockets.length === 2, 'the server side')
    let closed = false
    s.sockets[1].on('close', () => {
      closed = true
    })
    b.socket.write(Buffer.from([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]))
    await until(() => closeCodeIn(b.received()) === 1000, 'the echoed close')
    await until(() => closed, 'the server to drop its socket')
    b.socket.destroy()
  })

  it('refuses a handshake without a valid key or version', async () => {
    const s = await serve()
    for (const headers of [
      'Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n',
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 12\r\n',
    ]) {
      const [host, port] = s.address.split(':')
      const socket = connect(Number(port), host)
      socket.on('error', () => {})
      let text = ''
      socket.on('data', (d: Buffer) => {
        text += d.toString()
      })
      socket.write(`GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${headers}\r\n`)
      await until(() => text.includes('\r\n\r\n'), 'an answer')
      expect(text.startsWith('HTTP/1.1 400')).toBe(true)
      socket.destroy()
    }
    expect(s.refused).toEqual([
      'Missing or invalid Sec-WebSocket-Key header',
      'Missing or invalid Sec-WebSocket-Version header',
    ])
    expect(s.sockets).toEqual([])
  })
})
