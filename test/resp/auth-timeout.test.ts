import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRespNode } from './helpers.js'
import { command, RawResp } from './raw.js'

/**
 * With --auth-token, RESP sockets that never authenticate give their
 * connection slot back after --auth-timeout, so they cannot lock out the
 * clients that have the token.
 */
describe('RESP --auth-timeout', () => {
  let node: Awaited<ReturnType<typeof startRespNode>>
  const open: RawResp[] = []
  const MAX_CONNECTIONS = 4

  beforeAll(async () => {
    node = await startRespNode([
      '--sync',
      'none',
      '--auth-token',
      'secret',
      // Long enough for the slots to be filled first on a loaded machine
      // (each accepted socket is watched 1.5 s for a refusal).
      '--auth-timeout',
      '10s',
      '--max-connections',
      String(MAX_CONNECTIONS),
    ])
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

  async function authenticate(c: RawResp): Promise<void> {
    await c.write(command('AUTH', 'secret'))
    await c.until((t) => t === '+OK\r\n')
    c.received.length = 0
  }

  it('closes sockets that do not authenticate in time, freeing their slots; an authenticated one stays', async () => {
    const kept = await connect()
    await authenticate(kept)

    // Fill every other slot with sockets that never authenticate: one idle,
    // the others sending bytes (a command cut short, a refused command).
    const unauthenticated: RawResp[] = []
    let refused: RawResp | null = null
    for (let i = 0; i < MAX_CONNECTIONS + 2 && refused === null; i++) {
      const c = await connect()
      // A refused socket is told so and closed at once; give it the chance.
      const busy = await c
        .until((t) => t.startsWith('-ERR max number of clients reached'), 1500, 'a BUSY refusal')
        .then(
          () => true,
          () => false,
        )
      if (busy) refused = c
      else unauthenticated.push(c)
    }
    expect(refused, 'the node never refused a connection at --max-connections').not.toBeNull()
    expect(unauthenticated.length).toBeGreaterThan(0)
    await unauthenticated[0].write('*2\r\n$3\r\nGET\r\n$1')
    if (unauthenticated.length > 1) await unauthenticated[1].write(command('GET', 'k'))

    for (const c of unauthenticated) {
      await c.closedByServer(30_000)
      expect(c.text).toContain('-NOAUTH no AUTH within --auth-timeout (10000 ms)')
    }

    // The slots are free again for a client with the token, and the old
    // authenticated connection was not touched.
    const late = await connect()
    await authenticate(late)
    late.received.length = 0
    await late.write(command('PING'))
    await late.until((t) => t === '+PONG\r\n')
    await kept.write(command('PING'))
    await kept.until((t) => t === '+PONG\r\n')
    expect(kept.closed).toBe(false)
  })
})
