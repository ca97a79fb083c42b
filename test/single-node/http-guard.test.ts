import { connect } from 'node:net'
import { describe, expect, it } from 'vitest'
import { useNodeAndClient } from '../helpers/node-and-client.js'
import { PrometheusText } from '../helpers/prometheus.js'
import { waitFor } from '../helpers/wait.js'

/**
 * Rule: whatever arrives on the HTTP port (status, metrics, /convergence,
 * the console, WebSocket handshakes), the node answers it and goes on
 * serving; should its HTTP listeners ever throw, that request alone fails
 * (500 INTERNAL with the README's error body), logged with its stack and
 * counted in tandem_handler_errors_total{link="http"}.
 *
 * The hostile inputs below are answered without a throw (each a status
 * line; nothing counted). No real input is known to make the listeners
 * throw, so the throw itself is on a test-only path: this node runs with
 * TANDEM_TEST_HTTP_THROW_PATH=/test-throw, and a request or handshake for
 * exactly that path throws inside the listener. Before the guard, that
 * throw was an uncaught exception and the node exited.
 */

const TOKEN = 'secret'
const AUTH = `Authorization: Bearer ${TOKEN}\n`
const UPGRADE =
  'Upgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n'

/**
 * Writes `request` (latin1, \n for CRLF) on a fresh socket and reads the
 * answer's head: until the socket closes, or the head is in and either its
 * content-length is read or it opened a stream or a WebSocket (which stays
 * open: the socket is then destroyed). Resolves the status line.
 */
function statusOf(address: string, request: string): Promise<{ statusLine: string; text: string }> {
  const at = address.lastIndexOf(':')
  return new Promise((resolve) => {
    const socket = connect({ host: address.slice(0, at), port: Number(address.slice(at + 1)) })
    let text = ''
    const done = () => {
      socket.destroy()
      resolve({ statusLine: text.split('\r\n')[0], text })
    }
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1')
      const end = text.indexOf('\r\n\r\n')
      if (end === -1) return
      const head = text.slice(0, end).toLowerCase()
      const length = /\r\ncontent-length: (\d+)/.exec(head)
      if (
        length
          ? text.length - end - 4 >= Number(length[1])
          : / 101 /.test(head.split('\r\n')[0]) ||
            /\r\ncontent-type: (text\/event-stream|application\/x-ndjson)/.test(head)
      )
        done()
    })
    // A reset after the answer (Node closes a refused request with bytes unread) ends the read too.
    socket.on('error', done)
    socket.on('close', done)
    socket.write(Buffer.from(request.replace(/\n/g, '\r\n'), 'latin1'))
  })
}

const HOSTILE: [string, string, RegExp][] = [
  ['a truncated percent-escape', 'GET /%E0%A4%A HTTP/1.1\nHost: x\n\n', / 404 /],
  ['bad percent-encoding under /ui', 'GET /ui/%E0%A4%A%ZZ%/..%2f..%2fpackage.json HTTP/1.1\nHost: x\n\n', / 404 /],
  ['bad percent-encoding in a console API path', `GET /ui/api/%E0%A4%A HTTP/1.1\nHost: x\n${AUTH}\n`, / 404 /],
  [
    'a report stream asked with garbage parameters',
    `GET /ui/api/reports?every=%E0%A4%A&%=%&every=1e999&every HTTP/1.1\nHost: x\n${AUTH}\n`,
    / 200 /,
  ],
  ['a 12 KB query string', `GET /status?${'q=%E0%A4%A&'.repeat(1100)} HTTP/1.1\nHost: x\n${AUTH}\n`, / 200 /],
  // Node refuses it before tandem sees it; the reset of the bytes it left unread may beat its answer.
  [
    'a query string over the header limit',
    `GET /metrics?${'a=%'.repeat(30_000)} HTTP/1.1\nHost: x\n\n`,
    /^(HTTP\/1.1 431 |$)/,
  ],
  ['/convergence with a query of escapes', `GET /convergence?%00%ff%%%u0000 HTTP/1.1\nHost: x\n${AUTH}\n`, / 200 /],
  ['a Host of an unclosed IPv6 bracket', 'GET /health HTTP/1.1\nHost: [::1\n\n', / 200 /],
  ['a Host of latin1 bytes', 'GET /health HTTP/1.1\nHost: \xff\xfe\xe0\xa4\n\n', / 200 /],
  ['an empty Host', 'GET /ready HTTP/1.1\nHost: \n\n', / 200 /],
  ['two Host headers', `GET /status HTTP/1.1\nHost: a\nHost: [b\n${AUTH}\n`, / 200 /],
  ['no Host at all (HTTP/1.1)', 'GET /health HTTP/1.1\n\n', / 400 /],
  ['an absolute-form target with a broken authority', 'GET http://[::1/status HTTP/1.1\nHost: x\n\n', / 404 /],
  ['a target of //[', 'GET //[ HTTP/1.1\nHost: x\n\n', / 404 /],
  ['an asterisk target', 'OPTIONS * HTTP/1.1\nHost: x\n\n', / 404 /],
  [
    'a bearer token of latin1 bytes on /status',
    'GET /status HTTP/1.1\nHost: x\nAuthorization: Bearer \xff\x80\n\n',
    / 401 /,
  ],
  ['a handshake to a path of bad escapes', `GET /%E0%A4%A?%ZZ HTTP/1.1\nHost: [::1\n${UPGRADE}\n`, / 101 /],
  [
    'a watch handshake with garbage parameters',
    `GET /watch?prefix=%E0%A4%A&fromSeq=-1e999 HTTP/1.1\nHost: x\n${AUTH}${UPGRADE}\n`,
    / 101 /,
  ],
  [
    'a handshake with an empty subprotocol list',
    `GET / HTTP/1.1\nHost: x\n${UPGRADE}Sec-WebSocket-Protocol: ,,,\n\n`,
    / 400 /,
  ],
  [
    'a handshake with two keys',
    `GET / HTTP/1.1\nHost: x\n${UPGRADE}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\n\n`,
    / 400 /,
  ],
  ['a handshake of version 13abc', `GET / HTTP/1.1\nHost: x\n${UPGRADE.replace('13', '13abc')}\n`, / 400 /],
  [
    'a replication handshake to a bad-escape path',
    `GET /replication%E0%A4%A HTTP/1.1\nHost: \xff\n${UPGRADE}\n`,
    / 101 /,
  ],
  ['a fail-over handshake with a query of escapes', `GET /cluster?%%% HTTP/1.1\nHost: x\n${UPGRADE}\n`, / 404 /],
]

describe('the HTTP port under hostile input', () => {
  const one = useNodeAndClient(
    ['--auth-token', TOKEN],
    { authToken: TOKEN },
    { TANDEM_TEST_HTTP_THROW_PATH: '/test-throw' },
  )

  async function httpThrows(): Promise<number> {
    const res = await fetch(`http://${one.node.address}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })
    return new PrometheusText(await res.text()).value('tandem_handler_errors_total', { link: 'http' }) ?? 0
  }

  it('answers each hostile request, throws on none and serves on', async () => {
    for (const [what, request, expected] of HOSTILE) {
      const { statusLine } = await statusOf(one.node.address, request)
      expect(statusLine, what).toMatch(expected)
      expect(one.node.running, what).toBe(true)
    }
    expect(await httpThrows()).toBe(0)
    await one.db.put('k', 'after the hostile requests')
    expect(await one.db.get('k')).toBe('after the hostile requests')
  })

  it('a throw in the request or upgrade listener answers that request 500 INTERNAL; logged, counted, the node serves on', async () => {
    const request = await statusOf(
      one.node.address,
      `GET /test-throw?x=1 HTTP/1.1\nHost: x\n${AUTH}Connection: close\n\n`,
    )
    expect(request.statusLine).toBe('HTTP/1.1 500 Internal Server Error')
    expect(JSON.parse(request.text.slice(request.text.indexOf('\r\n\r\n') + 4))).toEqual({
      error: { code: 'INTERNAL', message: expect.any(String) },
    })
    const handshake = await statusOf(one.node.address, `GET /test-throw HTTP/1.1\nHost: x\n${AUTH}${UPGRADE}\n`)
    expect(handshake.statusLine).toBe('HTTP/1.1 500 Internal Server Error')
    expect(JSON.parse(handshake.text.slice(handshake.text.indexOf('\r\n\r\n') + 4)).error.code).toBe('INTERNAL')

    expect(one.node.running).toBe(true)
    await one.db.put('k', 'after the throws')
    expect(await one.db.get('k')).toBe('after the throws')
    const line = await one.node.waitForLog(
      (l) => l.msg === 'a connection handler threw; that connection is closed' && l.link === 'http',
    )
    expect(String(line.stack)).toMatch(/test-only throw in the (request|upgrade) listener[\s\S]*\n\s+at /)
    expect(
      await waitFor(async () => ((await httpThrows()) === 2 ? 2 : undefined), { what: 'both throws counted' }),
    ).toBe(2)
  })
})
