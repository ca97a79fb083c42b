import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { cli, has, startRedisServer, startRespNode } from './helpers.js'

/**
 * SET NX|XX|GET and SETNX on tandem's compare-and-set: the same redis-cli
 * commands against tandem and a redis-server print the same; under
 * concurrent clients NX lets exactly one through and GET hands each old
 * value to exactly one writer (what a read-then-write would not).
 */
describe.skipIf(!has('redis-cli') || !has('redis-server'))('SET options and SETNX', () => {
  let tandem: Awaited<ReturnType<typeof startRespNode>>
  let redis: Awaited<ReturnType<typeof startRedisServer>>
  const clients: Redis[] = []

  beforeAll(async () => {
    ;[tandem, redis] = await Promise.all([startRespNode(['--sync', 'none']), startRedisServer()])
  })
  afterAll(async () => {
    for (const c of clients) c.disconnect()
    await Promise.all([tandem?.stop(), redis?.stop()])
  })

  const same = (args: string[]) => {
    const t = cli(tandem.port, ['--no-raw', ...args]).stdout
    const r = cli(redis.port, ['--no-raw', ...args]).stdout
    expect(t, `redis-cli ${args.join(' ')}`).toBe(r)
    return t
  }

  it('NX, XX, GET, their combinations and SETNX answer as Redis does', () => {
    const script: [string[], string][] = [
      [['set', 'a', '1', 'nx'], 'OK'],
      [['set', 'a', '2', 'nx'], '(nil)'],
      [['get', 'a'], '"1"'],
      [['set', 'a', '3', 'xx'], 'OK'],
      [['set', 'b', '1', 'xx'], '(nil)'],
      [['exists', 'b'], '(integer) 0'],
      [['set', 'a', '4', 'get'], '"3"'],
      [['set', 'c', '1', 'GET'], '(nil)'],
      [['get', 'c'], '"1"'],
      [['set', 'a', '5', 'nx', 'get'], '"4"'],
      [['get', 'a'], '"4"'],
      [['set', 'n', '1', 'nx', 'get'], '(nil)'],
      [['get', 'n'], '"1"'],
      [['set', 'a', '6', 'xx', 'get'], '"4"'],
      [['set', 'd', '1', 'xx', 'get'], '(nil)'],
      [['exists', 'd'], '(integer) 0'],
      [['setnx', 'e', '1'], '(integer) 1'],
      [['setnx', 'e', '2'], '(integer) 0'],
      [['get', 'e'], '"1"'],
      [['set', 'a', '7', 'nx', 'xx'], '(error) ERR syntax error'],
      [['set', 'a', '7', 'xx', 'nx'], '(error) ERR syntax error'],
      [['set', 'a', '7', 'ex', '10', 'keepttl'], '(error) ERR syntax error'],
      [['set', 'a', '7', 'ex', '-1'], "(error) ERR invalid expire time in 'set' command"],
      [['set', 'a', '7', 'ex', '9999999999999999'], "(error) ERR invalid expire time in 'set' command"],
      [['set', 'a', '7', 'px', '99999999999999999999'], '(error) ERR value is not an integer or out of range'],
      [['set', 'a', '7', 'ex', '10', 'px', '10'], '(error) ERR syntax error'],
      [['set', 'a', '7', 'ex'], '(error) ERR syntax error'],
      [['set', 'a', '7', 'ex', 'ten'], '(error) ERR value is not an integer or out of range'],
      [['set', 'a', '7', 'px', '0'], "(error) ERR invalid expire time in 'set' command"],
      [['set', 'a', '7', 'bogus'], '(error) ERR syntax error'],
      [['setnx', 'e'], "(error) ERR wrong number of arguments for 'setnx' command"],
      [['set', 'a', '6', 'get', 'get', 'xx', 'xx'], '"6"'],
      [['get', 'a'], '"6"'],
    ]
    for (const [args, printed] of script) expect(same(args), args.join(' ')).toBe(`${printed}\n`)
  })

  it('EX, PX, KEEPTTL, EXPIRE with NX|XX|GT|LT, TTL, PTTL and PERSIST answer as Redis does', () => {
    const script: [string[], string][] = [
      [['set', 't1', 'v', 'ex', '100'], 'OK'],
      [['ttl', 't1'], '(integer) 100'],
      [['ttl', 'missing'], '(integer) -2'],
      [['pttl', 'missing'], '(integer) -2'],
      [['set', 't2', 'v'], 'OK'],
      [['ttl', 't2'], '(integer) -1'],
      [['pttl', 't2'], '(integer) -1'],
      [['expire', 't2', '100'], '(integer) 1'],
      [['ttl', 't2'], '(integer) 100'],
      [['expire', 't2', '200', 'nx'], '(integer) 0'],
      [['expire', 't2', '200', 'xx'], '(integer) 1'],
      [['expire', 't2', '50', 'gt'], '(integer) 0'],
      [['expire', 't2', '50', 'lt'], '(integer) 1'],
      [['ttl', 't2'], '(integer) 50'],
      [['persist', 't2'], '(integer) 1'],
      [['ttl', 't2'], '(integer) -1'],
      [['persist', 't2'], '(integer) 0'],
      [['persist', 'missing'], '(integer) 0'],
      [['expire', 'missing', '10'], '(integer) 0'],
      [['expire', 't2', '100'], '(integer) 1'],
      [['set', 't2', 'w', 'keepttl'], 'OK'],
      [['ttl', 't2'], '(integer) 100'],
      [['get', 't2'], '"w"'],
      [['set', 't2', 'x'], 'OK'],
      [['ttl', 't2'], '(integer) -1'],
      [['set', 't3', 'v', 'px', '100000'], 'OK'],
      [['ttl', 't3'], '(integer) 100'],
      [['pexpire', 't3', '200000'], '(integer) 1'],
      [['ttl', 't3'], '(integer) 200'],
      [['expire', 't3', '0'], '(integer) 1'],
      [['exists', 't3'], '(integer) 0'],
      [['set', 't4', 'v', 'exat', String(Math.floor(Date.now() / 1000) + 86_400)], 'OK'],
      [['get', 't4'], '"v"'],
      [['expireat', 't4', '1'], '(integer) 1'],
      [['exists', 't4'], '(integer) 0'],
      [
        ['expire', 't2', '10', 'nx', 'xx'],
        '(error) ERR NX and XX, GT or LT options at the same time are not compatible',
      ],
      [['expire', 't2', '10', 'gt', 'lt'], '(error) ERR GT and LT options at the same time are not compatible'],
      [['expire', 't2', '10', 'foo'], '(error) ERR Unsupported option foo'],
      [['expire', 't2', 'ten'], '(error) ERR value is not an integer or out of range'],
      [['set', 't5', 'v', 'nx', 'get', 'ex', '100'], '(nil)'],
      [['ttl', 't5'], '(integer) 100'],
    ]
    for (const [args, printed] of script) {
      const ttl = /^\(integer\) (\d+)$/.exec(printed)
      if (args[0] === 'ttl' && ttl && Number(ttl[1]) > 0) {
        // Seconds left, rounded, read through a redis-cli process each: a
        // slow spawn can take either server past a half-second boundary.
        const left = (port: number) => Number(/-?\d+/.exec(cli(port, ['--no-raw', ...args]).stdout)?.[0])
        for (const port of [tandem.port, redis.port]) {
          expect(Math.abs(left(port) - Number(ttl[1])), `${port}: ${args.join(' ')}`).toBeLessThanOrEqual(1)
        }
        continue
      }
      expect(same(args), args.join(' ')).toBe(`${printed}\n`)
    }
    const pttl = Number(cli(tandem.port, ['pttl', 't1']).stdout)
    expect(pttl).toBeGreaterThan(0)
    expect(pttl).toBeLessThanOrEqual(100_000)
  })

  it('a key set with PX expires on its own, and reads as missing', async () => {
    expect(cli(tandem.port, ['set', 'short', 'v', 'px', '300']).stdout).toBe('OK\n')
    await waitFor(() => cli(tandem.port, ['--no-raw', 'get', 'short']).stdout === '(nil)\n', {
      what: 'the key to expire',
    })
    expect(cli(tandem.port, ['ttl', 'short']).stdout).toBe('-2\n')
  })

  it('NX under 20 concurrent clients: exactly one sets the key', async () => {
    const conns = Array.from({ length: 20 }, () => new Redis({ port: tandem.port, host: '127.0.0.1' }))
    clients.push(...conns)
    const answers = await Promise.all(conns.map((c, i) => c.set('lock', `owner-${i}`, 'NX')))
    const winners = answers.map((a, i) => (a === 'OK' ? i : -1)).filter((i) => i >= 0)
    expect(winners).toHaveLength(1)
    expect(answers.filter((a) => a === null)).toHaveLength(19)
    expect(await conns[0].get('lock')).toBe(`owner-${winners[0]}`)
  })

  it('GET under concurrent writers: every value written is handed back as the old value exactly once', async () => {
    const conns = Array.from({ length: 10 }, () => new Redis({ port: tandem.port, host: '127.0.0.1' }))
    clients.push(...conns)
    const perClient = 30
    const olds = await Promise.all(
      conns.map(async (c, i) => {
        const got: (string | null)[] = []
        for (let j = 0; j < perClient; j++) got.push(await c.set('chain', `${i}:${j}`, 'GET'))
        return got
      }),
    )
    const all = olds.flat()
    const last = await conns[0].get('chain')
    // Each write replaced exactly one value: the old values and the last
    // value together are the values written plus the initial nil, each once.
    const seen = [...all, last]
    expect(seen.filter((v) => v === null)).toHaveLength(1)
    const written = conns.flatMap((_, i) => Array.from({ length: perClient }, (_, j) => `${i}:${j}`))
    expect(seen.filter((v) => v !== null).sort()).toEqual([...written].sort())
  })
})
