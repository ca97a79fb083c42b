import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { cli, has, startRedisServer, startRespNode } from './helpers.js'

/**
 * A replica set up the Redis way, with redis-cli: `REPLICAOF host port`
 * names the master's RESP port (tandem asks that port for the node's
 * tandem address). The same commands go to a tandem pair and a Redis pair,
 * and redis-cli prints the same, the ports aside.
 */
describe.skipIf(!has('redis-cli') || !has('redis-server'))('redis-cli: REPLICAOF, ROLE, INFO, WAIT', () => {
  let tandem: Awaited<ReturnType<typeof startRespNode>>[]
  let redis: Awaited<ReturnType<typeof startRedisServer>>[]

  beforeAll(async () => {
    ;[tandem, redis] = await Promise.all([
      Promise.all([startRespNode(['--sync', 'none']), startRespNode(['--sync', 'none'])]),
      Promise.all([startRedisServer(), startRedisServer()]),
    ])
  })
  afterAll(async () => {
    await Promise.all([...(tandem ?? []), ...(redis ?? [])].map((s) => s.stop()))
  })

  /** The same redis-cli invocation against tandem's node i and Redis's server i. */
  const both = (i: number, args: string[]) => ({
    t: cli(tandem[i].port, ['--no-raw', ...args]).stdout,
    r: cli(redis[i].port, ['--no-raw', ...args]).stdout,
  })
  const same = (i: number, args: string[]) => {
    const { t, r } = both(i, args)
    expect(t, `redis-cli ${args.join(' ')}`).toBe(r)
    return t
  }
  /** INFO replication as field -> value. */
  const info = (port: number) =>
    Object.fromEntries(
      cli(port, ['info', 'replication'])
        .stdout.split('\r\n')
        .filter((l) => l.includes(':'))
        .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]),
    )

  it('REPLICAOF the master RESP port: the link comes up, and ROLE, INFO and WAIT read as in Redis', async () => {
    for (const [replica, master] of [
      [tandem[1].port, tandem[0].port],
      [redis[1].port, redis[0].port],
    ]) {
      expect(cli(replica, ['--no-raw', 'replicaof', '127.0.0.1', String(master)]).stdout).toBe('OK\n')
    }
    for (const port of [tandem[1].port, redis[1].port]) {
      await waitFor(() => info(port).master_link_status === 'up', {
        what: `replica ${port} link up`,
        timeoutMs: 30_000,
      })
    }
    const slave0 = /^ip=127\.0\.0\.1,port=(\d+),state=online,offset=\d+,lag=\d+$/
    await waitFor(() => slave0.test(info(redis[0].port).slave0 ?? ''), { what: 'Redis replica online' })

    same(0, ['set', 'k', 'v'])
    expect(same(0, ['wait', '1', '10000'])).toBe('(integer) 1\n')
    // WAIT counts acknowledgements, from any replica: read k once each replica has it.
    for (const port of [tandem[1].port, redis[1].port]) {
      await waitFor(() => cli(port, ['get', 'k']).stdout === 'v\n', { what: `k on the replica ${port}` })
    }
    same(1, ['get', 'k'])

    // The replica: ROLE names its master's RESP address, as Redis's does.
    const roleLines = (port: number) => cli(port, ['--no-raw', 'role']).stdout.split('\n')
    const [tr, rr] = [roleLines(tandem[1].port), roleLines(redis[1].port)]
    expect([tr[0], tr[1], tr[3]]).toEqual([rr[0], rr[1], rr[3]]) // "slave", "127.0.0.1", "connected"
    expect(tr[2]).toBe(`3) (integer) ${tandem[0].port}`)
    expect(tr[4]).toMatch(/^5\) \(integer\) \d+$/)
    const ti = info(tandem[1].port)
    expect(Object.keys(ti).sort()).toEqual(Object.keys(info(redis[1].port)).sort())
    expect([ti.role, ti.master_host, ti.master_port]).toEqual(['slave', '127.0.0.1', String(tandem[0].port)])

    // The master: its replica by RESP address, in ROLE and in INFO's slave0 line.
    const [tm, rm] = [roleLines(tandem[0].port), roleLines(redis[0].port)]
    const shape = (lines: string[]) => lines.map((l) => l.replace(/\d+/g, 'N'))
    expect(shape(tm)).toEqual(shape(rm))
    expect(tm[3]).toBe(`      2) "${tandem[1].port}"`)
    const tmi = info(tandem[0].port)
    expect(Object.keys(tmi).sort()).toEqual(Object.keys(info(redis[0].port)).sort())
    expect(tmi.connected_slaves).toBe('1')
    expect(slave0.exec(tmi.slave0)?.[1]).toBe(String(tandem[1].port))

    for (const [replica, master] of [
      [tandem[1].port, tandem[0].port],
      [redis[1].port, redis[0].port],
    ]) {
      expect(cli(replica, ['replicaof', '127.0.0.1', String(master)]).stdout).toBe(
        'OK Already connected to specified master\n',
      )
    }
    const { t: refused, r: redisRefused } = both(1, ['set', 'x', 'y'])
    expect(refused.startsWith('(error) READONLY ')).toBe(true)
    expect(redisRefused.startsWith('(error) READONLY ')).toBe(true)

    expect(same(1, ['replicaof', 'no', 'one'])).toBe('OK\n')
    await waitFor(() => cli(tandem[1].port, ['role']).stdout.startsWith('master\n'), {
      what: 'tandem replica promoted',
    })
    same(1, ['set', 'x', 'y'])
  })

  it('REPLICAOF an address that is Redis, not tandem, is refused and the node stays as it was', () => {
    const out = cli(tandem[0].port, ['--no-raw', 'replicaof', '127.0.0.1', String(redis[0].port)]).stdout
    expect(out).toMatch(/^\(error\) ERR 127\.0\.0\.1:\d+ is not tandem \(Redis [\d.]+\)/)
    expect(info(tandem[0].port).role).toBe('master')
  })
})
