import { metricSum } from '@tandem/bench/fixtures'
import { DEFAULT_LIMITS } from '@tandem/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { startRespNode } from './helpers.js'
import { command, RawResp } from './raw.js'

/** The RESP front end's rules, over raw sockets: auth, RESP2/RESP3 replies, order, subscriptions, backpressure. */
describe('RESP protocol', () => {
  let node: Awaited<ReturnType<typeof startRespNode>>
  const open: RawResp[] = []

  beforeAll(async () => {
    node = await startRespNode(['--sync', 'none', '--auth-token', 'secret'])
  })
  afterAll(async () => {
    for (const c of open) c.close()
    await node?.stop()
  })

  async function client(authenticated = true): Promise<RawResp> {
    const c = await RawResp.open(node.port)
    open.push(c)
    if (authenticated) {
      await c.write(command('AUTH', 'secret'))
      await c.until((t) => t === '+OK\r\n')
      c.received.length = 0
    }
    return c
  }

  /** Sends commands in one write and waits for `expected` exactly. */
  async function exchange(c: RawResp, commands: Buffer[], expected: string): Promise<void> {
    c.received.length = 0
    await c.write(Buffer.concat(commands))
    await c.until((t) => t.length >= expected.length)
    expect(c.text).toBe(expected)
    c.received.length = 0
  }

  it('requires the token: NOAUTH before AUTH, WRONGPASS for a wrong one, then OK; HELLO can carry it', async () => {
    const c = await client(false)
    await exchange(
      c,
      [
        command('PING'),
        command('AUTH', 'wrong'),
        command('GET', 'k'),
        command('AUTH', 'default', 'secret'),
        command('PING'),
      ],
      '-NOAUTH Authentication required.\r\n' +
        '-WRONGPASS invalid username-password pair or user is disabled.\r\n' +
        '-NOAUTH Authentication required.\r\n' +
        '+OK\r\n+PONG\r\n',
    )
    const h = await client(false)
    await h.write(command('HELLO', '3'))
    await h.until((t) => t.startsWith('-NOAUTH HELLO must be called'))
    h.received.length = 0
    await h.write(command('HELLO', '3', 'AUTH', 'default', 'secret', 'SETNAME', 'me'))
    await h.until((t) => t.includes('modules'))
    expect(h.text.startsWith('%7\r\n$6\r\nserver\r\n')).toBe(true)
    await exchange(h, [command('CLIENT', 'GETNAME')], '$2\r\nme\r\n')
  })

  it('an unauthenticated client gets Redis limits: more than 10 arguments is a protocol error', async () => {
    const c = await client(false)
    await c.write(command('MGET', ...Array.from({ length: 11 }, (_, i) => `k${i}`)))
    await c.closedByServer()
    expect(c.text).toMatch(/^-ERR Protocol error: invalid multibulk length/)
  })

  it('answers nulls, maps and INFO in RESP2 and RESP3', async () => {
    const c = await client()
    await exchange(c, [command('GET', 'missing'), command('MGET', 'missing')], '$-1\r\n*1\r\n$-1\r\n')
    await exchange(c, [command('SENTINEL', 'get-master-addr-by-name', 'nope')], '*-1\r\n')
    await c.write(command('HELLO', '3'))
    await c.until((t) => t.includes('modules'))
    c.received.length = 0
    await exchange(c, [command('GET', 'missing'), command('MGET', 'missing')], '_\r\n*1\r\n_\r\n')
    await exchange(c, [command('CONFIG', 'GET', 'appendfsync')], '%1\r\n$11\r\nappendfsync\r\n$2\r\nno\r\n')
    c.received.length = 0
    await c.write(command('INFO', 'persistence'))
    await c.until((t) => t.endsWith('\r\n\r\n') || /tandem_sync:none\r\n\r\n$/.test(t))
    expect(c.text).toMatch(/^=\d+\r\ntxt:# Persistence\r\nloading:0\r\n/)
  })

  it('pipelined commands run in order: each read sees the writes before it, not after', async () => {
    const c = await client()
    await exchange(
      c,
      [
        command('GET', 'o'),
        command('SET', 'o', '1'),
        command('GET', 'o'),
        command('MSET', 'o', '2', 'p', '3'),
        command('MGET', 'o', 'p'),
        command('NOSUCH'),
        command('DEL', 'o', 'p', 'q'),
        command('EXISTS', 'o', 'p'),
        command('SET', 'o', 'last'),
        command('WAIT', '0', '0'),
        command('GET', 'o'),
      ],
      '$-1\r\n+OK\r\n$1\r\n1\r\n+OK\r\n*2\r\n$1\r\n2\r\n$1\r\n3\r\n' +
        "-ERR unknown command 'NOSUCH', with args beginning with: \r\n" +
        ':2\r\n:0\r\n+OK\r\n:0\r\n$4\r\nlast\r\n',
    )
  })

  it('a pipelined run of GETs is read together, and each GET answers as it would alone, in order', async () => {
    const c = await client()
    const before = await metricSum(node.node, 'tandem_resp_batched_gets_total', '', 'secret')
    const binary = Buffer.from([0, 1, 0xff, 0xfe])
    const longKey = 'k'.repeat(DEFAULT_LIMITS.maxKeyBytes + 1)
    await exchange(
      c,
      [
        command('SET', 'r1', 'one'),
        command('SET', 'r2', binary),
        // One run of seven GETs: a missing key, a key that is not UTF-8 and
        // one over --max-key-bytes among them fail or answer nil on their own.
        command('GET', 'r1'),
        command('GET', 'r-missing'),
        command('GET', Buffer.from([0x72, 0xff])),
        command('GET', 'r2'),
        command('GET', longKey),
        command('get', 'r1'),
        command('GeT', 'r2'),
        // A write ends the run; the GETs after it read it.
        command('SET', 'r1', 'two'),
        command('GET', 'r1'),
        command('GET', 'r2'),
        command('PING'),
        command('GET', 'r1'),
      ],
      '+OK\r\n+OK\r\n' +
        '$3\r\none\r\n$-1\r\n' +
        '-ERR tandem keys are UTF-8 text; this key is not valid UTF-8\r\n' +
        `$4\r\n${binary.toString('latin1')}\r\n` +
        `-TOOLARGE key is ${DEFAULT_LIMITS.maxKeyBytes + 1} bytes; the limit is ${DEFAULT_LIMITS.maxKeyBytes}\r\n` +
        `$3\r\none\r\n$4\r\n${binary.toString('latin1')}\r\n` +
        `+OK\r\n$3\r\ntwo\r\n$4\r\n${binary.toString('latin1')}\r\n+PONG\r\n$3\r\ntwo\r\n`,
    )
    // Two batches: the five valid keys of the first run, then (after the SET) the run of two with the GET after PING.
    expect((await metricSum(node.node, 'tandem_resp_batched_gets_total', '', 'secret')) - before).toBe(8)
  })

  it('RESP2 subscribed mode allows only the subscription commands and PING', async () => {
    const c = await client()
    await exchange(
      c,
      [command('SUBSCRIBE', 'a', 'b'), command('GET', 'x'), command('PING')],
      '*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n' +
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n" +
        '*2\r\n$4\r\npong\r\n$0\r\n\r\n',
    )
    await exchange(
      c,
      [command('UNSUBSCRIBE'), command('GET', 'x')],
      '*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n$-1\r\n',
    )
  })

  it('QUIT answers OK and closes; a client that ends its side still gets every reply', async () => {
    const c = await client()
    await c.write(Buffer.concat([command('SET', 'q', '1'), command('QUIT'), command('GET', 'q')]))
    await c.closedByServer()
    expect(c.text).toBe('+OK\r\n+OK\r\n')
    const d = await client()
    d.socket.end(Buffer.concat([command('SET', 'e', 'v'), command('GET', 'e')]))
    await d.closedByServer()
    expect(d.text).toBe('+OK\r\n$1\r\nv\r\n')
  })

  it('a client that does not read is not read either: the node takes a bounded number of its commands', async () => {
    const big = 'z'.repeat(256 * 1024)
    const limited = await startRespNode([
      '--sync',
      'none',
      '--max-in-flight',
      '16',
      '--max-reply-buffer-bytes',
      '65536',
    ])
    const node = { node: limited.node, port: limited.port }
    const client = async () => {
      const c = await RawResp.open(node.port)
      open.push(c)
      return c
    }
    const setter = await client()
    await exchange(setter, [command('SET', 'big', big)], '+OK\r\n')
    const before = await metricSum(node.node, 'tandem_resp_commands_total')
    const c = await client()
    c.socket.pause()
    const gets = 300
    const bytes = Buffer.concat(Array.from({ length: gets }, () => command('GET', 'big')))
    void c.write(bytes)
    // Wait until the node has stopped taking commands (two equal samples in a row).
    let last = -1
    await waitFor(
      async () => {
        const now = await metricSum(node.node, 'tandem_resp_commands_total')
        const still = now === last
        last = now
        return still && now > before
      },
      { what: 'the node to stop reading the client', intervalMs: 300 },
    )
    const taken = last - before
    // In flight (16) plus what the kernel's socket buffers hold of 256 KiB replies: far from 300.
    expect(taken).toBeGreaterThan(0)
    expect(taken).toBeLessThan(100)
    const reply = `$${big.length}\r\n${big}\r\n`
    const start = c.bytes
    c.socket.on('data', () => {
      // Keep only the count: 75 MB of replies.
      c.received.length = 0
    })
    c.socket.resume()
    await c.untilBytes(start + gets * reply.length, 60_000)
    expect(c.bytes - start).toBe(gets * reply.length)
    await limited.stop()
  })
})
