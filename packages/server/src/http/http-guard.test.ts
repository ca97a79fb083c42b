import { createServer, type Server } from 'node:http'
import { type AddressInfo, connect } from 'node:net'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { handlerErrors } from '../util/handler-guard.js'
import { createLogger } from '../util/logger.js'
import { guardRequest, guardUpgrade } from './http-guard.js'

/**
 * Rule: a throw out of the HTTP server's request or upgrade listener fails
 * that request only: 500 INTERNAL with the README's error body while no
 * part of an answer has gone out, else that socket is destroyed; logged
 * with its stack and counted in tandem_handler_errors_total{link="http"}.
 * Unguarded, the throw is an uncaught exception (the node's end). A real
 * HTTP server on port 0 and raw sockets; the listeners throw on purpose.
 */

/** What a raw socket read until the server ended or destroyed it. */
function exchange(port: number, request: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    let text = ''
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1')
    })
    // A destroyed socket may reach here as a reset; the close follows either way.
    socket.on('error', () => {})
    socket.on('close', () => resolve(text))
    socket.write(request.replace(/\n/g, '\r\n'))
  })
}

function httpCount(): number {
  return handlerErrors().find((e) => e.labels.link === 'http')?.value ?? 0
}

const UPGRADE =
  'Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n'

describe('the HTTP listeners’ guard', () => {
  let server: Server
  let port = 0
  const logged: Record<string, unknown>[] = []

  beforeEach(async () => {
    logged.length = 0
    const logger = createLogger({ level: 'error', format: 'json', write: (line) => logged.push(JSON.parse(line)) })
    server = createServer(
      guardRequest(logger, (req, res) => {
        if (req.url === '/ok') return void res.end('ok')
        if (req.url === '/after-head') {
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '10' })
          res.write('half')
        }
        throw new Error(`request listener threw on ${req.url}`)
      }),
    )
    server.on(
      'upgrade',
      guardUpgrade(logger, (req, socket) => {
        if (req.url === '/after-101') socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n')
        throw new Error(`upgrade listener threw on ${req.url}`)
      }),
    )
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as AddressInfo).port
  })

  afterEach(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })

  it('a request whose listener throws before answering gets 500 INTERNAL; logged, counted; the server serves on', async () => {
    const before = httpCount()
    const text = await exchange(port, 'GET /boom HTTP/1.1\nHost: x\nConnection: close\n\n')
    expect(text.startsWith('HTTP/1.1 500 Internal Server Error\r\n')).toBe(true)
    expect(text.toLowerCase()).toContain('content-type: application/json')
    const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4))
    expect(body).toEqual({ error: { code: 'INTERNAL', message: expect.stringMatching(/logged/) } })
    expect(httpCount()).toBe(before + 1)
    expect(logged).toHaveLength(1)
    expect(logged[0].link).toBe('http')
    expect(logged[0].stack).toMatch(/request listener threw on \/boom\n\s+at /)
    expect(await exchange(port, 'GET /ok HTTP/1.1\nHost: x\nConnection: close\n\n')).toMatch(
      /^HTTP\/1.1 200 OK[\s\S]*ok$/,
    )
  })

  it('a request whose answer had begun: its socket is destroyed, the answer left short', async () => {
    const before = httpCount()
    // Without the guard's destroy, a keep-alive socket would stay open here for ever.
    const text = await exchange(port, 'GET /after-head HTTP/1.1\nHost: x\n\n')
    // What was queued before the destroy may or may not have gone out; never a whole answer, never a 500.
    expect(text).not.toContain('500')
    const body = text.includes('\r\n\r\n') ? text.slice(text.indexOf('\r\n\r\n') + 4) : ''
    expect(body.length).toBeLessThan(10)
    expect(httpCount()).toBe(before + 1)
  })

  it('a handshake whose listener throws before writing anything gets 500 INTERNAL', async () => {
    const before = httpCount()
    const text = await exchange(port, `GET /boom HTTP/1.1\nHost: x\n${UPGRADE}\n`)
    expect(text.startsWith('HTTP/1.1 500 Internal Server Error\r\n')).toBe(true)
    const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4))
    expect(body).toEqual({ error: { code: 'INTERNAL', message: expect.stringMatching(/logged/) } })
    expect(httpCount()).toBe(before + 1)
    expect(logged[0].stack).toMatch(/upgrade listener threw on \/boom/)
  })

  it('a handshake past its 101: the socket is destroyed, nothing else written', async () => {
    const before = httpCount()
    const text = await exchange(port, `GET /after-101 HTTP/1.1\nHost: x\n${UPGRADE}\n`)
    // The 101 (or the part of it that left before the destroy), and nothing after it.
    expect('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n'.startsWith(text)).toBe(true)
    expect(text).toMatch(/^(HTTP\/1.1 101 |$)/)
    expect(httpCount()).toBe(before + 1)
  })
})
