import { metricSum } from '@tandem/bench/fixtures'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { has, startRedisServer, startRespNode } from './helpers.js'
import { command, RawResp } from './raw.js'

const FRAME = 1024 * 1024

/**
 * Malformed RESP gets `-ERR Protocol error: ...` and a closed connection
 * (as from Redis, which the same bytes are also sent to where it is
 * installed), the node holds no more than its limits for it (bytes it
 * counts itself, in /metrics), and a well-behaved client on another
 * connection is served throughout.
 */
describe('malformed RESP', () => {
  let tandem: Awaited<ReturnType<typeof startRespNode>>
  let redis: Awaited<ReturnType<typeof startRedisServer>> | undefined
  let bystander: RawResp
  let bystanderOk = 0
  let bystanderStop = false
  let bystanderLoop: Promise<void>

  beforeAll(async () => {
    tandem = await startRespNode(['--sync', 'none', '--max-frame-bytes', String(FRAME)])
    if (has('redis-server')) redis = await startRedisServer()
    bystander = await RawResp.open(tandem.port)
    // A client that keeps writing and reading its own key while the others misbehave.
    bystanderLoop = (async () => {
      for (let i = 0; !bystanderStop; i++) {
        const before = bystander.text.length
        await bystander.write(Buffer.concat([command('SET', 'bystander', `v${i}`), command('GET', 'bystander')]))
        const want = `+OK\r\n$${`v${i}`.length}\r\nv${i}\r\n`
        await bystander.until((t) => t.length >= before + want.length, 10_000, `bystander reply ${i}`)
        expect(bystander.text.slice(before)).toBe(want)
        bystanderOk++
      }
    })()
  })

  afterAll(async () => {
    bystanderStop = true
    await bystanderLoop?.catch(() => {})
    bystander?.close()
    await Promise.all([tandem?.stop(), redis?.stop()])
  })

  /** Sends `bytes`; expects a protocol error line starting with `expected`, then the server's close. */
  async function refused(port: number, bytes: Buffer | string, expected: string): Promise<string> {
    const c = await RawResp.open(port)
    try {
      await c.write(bytes)
      await c.until((t) => t.includes('\r\n') && t.includes('-ERR Protocol error'), 10_000, 'a protocol error')
      await c.closedByServer()
      const line = c.text.slice(c.text.indexOf('-ERR Protocol error'))
      expect(line.startsWith(expected), line).toBe(true)
      return line.slice(0, line.indexOf('\r\n'))
    } finally {
      c.close()
    }
  }

  const cases: [string, () => Buffer | string, string, boolean][] = [
    ['a bad type byte in a command', () => '*1\r\n?3\r\nfoo\r\n', "-ERR Protocol error: expected '$', got '?'", true],
    ['a negative bulk length', () => '*1\r\n$-5\r\n', '-ERR Protocol error: invalid bulk length', true],
    ['a negative array length', () => '*-5\r\n', '-ERR Protocol error: invalid multibulk length', false],
    ['a bulk length that is no number', () => '*1\r\n$12x\r\n', '-ERR Protocol error: invalid bulk length', true],
    ['a huge array length', () => '*99999999999999999999\r\n', '-ERR Protocol error: invalid multibulk length', true],
    [
      'a 1 GB declared bulk',
      () => `*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1073741824\r\n${'x'.repeat(64 * 1024)}`,
      '-ERR Protocol error: invalid bulk length',
      true,
    ],
    [
      'a bulk not ended by CRLF',
      () => '*1\r\n$3\r\nfooXY*1\r\n$4\r\nPING\r\n',
      '-ERR Protocol error: bulk string',
      false,
    ],
    ['deeply nested arrays', () => '*1\r\n'.repeat(100_000), "-ERR Protocol error: expected '$', got '*'", true],
    [
      'an inline command with 100k arguments',
      () => `SET${' a'.repeat(100_000)}\r\n`,
      '-ERR Protocol error: too big inline request',
      true,
    ],
    [
      'an endless header line',
      () => `*${'1'.repeat(100_000)}`,
      '-ERR Protocol error: too big mbulk count string',
      true,
    ],
  ]

  for (const [name, bytes, expected, redisToo] of cases) {
    it(`${name}: clear error, connection closed${redisToo ? ', like Redis' : ''}`, async () => {
      const line = await refused(tandem.port, bytes(), expected)
      expect(line.length).toBeLessThan(200)
      if (redisToo && redis) await refused(redis.port, bytes(), expected)
    })
  }

  it('replies to the commands before a malformed one, in order, then the error', async () => {
    const c = await RawResp.open(tandem.port)
    await c.write(Buffer.concat([command('SET', 'before', '1'), command('GET', 'before'), Buffer.from('*1\r\n:1\r\n')]))
    await c.closedByServer()
    expect(c.text).toBe("+OK\r\n$1\r\n1\r\n-ERR Protocol error: expected '$', got ':'\r\n")
  })

  it('holds at most one command of bytes for an unterminated bulk, counted, and frees them on close', async () => {
    const c = await RawResp.open(tandem.port)
    const declared = FRAME - 100
    const sent = 600_000
    await c.write(`*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$${declared}\r\n${'x'.repeat(sent)}`)
    await waitFor(async () => (await metricSum(tandem.node, 'tandem_resp_buffered_bytes')) >= sent, {
      what: 'the partial command to be counted',
    })
    c.close()
    await waitFor(async () => (await metricSum(tandem.node, 'tandem_resp_buffered_bytes')) === 0, {
      what: 'the bytes to be released',
    })
  })

  it('a value over --max-value-bytes but within a command is TOOLARGE and the connection goes on', async () => {
    const small = await startRespNode(['--sync', 'none', '--max-value-bytes', '1000'])
    try {
      const c = await RawResp.open(small.port)
      await c.write(Buffer.concat([command('SET', 'big', 'y'.repeat(5000)), command('PING')]))
      await c.until((t) => t.endsWith('+PONG\r\n'))
      expect(c.text).toMatch(/^-TOOLARGE value is 5000 bytes; the limit is 1000\r\n\+PONG\r\n$/)
      c.close()
    } finally {
      await small.stop()
    }
  })

  it('never held more than a command plus a read for any connection, and the bystander was served throughout', async () => {
    const peak = await metricSum(tandem.node, 'tandem_resp_buffered_bytes_peak')
    expect(peak).toBeGreaterThan(0)
    expect(peak).toBeLessThanOrEqual(FRAME + 64 * 1024)
    expect(await metricSum(tandem.node, 'tandem_resp_protocol_errors_total')).toBeGreaterThanOrEqual(cases.length)
    expect(bystanderOk).toBeGreaterThan(0)
    const before = bystanderOk
    await waitFor(() => bystanderOk > before + 2, { what: 'the bystander to go on' })
  })
})
