import { metricSum } from '@tandem/bench/fixtures'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { startRespNode } from './helpers.js'
import { command, RawResp } from './raw.js'

/**
 * A RESP command must arrive whole within --frame-timeout of its first
 * bytes, as a WebSocket frame must: a client that stops in the middle of
 * one is closed, and the node forgets what it held for it.
 */
describe('RESP --frame-timeout', () => {
  let node: Awaited<ReturnType<typeof startRespNode>>
  const open: RawResp[] = []

  beforeAll(async () => {
    node = await startRespNode(['--sync', 'none', '--frame-timeout', '1500ms'])
  })
  afterAll(async () => {
    for (const c of open) c.close()
    await node?.stop()
  })

  async function connect(): Promise<RawResp> {
    const c = await RawResp.open(node.port)
    open.push(c)
    return c
  }

  it('closes a connection whose command stops half-way, and keeps one whose commands arrive whole', async () => {
    const steady = await connect()
    const stalled = await connect()
    // A SET whose 64 KiB value stops after its first 1,000 bytes, after a whole command.
    await stalled.write(
      Buffer.concat([
        command('SET', 'a', '1'),
        Buffer.from(`*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$65536\r\n${'x'.repeat(1000)}`),
      ]),
    )
    await stalled.until((t) => t.startsWith('+OK\r\n'))

    // A command sent in two pieces well within the timeout is answered.
    const set = command('SET', 'b', '2')
    await steady.write(set.subarray(0, 8))
    await steady.write(set.subarray(8))
    await steady.until((t) => t === '+OK\r\n')
    steady.received.length = 0

    await stalled.closedByServer(15_000)
    expect(stalled.text).toContain('-ERR a command did not arrive whole within --frame-timeout (1500 ms)')

    // Idle with nothing half-sent is not a slow command.
    await steady.write(command('PING'))
    await steady.until((t) => t === '+PONG\r\n')
    expect(steady.closed).toBe(false)
  })
})

/**
 * Bytes of commands still arriving, across all RESP connections, are held
 * to --max-partial-frame-bytes: the connection whose read takes the total
 * past it is closed, the others go on.
 */
describe('RESP --max-partial-frame-bytes', () => {
  let node: Awaited<ReturnType<typeof startRespNode>>
  const open: RawResp[] = []
  const BUDGET = 1024 * 1024

  beforeAll(async () => {
    node = await startRespNode(['--sync', 'none', '--max-partial-frame-bytes', String(BUDGET)])
  })
  afterAll(async () => {
    for (const c of open) c.close()
    await node?.stop()
  })

  it('closes the connection whose command takes the bytes held past the budget, and keeps the others', async () => {
    const first = await RawResp.open(node.port)
    const second = await RawResp.open(node.port)
    open.push(first, second)
    const value = 'v'.repeat(900 * 1024)
    const set = command('SET', 'big', value)
    const part = 600 * 1024
    await first.write(set.subarray(0, part))
    await waitFor(async () => (await metricSum(node.node, 'tandem_resp_buffered_bytes')) >= part, {
      what: "the first client's bytes to be held",
    })
    await second.write(set.subarray(0, part))
    await second.closedByServer(15_000)
    expect(second.text).toContain('-ERR the node holds too many bytes of commands still arriving')
    // What the closed connection held is forgotten; the first one completes its command.
    await waitFor(async () => (await metricSum(node.node, 'tandem_resp_buffered_bytes')) <= part, {
      what: "the closed connection's bytes to be dropped",
    })
    await first.write(set.subarray(part))
    await first.until((t) => t === '+OK\r\n')
    expect(first.closed).toBe(false)
  })
})
