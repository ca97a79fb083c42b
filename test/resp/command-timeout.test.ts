import { afterAll, beforeAll, describe, expect, it } from 'vitest'
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
