import { connect } from 'node:net'
import { TandemClient } from '@tandem/client'
import { describe, expect, it } from 'vitest'
import { useNodeAndClient } from '../helpers/node-and-client.js'
import type { NodeProcess } from '../helpers/node-process.js'
import { waitFor } from '../helpers/wait.js'
import { pack, RawClient } from './raw-client.js'

/**
 * Hostile and broken input sent over a raw WebSocket to a real node. A
 * request that carries a numeric id gets `{id, error: {code, message}}` and
 * its socket stays usable; bytes that cannot carry an id close the socket
 * with a WebSocket close code (1003 text frame, 1007 bad payload, 1009 frame
 * too big, 4401 unauthorized). Either way the node goes on serving others.
 */

/** WebSocket close codes from the contract (packages/server/src/api/connection.ts). */
const CLOSE = { unsupportedData: 1003, invalidPayload: 1007, messageTooBig: 1009, unauthorized: 4401 }

const MiB = 1024 * 1024

/** A separate, well-behaved SDK client that must keep working whatever the raw clients do. */
async function expectStillServing(db: TandemClient, node: NodeProcess): Promise<void> {
  expect(node.running).toBe(true)
  const key = `alive:${Math.random()}`
  await db.put(key, 'yes')
  expect(await db.get(key)).toBe('yes')
}

/** Opens a raw socket, sends `frame`, and returns the code the server closed it with. */
async function closeCodeFor(node: NodeProcess, send: (c: RawClient) => void): Promise<number> {
  const raw = await RawClient.open(node.address)
  send(raw)
  return (await raw.closed()).code
}

describe('bad input against default limits', () => {
  const one = useNodeAndClient()

  // Rule: bytes that are not exactly one msgpack value cannot name a request id, so the socket closes with 1007.
  it.each([
    ['a never-used msgpack byte', Buffer.from([0xc1])],
    ['a truncated array', Buffer.from([0x92, 0x01])],
    ['a truncated string', Buffer.from([0xa5, 0x61, 0x62])],
    ['a map with a missing value', Buffer.from([0x81, 0xa2, 0x69, 0x64])],
    ['two values in one frame', Buffer.concat([pack({ id: 1, op: 'ping' }), pack({ id: 2, op: 'ping' })])],
    ['random bytes', Buffer.from('c1c1deadbeefc1c1', 'hex')],
  ])('closes the socket with 1007 on malformed msgpack: %s', async (_what, bytes) => {
    expect(await closeCodeFor(one.node, (c) => c.sendRaw(bytes))).toBe(CLOSE.invalidPayload)
    await expectStillServing(one.db, one.node)
  })

  // Rule: an empty binary frame holds no msgpack value at all: 1007.
  it('closes the socket with 1007 on an empty frame', async () => {
    expect(await closeCodeFor(one.node, (c) => c.sendRaw(Buffer.alloc(0)))).toBe(CLOSE.invalidPayload)
    await expectStillServing(one.db, one.node)
  })

  // Rule: RFC 6455 4.4: a handshake of a version the node does not speak is refused naming those it does.
  it('refuses a WebSocket version it does not speak with 400 and the versions it speaks', async () => {
    const at = one.node.address.lastIndexOf(':')
    const socket = connect({ host: one.node.address.slice(0, at), port: Number(one.node.address.slice(at + 1)) })
    socket.on('error', () => {})
    let text = ''
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1')
    })
    socket.write(
      'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 12\r\n\r\n',
    )
    await waitFor(() => text.includes('\r\n\r\n'), { what: 'the answer to the handshake' })
    socket.destroy()
    const head = text.slice(0, text.indexOf('\r\n\r\n')).split('\r\n')
    expect(head[0]).toMatch(/^HTTP\/1\.1 400 /)
    expect(head.map((line) => line.toLowerCase())).toContain('sec-websocket-version: 13, 8')
    await expectStillServing(one.db, one.node)
  })

  // Rule: tandem speaks msgpack in binary frames only; a text frame (even valid JSON) closes with 1003.
  it('closes the socket with 1003 on a text frame', async () => {
    expect(await closeCodeFor(one.node, (c) => c.sendRaw('{"id":1,"op":"ping"}'))).toBe(CLOSE.unsupportedData)
    await expectStillServing(one.db, one.node)
  })

  // Rule: a request must be a map with a numeric integer id, else there is nobody to answer: 1007.
  it.each([
    ['a request without an id', { op: 'ping' }],
    ['an id that is a string', { id: '1', op: 'ping' }],
    ['an id that is not an integer', { id: 1.5, op: 'ping' }],
    ['an id that is null', { id: null, op: 'get', key: 'a' }],
    ['a bare number', 42],
    ['a bare string', 'ping'],
    ['nil', null],
  ])('closes the socket with 1007 on %s', async (_what, message) => {
    expect(await closeCodeFor(one.node, (c) => c.send(message))).toBe(CLOSE.invalidPayload)
    await expectStillServing(one.db, one.node)
  })

  // Rule: requests before the bad message in a pipelined frame are still answered before the close.
  it('answers the good requests of a pipelined frame before closing on a message without an id', async () => {
    const raw = await RawClient.open(one.node.address)
    raw.send([{ id: 1, op: 'ping' }, { op: 'ping' }])
    expect((await raw.reply(1)).result).toBe('pong')
    expect((await raw.closed()).code).toBe(CLOSE.invalidPayload)
    await expectStillServing(one.db, one.node)
  })

  // Rule: a request with an id but a bad shape gets INVALID by id, and the same socket keeps working.
  it.each([
    ['an unknown op', { op: 'frobnicate' }, /frobnicate/],
    ['no op at all', {}, /op/],
    ['a key that is a number', { op: 'get', key: 1 }, /key/],
    ['a missing key', { op: 'get' }, /key/],
    ['a value that is a map', { op: 'put', key: 'k', value: { a: 1 } }, /value/],
    ['a value that is a number', { op: 'put', key: 'k', value: 5 }, /value/],
    ['a value that is nil', { op: 'put', key: 'k', value: null }, /value/],
    ['a missing value', { op: 'put', key: 'k' }, /value/],
    ['keys that are not a list', { op: 'mget', keys: 'a' }, /keys/],
    ['a list of keys with a number in it', { op: 'mget', keys: ['a', 2] }, /keys/],
    ['batch ops that are not a list', { op: 'batch', ops: 'x' }, /ops/],
    ['a batch op of an unknown type', { op: 'batch', ops: [{ type: 'merge', key: 'a' }] }, /ops/],
    ['a del batch op with a value', { op: 'batch', ops: [{ type: 'del', key: 'a', value: 'x' }] }, /ops/],
    ['a scan limit that is a string', { op: 'scan', limit: '5' }, /limit/],
    ['a scan limit that is negative', { op: 'scan', limit: -1 }, /limit/],
    ['a write concern that is a string', { op: 'put', key: 'k', value: 'v', w: 'all' }, /w/],
    ['an extra field', { op: 'get', key: 'k', colour: 'blue' }, /colour|unrecognized/i],
  ])('answers INVALID for %s', async (_what, fields, mentions) => {
    const raw = await RawClient.open(one.node.address)
    const reply = await raw.request({ id: 7, ...fields })
    expect(reply.error?.code).toBe('INVALID')
    expect(reply.error?.message).toMatch(mentions)
    expect(reply.result).toBeUndefined()
    // Nothing was written by a rejected put.
    if ((fields as { op?: string }).op === 'put') expect(await one.db.get('k')).toBeUndefined()
    // The socket is still open and answers the next request.
    expect((await raw.request({ id: 8, op: 'ping' })).result).toBe('pong')
    expect(raw.closeEvent).toBeNull()
    raw.terminate()
    await expectStillServing(one.db, one.node)
  })

  // Rule: one bad request in a pipelined frame fails alone; the others in the frame are served.
  it('fails only the bad request of a pipelined frame', async () => {
    await one.db.put('pipe:existing', 'here')
    const raw = await RawClient.open(one.node.address)
    raw.send([
      { id: 1, op: 'put', key: 'pipe:new', value: 'v' },
      { id: 2, op: 'nope' },
      { id: 3, op: 'get', key: 'pipe:existing' },
      { id: 4, op: 'get', key: 99 },
    ])
    const [r1, r2, r3, r4] = await Promise.all([1, 2, 3, 4].map((id) => raw.reply(id)))
    expect(r1.result).toMatchObject({ seq: expect.any(Number) })
    expect(r2.error?.code).toBe('INVALID')
    expect(r3.result).toBe('here')
    expect(r4.error?.code).toBe('INVALID')
    expect(await one.db.get('pipe:new')).toBe('v')
    raw.terminate()
  })

  // Rule: keys are limited to 8192 bytes (UTF-8 bytes, not characters); longer ones get TOOLARGE and change nothing.
  it('answers TOOLARGE for a key over 8192 bytes, counting UTF-8 bytes', async () => {
    const raw = await RawClient.open(one.node.address)
    const seqBefore = (await one.db.status()).seq
    const ascii = 'k'.repeat(8193)
    const euros = '€'.repeat(2731) // 2731 characters, 8193 bytes
    expect(Buffer.byteLength(euros)).toBe(8193)
    const requests = [
      { op: 'put', key: ascii, value: 'v' },
      { op: 'put', key: euros, value: 'v' },
      { op: 'get', key: ascii },
      { op: 'del', key: ascii },
      { op: 'mget', keys: ['ok', ascii] },
      { op: 'batch', ops: [{ type: 'del', key: euros }] },
      { op: 'scan', prefix: ascii },
    ]
    for (const [i, fields] of requests.entries()) {
      const reply = await raw.request({ id: i + 1, ...fields })
      expect(reply.error?.code, JSON.stringify(fields).slice(0, 40)).toBe('TOOLARGE')
      expect(reply.error?.message).toMatch(/8193 bytes.*8192/)
    }
    expect((await one.db.status()).seq, 'a rejected write was committed').toBe(seqBefore)
    // The limit itself is allowed.
    const atLimit = '€'.repeat(2730) + 'kk'
    expect(Buffer.byteLength(atLimit)).toBe(8192)
    expect((await raw.request({ id: 50, op: 'put', key: atLimit, value: 'edge' })).error).toBeUndefined()
    expect(await one.db.get(atLimit)).toBe('edge')
    raw.terminate()
    await expectStillServing(one.db, one.node)
  })

  // Rule: values are limited to 1 MiB (string bytes or binary bytes); larger gets TOOLARGE, in a batch too, and nothing is applied.
  it('answers TOOLARGE for a value over 1 MiB and applies none of its batch', async () => {
    const raw = await RawClient.open(one.node.address)
    const bigString = 'x'.repeat(MiB + 1)
    const bigBinary = new Uint8Array(MiB + 1)
    const replies = await Promise.all([
      raw.request({ id: 1, op: 'put', key: 'big:s', value: bigString }),
      raw.request({ id: 2, op: 'put', key: 'big:b', value: bigBinary }),
      raw.request({
        id: 3,
        op: 'batch',
        ops: [
          { type: 'put', key: 'big:batch-ok', value: 'small' },
          { type: 'put', key: 'big:batch-huge', value: bigBinary },
        ],
      }),
    ])
    for (const reply of replies) {
      expect(reply.error?.code).toBe('TOOLARGE')
      expect(reply.error?.message).toMatch(/1048577 bytes.*1048576/)
    }
    expect(await one.db.mget(['big:s', 'big:b', 'big:batch-ok', 'big:batch-huge'])).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
    ])
    // Exactly 1 MiB is allowed and comes back intact.
    const atLimit = new Uint8Array(MiB).fill(7)
    expect((await raw.request({ id: 4, op: 'put', key: 'big:edge', value: atLimit })).error).toBeUndefined()
    const back = (await one.db.get('big:edge')) as Uint8Array
    expect(back.byteLength).toBe(MiB)
    expect(back.every((b) => b === 7)).toBe(true)
    raw.terminate()
    await expectStillServing(one.db, one.node)
  })

  // Rule: a batch (or mget) over --max-batch-ops (default 10,000) gets TOOLARGE and nothing of it is applied.
  it('answers TOOLARGE for a batch over 10,000 ops, applying none of it', async () => {
    const raw = await RawClient.open(one.node.address)
    const ops = Array.from({ length: 10_001 }, (_, i) => ({ type: 'put', key: `many:${i}`, value: 'v' }))
    const reply = await raw.request({ id: 1, op: 'batch', ops })
    expect(reply.error?.code).toBe('TOOLARGE')
    expect(reply.error?.message).toMatch(/10001.*10000/)
    const mget = await raw.request({ id: 2, op: 'mget', keys: ops.map((o) => o.key) })
    expect(mget.error?.code).toBe('TOOLARGE')
    expect(await one.db.mget(['many:0', 'many:10000'])).toEqual([undefined, undefined])
    raw.terminate()
    await expectStillServing(one.db, one.node)
  })
})

describe('frame and batch limits set by flags', () => {
  const one = useNodeAndClient(['--max-frame-bytes', '65536', '--max-batch-ops', '100'])

  // Rule: a WebSocket message over --max-frame-bytes closes the socket with 1009; the server never buffers it whole.
  it('closes the socket with 1009 on a frame over --max-frame-bytes', async () => {
    const raw = await RawClient.open(one.node.address)
    // Just under the limit is served.
    const fits = await raw.request({ id: 1, op: 'put', key: 'frame:fits', value: 'x'.repeat(60_000) })
    expect(fits.error).toBeUndefined()
    raw.send({ id: 2, op: 'put', key: 'frame:huge', value: 'x'.repeat(70_000) })
    expect((await raw.closed()).code).toBe(CLOSE.messageTooBig)
    expect(await one.db.get('frame:huge')).toBeUndefined()
    expect(((await one.db.get('frame:fits')) as string).length).toBe(60_000)
    await expectStillServing(one.db, one.node)
  })

  // Rule: --max-batch-ops sets the batch limit: one over gets TOOLARGE and applies nothing; the limit itself is fine.
  it('answers TOOLARGE for a batch over --max-batch-ops', async () => {
    const raw = await RawClient.open(one.node.address)
    const ops = (n: number, tag: string) =>
      Array.from({ length: n }, (_, i) => ({ type: 'put', key: `${tag}:${i}`, value: 'v' }))
    const over = await raw.request({ id: 1, op: 'batch', ops: ops(101, 'over') })
    expect(over.error?.code).toBe('TOOLARGE')
    expect(over.error?.message).toMatch(/101.*100/)
    expect(await one.db.get('over:0')).toBeUndefined()
    const at = await raw.request({ id: 2, op: 'batch', ops: ops(100, 'at') })
    expect(at.error).toBeUndefined()
    expect(await one.db.get('at:99')).toBe('v')
    raw.terminate()
    await expectStillServing(one.db, one.node)
  })
})

describe('auth token', () => {
  const TOKEN = 'correct horse battery staple'
  const one = useNodeAndClient(['--auth-token', TOKEN], { authToken: TOKEN })

  /** Sends a put on `raw`, expects UNAUTHORIZED by id and the 4401 close, and checks the put did nothing. */
  async function expectRefused(raw: RawClient, key: string): Promise<void> {
    const reply = await raw.request({ id: 1, op: 'put', key, value: 'sneaky' }).catch(() => raw.replies.get(1))
    expect(reply?.error?.code).toBe('UNAUTHORIZED')
    expect((await raw.closed()).code).toBe(CLOSE.unauthorized)
    expect(await one.db.get(key)).toBeUndefined()
    await expectStillServing(one.db, one.node)
  }

  // Rule: with --auth-token, a connection that presents no token is refused with UNAUTHORIZED, and its request does nothing.
  it('refuses a connection with no token', async () => {
    await expectRefused(await RawClient.open(one.node.address), 'auth:none')
  })

  // Rule: a wrong bearer token is refused like no token.
  it('refuses a wrong token in the Authorization header', async () => {
    await expectRefused(
      await RawClient.open(one.node.address, { headers: { authorization: 'Bearer x' } }),
      'auth:header',
    )
  })

  // Rule: a wrong token in the auth request is refused with UNAUTHORIZED and the socket closed (no second guess).
  it('refuses a wrong token in an auth request', async () => {
    const raw = await RawClient.open(one.node.address)
    const reply = await raw.request({ id: 1, op: 'auth', token: `${TOKEN}!` }).catch(() => raw.replies.get(1))
    expect(reply?.error?.code).toBe('UNAUTHORIZED')
    expect((await raw.closed()).code).toBe(CLOSE.unauthorized)
    await expectStillServing(one.db, one.node)
  })

  // Rule: the right token, by header or by auth request, opens the connection for every op.
  it('accepts the right token in the header or in an auth request', async () => {
    const byHeader = await RawClient.open(one.node.address, { headers: { authorization: `Bearer ${TOKEN}` } })
    expect((await byHeader.request({ id: 1, op: 'put', key: 'auth:header-ok', value: 'h' })).error).toBeUndefined()
    const byRequest = await RawClient.open(one.node.address)
    expect((await byRequest.request({ id: 1, op: 'auth', token: TOKEN })).result).toBe(true)
    expect((await byRequest.request({ id: 2, op: 'get', key: 'auth:header-ok' })).result).toBe('h')
    expect(byHeader.closeEvent).toBeNull()
    expect(byRequest.closeEvent).toBeNull()
    byHeader.terminate()
    byRequest.terminate()
  })

  // Rule: the SDK reports a refused token as UNAUTHORIZED, not as a network failure.
  it('fails SDK connect with UNAUTHORIZED for a missing or wrong token', async () => {
    for (const authToken of [undefined, 'wrong']) {
      const err = await TandemClient.connect({ servers: [one.node.address], authToken, connectTimeoutMs: 2000 }).catch(
        (e) => e,
      )
      expect(err?.code).toBe('UNAUTHORIZED')
    }
    await expectStillServing(one.db, one.node)
  })

  // Rule: /status and /metrics need the token (401 without); /health does not; /metrics is Prometheus text.
  it('guards /status and /metrics with the token but not /health', async () => {
    const url = (path: string) => `http://${one.node.address}${path}`
    const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } })
    expect((await fetch(url('/health'))).status).toBe(200)
    for (const path of ['/status', '/metrics']) {
      expect((await fetch(url(path))).status, path).toBe(401)
      expect((await fetch(url(path), bearer('x'))).status, path).toBe(401)
    }
    const status = await fetch(url('/status'), bearer(TOKEN))
    expect(status.status).toBe(200)
    const body = await status.json()
    expect(body).toMatchObject({ nodeId: expect.any(String), role: 'master', readOnly: false, replicas: [] })
    expect(body.seq).toBe((await one.db.status()).seq)

    const metrics = await fetch(url('/metrics'), bearer(TOKEN))
    expect(metrics.status).toBe(200)
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    const samples = parsePrometheus(await metrics.text())
    // The refusals above were counted.
    expect(samples.get('tandem_errors_total{code="UNAUTHORIZED"}')).toBeGreaterThanOrEqual(3)
    expect(samples.get('tandem_seq')).toBe(body.seq)
  })
})

/**
 * Parses Prometheus text exposition (0.0.4) strictly enough to fail on
 * anything a scraper would reject: every sample must match the grammar and
 * belong to a family declared by a preceding # TYPE line.
 */
function parsePrometheus(text: string): Map<string, number> {
  expect(text.endsWith('\n')).toBe(true)
  const samples = new Map<string, number>()
  const typed = new Set<string>()
  const name = '[a-zA-Z_:][a-zA-Z0-9_:]*'
  const label = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"'
  const sample = new RegExp(`^(${name})(\\{(?:${label})(?:,${label})*\\})? (\\S+)(?: -?\\d+)?$`)
  for (const line of text.split('\n').filter((l) => l !== '')) {
    const type = new RegExp(`^# TYPE (${name}) (counter|gauge|histogram|summary|untyped)$`).exec(line)
    if (type) {
      typed.add(type[1])
      continue
    }
    if (line.startsWith('#')) {
      expect(line, 'comment line').toMatch(new RegExp(`^# HELP ${name} `))
      continue
    }
    const m = sample.exec(line)
    expect(m, `not a Prometheus sample: ${line}`).not.toBeNull()
    const [, metric, labels = '', value] = m!
    const family = [metric, metric.replace(/_(total|count|sum|bucket)$/, '')].find((f) => typed.has(f))
    expect(family, `sample ${metric} has no # TYPE line before it`).toBeDefined()
    expect(Number.isNaN(Number(value)) && value !== 'NaN', `bad value in ${line}`).toBe(false)
    samples.set(`${metric}${labels}`, Number(value))
  }
  expect(samples.size).toBeGreaterThan(0)
  return samples
}
