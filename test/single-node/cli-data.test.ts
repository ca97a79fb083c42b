import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { TandemClient } from '@tandem/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { type NodeProcess, REPO_ROOT, startNode } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'

/**
 * The CLI's data handling with redis-cli/etcdctl habits: values from stdin
 * and files (binary-safe), values that look like options, scan's escaped
 * and JSON forms, mget, batch, count, del --prefix, --json errors, fast
 * refusal and the address forms. Each runs the real `tandem` against a
 * real node, and checks what the node stored through the SDK.
 */
describe('tandem CLI data handling', () => {
  const dir = tempDir()
  let node: NodeProcess
  let db: TandemClient
  let server: string[]

  beforeAll(async () => {
    node = await startNode(dir.path)
    server = ['--server', node.address]
    db = await TandemClient.connect({ servers: [node.address] })
  })
  afterAll(async () => {
    await db?.close()
    await node?.stop()
    dir.remove()
  })

  it('takes the value from stdin with `-`, and when stdin is piped and no value is given', async () => {
    expect(await runCli([...server, 'put', 'in:dash', '-'], {}, 30_000, 'hello\n')).toMatchObject({
      code: 0,
      stdout: 'OK\n',
    })
    expect(await db.get('in:dash')).toBe('hello\n')
    expect((await runCli([...server, 'put', 'in:piped'], {}, 30_000, 'piped')).code).toBe(0)
    expect(await db.get('in:piped')).toBe('piped')
  })

  it('takes binary values from stdin and --file byte for byte, and gives them back with get', async () => {
    const bytes = Buffer.from([0, 255, 10, 13, 0x80, 0xfe, 1, 2, 3])
    expect((await runCli([...server, 'put', 'bin:stdin', '-'], {}, 30_000, bytes)).code).toBe(0)
    expect(Buffer.from((await db.get('bin:stdin')) as Uint8Array)).toEqual(bytes)
    const file = join(dir.path, 'value.bin')
    writeFileSync(file, bytes)
    expect((await runCli([...server, 'put', 'bin:file', '--file', file])).code).toBe(0)
    expect(Buffer.from((await db.get('bin:file')) as Uint8Array)).toEqual(bytes)
    // UTF-8 from a file is a string, unless --binary says bytes.
    writeFileSync(file, 'text ✓')
    await runCli([...server, 'put', 'txt:file', '--file', file])
    expect(await db.get('txt:file')).toBe('text ✓')
    await runCli([...server, 'put', 'txt:bin', '--file', file, '--binary'])
    expect(await db.get('txt:bin')).toBeInstanceOf(Uint8Array)
    const missing = await runCli([...server, 'put', 'x', '--file', join(dir.path, 'nope')])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(/^error INVALID: --file .*nope/)
  })

  it('takes values that start with a dash: negative numbers as they are, anything after --', async () => {
    expect((await runCli([...server, 'put', 'neg', '-5'])).code).toBe(0)
    expect(await db.get('neg')).toBe('-5')
    expect((await runCli([...server, 'put', 'dash', '--', '--not-a-flag'])).code).toBe(0)
    expect(await db.get('dash')).toBe('--not-a-flag')
    expect((await runCli([...server, 'put', '--', '-k', '-v'])).code).toBe(0)
    expect(await db.get('-k')).toBe('-v')
    expect((await runCli([...server, 'get', '--', '-k'])).stdout).toBe('-v\n')
  })

  it('keeps one entry a line in scan: escaped text, and JSON lines that round-trip any value', async () => {
    const values: Record<string, string | Uint8Array> = {
      'rt:newline': 'line one\nline two\r\n',
      'rt:tab': 'a\tb\\c',
      'rt:looks-binary': 'base64:aGk=',
      'rt:binary': new Uint8Array([104, 105, 0, 10]),
    }
    for (const [k, v] of Object.entries(values)) await db.put(k, v)
    const text = await runCli([...server, 'scan', '--prefix', 'rt:'])
    expect(text.code).toBe(0)
    expect(text.stdout.split('\n')).toEqual([
      'rt:binary\tbase64:aGkACg==',
      'rt:looks-binary\t\\x62ase64:aGk=',
      'rt:newline\tline one\\nline two\\r\\n',
      'rt:tab\ta\\tb\\\\c',
      '',
    ])
    const json = await runCli([...server, 'scan', '--prefix', 'rt:', '--json'])
    const lines = json.stdout.trimEnd().split('\n')
    expect(lines).toHaveLength(4)
    // Each line written back with batch stores the same value under a new key.
    const ops = lines.map((line) => {
      const { key, value } = JSON.parse(line)
      return JSON.stringify({ type: 'put', key: key.replace('rt:', 'copy:'), value })
    })
    expect((await runCli([...server, 'batch'], {}, 30_000, `${ops.join('\n')}\n`)).code).toBe(0)
    for (const [k, v] of Object.entries(values)) {
      const copy = await db.get(k.replace('rt:', 'copy:'))
      expect(typeof v === 'string' ? copy : new Uint8Array(copy as Uint8Array)).toEqual(v)
    }
  })

  it('watch prints one event a line: keys and values escaped, binary as base64:', async () => {
    const first = await db.put('w:a\tb', 'one\ntwo')
    await db.put('w:bin', new Uint8Array([0, 10]))
    await db.del('w:bin')
    const watch = await runCli([...server, 'watch', '--prefix', 'w:', '--from', String(first.seq), '--limit', '3'])
    expect(watch.code, watch.stderr).toBe(0)
    expect(watch.stdout.split('\n').map((l) => l.replace(/^\d+\t/, ''))).toEqual([
      'put\tw:a\\tb\tone\\ntwo',
      'put\tw:bin\tbase64:AAo=',
      'del\tw:bin',
      '',
    ])
  })

  it('mget prints key<TAB>value per key found and the key alone when missing; --json gives null', async () => {
    await db.put('m:1', 'one')
    await db.put('m:2', 'two\nlines')
    const text = await runCli([...server, 'mget', 'm:1', 'm:none', 'm:2'])
    expect(text).toMatchObject({ code: 0, stdout: 'm:1\tone\nm:none\nm:2\ttwo\\nlines\n' })
    const json = await runCli([...server, 'mget', 'm:1', 'm:none', '--json'])
    expect(
      json.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l)),
    ).toEqual([
      { key: 'm:1', value: 'one' },
      { key: 'm:none', value: null },
    ])
  })

  it('batch applies JSON lines from stdin atomically, and refuses a bad line before connecting', async () => {
    await db.put('b:gone', 'x')
    const input = [
      '{"type":"put","key":"b:1","value":"one"}',
      '{"type":"put","key":"b:2","value":{"base64":"AAE="}}',
      '',
      '{"type":"del","key":"b:gone"}',
    ].join('\n')
    const ok = await runCli([...server, 'batch', '--json'], {}, 30_000, input)
    expect(ok.code, ok.stderr).toBe(0)
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, ops: 3 })
    const [one, two, gone] = await db.mget(['b:1', 'b:2', 'b:gone'])
    expect([one, Buffer.from(two as Uint8Array), gone]).toEqual(['one', Buffer.from([0, 1]), undefined])
    const bad = await runCli(
      [...server, 'batch'],
      {},
      30_000,
      '{"type":"put","key":"b:3","value":"x"}\n{"type":"put","key":"b:4"}\n',
    )
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/^error INVALID: batch line 2/)
    expect(await db.get('b:3')).toBeUndefined()
  })

  it('count counts keys (under a prefix); del --prefix wants --yes, then deletes them all and says how many', async () => {
    await db.batch(Array.from({ length: 2500 }, (_, i) => ({ type: 'put' as const, key: `dp:${i}`, value: 'v' })))
    await db.put('dq:keep', 'v')
    expect((await runCli([...server, 'count', '--prefix', 'dp:'])).stdout).toBe('2500\n')
    const unconfirmed = await runCli([...server, 'del', '--prefix', 'dp:'])
    expect(unconfirmed.code).toBe(2)
    expect(unconfirmed.stderr).toMatch(/^error INVALID: 2500 keys under prefix "dp:"; add --yes/)
    expect(await db.get('dp:0')).toBe('v')
    const del = await runCli([...server, 'del', '--prefix', 'dp:', '--yes', '--json'])
    expect(del.code, del.stderr).toBe(0)
    expect(JSON.parse(del.stdout)).toEqual({ deleted: 2500 })
    expect((await runCli([...server, 'count', '--prefix', 'dp:', '--json'])).stdout).toBe('{"count":0}\n')
    expect(await db.get('dq:keep')).toBe('v')
  })

  it('with --json, errors are JSON on stderr, usage errors included', async () => {
    const missing = await runCli([...server, 'get', 'never', '--json'])
    expect(missing.code).toBe(1)
    expect(JSON.parse(missing.stderr)).toEqual({ error: { code: 'NOTFOUND', message: 'key "never" not found' } })
    const usage = await runCli([...server, '--json', 'frobnicate'])
    expect(usage.code).toBe(2)
    expect(JSON.parse(usage.stderr)).toMatchObject({ error: { code: 'INVALID' } })
  })

  it('says what is wrong with a command line in one line and points to --help; a bare tandem prints the usage', async () => {
    const unknown = await runCli([...server, 'get', 'a', '--bogus'])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toBe(
      'error INVALID: unknown option --bogus (a value or key that starts with a dash goes after --, as in: tandem put k -- --bogus)\n' +
        'tandem --help lists the commands and flags\n',
    )
    const bare = await runCli([])
    expect(bare.code).toBe(2)
    expect(bare.stderr).toMatch(/^error INVALID: no command given\nusage: tandem /)
  })

  // A refused connection is final: the CLI does not retry it for its whole
  // connect timeout (here far longer than the run is allowed to take).
  it('fails at once on a refused connection, whatever the connect timeout', async () => {
    // Port 1 (tcpmux) has no listener: a port found free a moment ago could
    // be taken by a test running beside this one before the CLI dials it.
    const port = 1
    const refused = await runCli(
      ['--server', `127.0.0.1:${port}`, '--connect-timeout', '600000', 'get', 'a'],
      {},
      20_000,
    )
    expect(refused.code).toBe(3)
    expect(refused.stderr).toMatch(/^error UNAVAILABLE: .*ECONNREFUSED/)
    await expect(
      TandemClient.connect({ servers: [`127.0.0.1:${port}`], failFast: true, connectTimeoutMs: 600_000 }),
    ).rejects.toMatchObject({ code: 'UNAVAILABLE' })
  })

  it('accepts localhost, a tandem:// URL and prints its version', async () => {
    const viaLocalhost = await runCli(['--server', `localhost:${node.port}`, 'get', 'neg'])
    expect(viaLocalhost).toMatchObject({ code: 0, stdout: '-5\n' })
    const viaUrl = await runCli(['--server', `tandem://${node.address}`, 'get', 'neg'])
    expect(viaUrl).toMatchObject({ code: 0, stdout: '-5\n' })
    const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'packages/client/package.json'), 'utf8'))
    expect(await runCli(['--version'])).toMatchObject({ code: 0, stdout: `tandem ${version}\n` })
  })
})

describe('tandem CLI over IPv6', () => {
  it('reaches a node on [::1]:PORT', async () => {
    const dir = tempDir()
    const node = await startNode(dir.path, ['--host', '::1'])
    try {
      const address = `[::1]:${node.port}`
      expect((await runCli(['--server', address, 'put', 'six', 'v6'])).code).toBe(0)
      expect(await runCli(['--server', address, 'get', 'six'])).toMatchObject({ code: 0, stdout: 'v6\n' })
    } finally {
      await node.stop()
      dir.remove()
    }
  })
})
