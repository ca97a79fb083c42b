import { connect } from 'node:net'
import { TandemClient } from '@tandem/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type NodeProcess, startNode } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { RawClient } from './raw-client.js'

/**
 * Rule: every HTTP refusal (a WebSocket handshake refused, a path that
 * does not exist, a method an endpoint does not take) answers its status
 * with the standard reason phrase and a JSON body
 * `{"error":{"code":C,"message":M}}`, C one of the README's error codes,
 * as a refused request on the WebSocket API does.
 */

interface Answer {
  statusLine: string
  headers: string[]
  body: unknown
}

/** Sends `head` (an HTTP request without a body) on a fresh socket and reads the answer to the end. */
function ask(address: string, head: string): Promise<Answer> {
  const at = address.lastIndexOf(':')
  return new Promise((resolve, reject) => {
    const socket = connect({ host: address.slice(0, at), port: Number(address.slice(at + 1)) })
    let text = ''
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8')
    })
    socket.on('error', reject)
    socket.on('end', () => {
      socket.destroy()
      const split = text.indexOf('\r\n\r\n')
      const lines = text.slice(0, split).split('\r\n')
      const raw = text.slice(split + 4)
      let body: unknown = raw
      try {
        body = JSON.parse(raw)
      } catch {}
      resolve({ statusLine: lines[0], headers: lines.slice(1).map((l) => l.toLowerCase()), body })
    })
    socket.write(`${head.replace(/\n/g, '\r\n')}Host: x\r\n\r\n`)
  })
}

function upgrade(path: string, extra: Record<string, string> = {}, method = 'GET'): string {
  const headers: Record<string, string> = {
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version': '13',
    ...extra,
  }
  return `${method} ${path} HTTP/1.1\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\n`)
    .join('')}`
}

function expectRefusal(answer: Answer, status: string, code: string, message: RegExp): void {
  expect(answer.statusLine).toBe(`HTTP/1.1 ${status}`)
  expect(answer.headers).toContain('content-type: application/json')
  expect(answer.body).toEqual({ error: { code, message: expect.stringMatching(message) } })
}

describe('HTTP refusals', () => {
  const dir = tempDir()
  let node: NodeProcess
  let db: TandemClient
  beforeAll(async () => {
    node = await startNode(dir.path, ['--auth-token', 'secret', '--max-connections', '2'])
    db = await TandemClient.connect({ servers: [node.address], authToken: 'secret' })
  })
  afterAll(async () => {
    await db?.close()
    await node?.stop()
    dir.remove()
  })

  it('a path that does not exist: 404 NOTFOUND', async () => {
    expectRefusal(
      await ask(node.address, 'GET /nope HTTP/1.1\nConnection: close\n'),
      '404 Not Found',
      'NOTFOUND',
      /\/nope/,
    )
  })

  it('a method an endpoint does not take: 405 INVALID', async () => {
    const answer = await ask(node.address, 'POST /ui/ HTTP/1.1\nContent-Length: 0\nConnection: close\n')
    expectRefusal(answer, '405 Method Not Allowed', 'INVALID', /POST/)
    expect(answer.headers).toContain('allow: get, head')
    // A HEAD answer has no body; its status line and type are those of the GET refusal.
    const head = await ask(
      node.address,
      'HEAD /ui/api/events HTTP/1.1\nAuthorization: Bearer secret\nConnection: close\n',
    )
    expect(head.statusLine).toBe('HTTP/1.1 405 Method Not Allowed')
    expect(head.headers).toContain('content-type: application/json')
  })

  it('a handshake of a WebSocket version the node does not speak: 400 INVALID, naming the versions', async () => {
    const answer = await ask(node.address, upgrade('/', { 'Sec-WebSocket-Version': '12' }))
    expectRefusal(answer, '400 Bad Request', 'INVALID', /Sec-WebSocket-Version/)
    expect(answer.headers).toContain('sec-websocket-version: 13, 8')
  })

  it('a handshake that is not a GET: 405 INVALID', async () => {
    expectRefusal(await ask(node.address, upgrade('/', {}, 'POST')), '405 Method Not Allowed', 'INVALID', /method/)
  })

  it('a fail-over link to a node in no group: 404 NOTFOUND', async () => {
    expectRefusal(await ask(node.address, upgrade('/cluster')), '404 Not Found', 'NOTFOUND', /fail-over group/)
  })

  it('a watch without the token: 401 UNAUTHORIZED', async () => {
    expectRefusal(await ask(node.address, upgrade('/watch')), '401 Unauthorized', 'UNAUTHORIZED', /token/i)
  })

  it('a client over --max-connections: 503 BUSY', async () => {
    // The SDK's connection and this one take both slots.
    const second = await RawClient.open(node.address, { headers: { Authorization: 'Bearer secret' } })
    expectRefusal(
      await ask(node.address, upgrade('/', { Authorization: 'Bearer secret' })),
      '503 Service Unavailable',
      'BUSY',
      /connection limit/,
    )
    second.terminate()
  })
})
