import { TandemClient } from '@tandem/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cli, has, startRedisServer, startRespNode } from './helpers.js'

/**
 * redis-cli against tandem's RESP port prints what it prints against a real
 * redis-server for the same commands (both are started here).
 */
describe.skipIf(!has('redis-cli') || !has('redis-server'))('redis-cli against tandem and Redis', () => {
  let tandem: Awaited<ReturnType<typeof startRespNode>>
  let redis: Awaited<ReturnType<typeof startRedisServer>>

  beforeAll(async () => {
    ;[tandem, redis] = await Promise.all([startRespNode(['--sync', 'none']), startRedisServer()])
  })
  afterAll(async () => {
    await Promise.all([tandem?.stop(), redis?.stop()])
  })

  /** Runs the same redis-cli invocation against both and expects the same output. */
  const same = (args: string[], input?: string | Buffer) => {
    const t = cli(tandem.port, args, input)
    const r = cli(redis.port, args, input)
    expect({ out: t.stdout, code: t.code }, `redis-cli ${args.join(' ')}`).toEqual({ out: r.stdout, code: r.code })
    return t.stdout
  }

  it('SET, GET, DEL, MGET, MSET, EXISTS print the same, with types shown', () => {
    const script: string[][] = [
      ['set', 'a', 'hello'],
      ['get', 'a'],
      ['get', 'missing'],
      ['mset', 'b', '1', 'c', 'two words'],
      ['mget', 'a', 'b', 'missing', 'c'],
      ['exists', 'a', 'b', 'missing', 'a'],
      ['del', 'a', 'missing', 'b'],
      ['get', 'a'],
      ['del', 'a'],
      ['set', 'k', ''],
      ['get', 'k'],
      ['set', 'utf8', 'żółw ✓'],
      ['get', 'utf8'],
      ['ping'],
      ['echo', 'x y'],
      ['select', '0'],
      ['wait', '0', '0'],
      ['replicaof', 'no', 'one'],
      ['get'],
      ['mset', 'a'],
      ['nosuchcommand', 'x', 'y'],
    ]
    for (const args of script) same(['--no-raw', ...args])
    // Raw output (what scripts read) too.
    same(['get', 'c'])
    same(['mget', 'b', 'c'])
  })

  it('ROLE and INFO replication have Redis fields for a master', () => {
    const role = (port: number) => cli(port, ['--no-raw', 'role']).stdout.split('\n')
    const t = role(tandem.port)
    const r = role(redis.port)
    expect(t[0]).toBe(r[0]) // 1) "master"
    expect(t[1]).toMatch(/^2\) \(integer\) \d+$/)
    expect(t[2]).toBe(r[2]) // 3) (empty array)
    const fields = (port: number) =>
      Object.fromEntries(
        cli(port, ['info', 'replication'])
          .stdout.split('\r\n')
          .filter((l) => l.includes(':'))
          .map((l) => l.split(':')),
      )
    const tf = fields(tandem.port)
    const rf = fields(redis.port)
    expect(Object.keys(tf).sort()).toEqual(Object.keys(rf).sort())
    expect(tf.role).toBe('master')
    expect(tf.connected_slaves).toBe('0')
    expect(tf.master_replid).toMatch(/^[0-9a-f]{40}$/)
    expect(cli(tandem.port, ['info', 'replication']).stdout.startsWith('# Replication\r\n')).toBe(true)
  })

  it('--pipe with 100,000 commands: every one answered, none failed, all stored', () => {
    const lines: string[] = []
    for (let i = 0; i < 100_000; i++) lines.push(`SET pipe:${i} value-${i}`)
    const input = `${lines.join('\r\n')}\r\n`
    const t = cli(tandem.port, ['--pipe'], input)
    const r = cli(redis.port, ['--pipe'], input)
    expect(t.code).toBe(0)
    expect(t.stdout).toBe(r.stdout)
    expect(t.stdout).toContain('errors: 0, replies: 100000')
    same(['get', 'pipe:99999'])
    same(['--no-raw', 'exists', 'pipe:0', 'pipe:50000', 'pipe:99999'])
  })

  it('--scan --pattern lists the same keys (tandem in key order)', () => {
    const keys = []
    for (let i = 0; i < 1500; i++) keys.push(`user:${i}`, `order:${i}`)
    const input = `${keys.map((k) => `SET ${k} x`).join('\r\n')}\r\n`
    cli(tandem.port, ['--pipe'], input)
    cli(redis.port, ['--pipe'], input)
    const t = cli(tandem.port, ['--scan', '--pattern', 'user:*']).stdout.split('\n').filter(Boolean)
    const r = cli(redis.port, ['--scan', '--pattern', 'user:*']).stdout.split('\n').filter(Boolean)
    expect(t).toHaveLength(1500)
    expect([...t].sort()).toEqual([...r].sort())
    expect(t).toEqual([...t].sort()) // tandem scans in key order
    const q = cli(tandem.port, ['--scan', '--pattern', 'user:1?']).stdout.split('\n').filter(Boolean)
    expect(q.sort()).toEqual(
      cli(redis.port, ['--scan', '--pattern', 'user:1?']).stdout.split('\n').filter(Boolean).sort(),
    )
  })

  it('a binary value from -x reads back byte for byte, and through the SDK as binary', async () => {
    const bytes = Buffer.from([0xff, 0x00, 0x0d, 0x0a, 0x80, 0x41, 0xc3])
    same(['-x', 'set', 'bin'], bytes)
    same(['--no-raw', 'get', 'bin'])
    const t = cli(tandem.port, ['get', 'bin']).stdout
    expect(Buffer.from(t, 'latin1').subarray(0, bytes.length)).toEqual(bytes)
    same(['-x', 'set', 'text'], Buffer.from('plain text ✓'))
    const db = await TandemClient.connect({ servers: [tandem.node.address] })
    try {
      const stored = await db.get('bin')
      expect(stored).toBeInstanceOf(Uint8Array)
      expect(Buffer.from(stored as Uint8Array)).toEqual(bytes)
      expect(await db.get('text')).toBe('plain text ✓')
      // And a value the SDK wrote reads through RESP as its UTF-8 bytes.
      await db.put('from-sdk', 'é')
      expect(cli(tandem.port, ['--no-raw', 'get', 'from-sdk']).stdout).toBe('"\\xc3\\xa9"\n')
    } finally {
      await db.close()
    }
  })

  it('a key that is not UTF-8 is refused with ERR, and the connection goes on', () => {
    const out = cli(tandem.port, ['--no-raw', '-x', 'get'], Buffer.from([0xff, 0xfe])).stdout
    expect(out).toMatch(/^\(error\) ERR tandem keys are UTF-8 text/)
  })
})
