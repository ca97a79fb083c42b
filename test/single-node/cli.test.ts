import { createServer } from 'node:net'
import { TandemClient } from '@tandem/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { type NodeProcess, startNode } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'

/**
 * The `tandem` CLI run as a user runs it, against a real node. Contract
 * (DESIGN.md): exit 0 success, 1 key not found, 2 bad usage or input,
 * 3 unavailable; errors on stderr as `error CODE: message`.
 */

/** A port nothing listens on: bound by the OS, then released. */
async function deadPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

describe('tandem CLI', () => {
  const dir = tempDir()
  let node: NodeProcess
  let server: string[]

  beforeAll(async () => {
    node = await startNode(dir.path)
    server = ['--server', node.address]
  })
  afterAll(async () => {
    await node?.stop()
    dir.remove()
  })

  // Rule: put prints OK and exits 0; get prints the value and exits 0.
  it('puts and gets a key', async () => {
    const put = await runCli([...server, 'put', 'a', '1'])
    expect(put).toMatchObject({ code: 0, stdout: 'OK\n', stderr: '' })
    const get = await runCli([...server, 'get', 'a'])
    expect(get).toMatchObject({ code: 0, stdout: '1\n', stderr: '' })
    // A lone master is its own majority: a linearizable read needs no one else.
    const linearizable = await runCli([...server, 'get', 'a', '--consistency', 'linearizable'])
    expect(linearizable).toMatchObject({ code: 0, stdout: '1\n', stderr: '' })
    const overwrite = await runCli([...server, 'put', 'a', 'two words ✓'])
    expect(overwrite.code).toBe(0)
    expect((await runCli([...server, 'get', 'a'])).stdout).toBe('two words ✓\n')
  })

  // Rule: a missing key exits 1 with `error NOTFOUND: ...` on stderr and nothing on stdout.
  it('exits 1 with NOTFOUND for a missing key, also after del', async () => {
    const missing = await runCli([...server, 'get', 'never-written'])
    expect(missing.code).toBe(1)
    expect(missing.stdout).toBe('')
    expect(missing.stderr).toMatch(/^error NOTFOUND: .*never-written/)
    await runCli([...server, 'put', 'doomed', 'x'])
    expect(await runCli([...server, 'del', 'doomed'])).toMatchObject({ code: 0, stdout: 'OK\n' })
    const gone = await runCli([...server, 'get', 'doomed'])
    expect(gone.code).toBe(1)
    expect(gone.stderr).toMatch(/^error NOTFOUND: /)
  })

  // Rule: bad usage exits 2 with `error INVALID: ...`, without needing a server.
  it.each([
    [[]],
    [['put']],
    [['put', 'a', '1', 'extra']],
    [['put', 'a', '1', '--file', 'x']],
    [['get']],
    [['get', 'a', 'b']],
    [['frobnicate']],
    [['scan', '--limit', 'lots']],
    [['put', 'a', '1', '--w', 'some']],
    [['--no-such-flag', 'get', 'a']],
    [['get', 'a', '--consistency', 'fast']],
    [['put', 'a', '1', '--consistency', 'local']],
  ])('exits 2 on bad usage: %j', async (args) => {
    const result = await runCli(['--server', `127.0.0.1:${await deadPort()}`, ...args])
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/^error INVALID: /)
    expect(result.stdout).toBe('')
  })

  // Rule: input the node rejects (a key over the limit) is bad input: exit 2 with the node's code.
  it('exits 2 with TOOLARGE for a key over the limit', async () => {
    const result = await runCli([...server, 'put', 'k'.repeat(9000), 'v'])
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/^error TOOLARGE: /)
  })

  // Rule: an unreachable server exits 3 with `error UNAVAILABLE: ...`.
  it('exits 3 with UNAVAILABLE when no server answers', async () => {
    const address = `127.0.0.1:${await deadPort()}`
    const commands = [['get', 'a'], ['put', 'a', '1'], ['status']]
    const results = await Promise.all(commands.map((args) => runCli(['--server', address, ...args])))
    for (const [i, result] of results.entries()) {
      expect(result.code, commands[i].join(' ')).toBe(3)
      expect(result.stderr).toMatch(/^error UNAVAILABLE: /)
      expect(result.stdout).toBe('')
    }
  })

  // Rule: with several servers and none reachable, the error names every one of them, not the last alone.
  it('names every server it could not reach when --server lists several', async () => {
    const servers = [`127.0.0.1:${await deadPort()}`, `127.0.0.1:${await deadPort()}`, `127.0.0.1:${await deadPort()}`]
    for (const args of [
      ['put', 'a', '1'],
      ['get', 'a'],
    ]) {
      const result = await runCli(['--server', servers.join(','), ...args])
      expect(result.code, args.join(' ')).toBe(3)
      expect(result.stderr).toBe(
        `error UNAVAILABLE: cannot reach any of ${servers.map((s) => `${s} (ECONNREFUSED)`).join(', ')}\n`,
      )
    }
  })

  // Rule: scan prints `key<TAB>value` lines in key order, limited to the prefix and to --limit.
  it('scans a prefix in key order with a limit', async () => {
    const db = await TandemClient.connect({ servers: [node.address] })
    for (const key of ['s:c', 's:a', 's:e', 's:b', 's:d', 't:a', 'r:z']) await db.put(key, `v-${key}`)
    await db.close()
    const all = await runCli([...server, 'scan', '--prefix', 's:'])
    expect(all.code).toBe(0)
    expect(all.stdout).toBe(['s:a', 's:b', 's:c', 's:d', 's:e'].map((k) => `${k}\tv-${k}\n`).join(''))
    const limited = await runCli([...server, 'scan', '--prefix', 's:', '--limit', '3'])
    expect(limited.stdout).toBe(['s:a', 's:b', 's:c'].map((k) => `${k}\tv-${k}\n`).join(''))
    const none = await runCli([...server, 'scan', '--prefix', 'nothing-here:'])
    expect(none).toMatchObject({ code: 0, stdout: '' })
  })

  // Rule: `status --json` carries nodeId, role, epoch, seq, upstream, readOnly and replicas, matching the node.
  it('prints status as JSON with the contract fields', async () => {
    await runCli([...server, 'put', 'status-probe', 'x'])
    const result = await runCli([...server, 'status', '--json'])
    expect(result.code).toBe(0)
    const status = JSON.parse(result.stdout)
    expect(status).toMatchObject({
      nodeId: expect.any(String),
      role: 'master',
      epoch: expect.any(Number),
      seq: expect.any(Number),
      upstream: null,
      readOnly: false,
      replicas: [],
    })
    expect(status.epoch).toBeGreaterThanOrEqual(1)
    const http = await (await fetch(`http://${node.address}/status`)).json()
    expect(status.nodeId).toBe(http.nodeId)
    expect(status.seq).toBe(http.seq)
    // The human form names the same node.
    const text = await runCli([...server, 'status'])
    expect(text.code).toBe(0)
    expect(text.stdout).toContain(status.nodeId)
    expect(text.stdout).toMatch(/role master/)
  })

  // Rule: TANDEM_SERVER names the server when --server is not given; --server wins over it.
  it('takes the server from TANDEM_SERVER, and --server over it', async () => {
    await runCli([...server, 'put', 'from-env', 'yes'])
    const viaEnv = await runCli(['get', 'from-env'], { TANDEM_SERVER: node.address })
    expect(viaEnv).toMatchObject({ code: 0, stdout: 'yes\n' })
    const dead = `127.0.0.1:${await deadPort()}`
    const flagWins = await runCli([...server, 'get', 'from-env'], { TANDEM_SERVER: dead })
    expect(flagWins).toMatchObject({ code: 0, stdout: 'yes\n' })
    const envDead = await runCli(['get', 'from-env'], { TANDEM_SERVER: dead })
    expect(envDead.code).toBe(3)
  })
})

describe('tandem CLI against a node with an auth token', () => {
  const dir = tempDir()
  const TOKEN = 's3cret-token'
  let node: NodeProcess
  let server: string[]

  beforeAll(async () => {
    // The server takes its token from the environment here; the flag is covered in bad-input.test.ts.
    node = await startNode(dir.path, [], { TANDEM_AUTH_TOKEN: TOKEN })
    server = ['--server', node.address]
  })
  afterAll(async () => {
    await node?.stop()
    dir.remove()
  })

  // Rule: the CLI sends the token from --auth-token or TANDEM_AUTH_TOKEN; without it the node refuses with UNAUTHORIZED.
  it('authenticates with --auth-token or TANDEM_AUTH_TOKEN, and fails with UNAUTHORIZED without', async () => {
    const noToken = await runCli([...server, 'put', 'secret', 'x'], { TANDEM_AUTH_TOKEN: '' })
    expect(noToken.code).toBe(2)
    expect(noToken.stderr).toMatch(/^error UNAUTHORIZED: /)
    const wrong = await runCli([...server, '--auth-token', 'nope', 'get', 'secret'], { TANDEM_AUTH_TOKEN: '' })
    expect(wrong.code).toBe(2)
    expect(wrong.stderr).toMatch(/^error UNAUTHORIZED: /)

    expect(
      await runCli([...server, '--auth-token', TOKEN, 'put', 'secret', 'x'], { TANDEM_AUTH_TOKEN: '' }),
    ).toMatchObject({ code: 0, stdout: 'OK\n' })
    expect(await runCli([...server, 'get', 'secret'], { TANDEM_AUTH_TOKEN: TOKEN })).toMatchObject({
      code: 0,
      stdout: 'x\n',
    })
    // The flag wins over the environment.
    expect(
      (await runCli([...server, '--auth-token', TOKEN, 'get', 'secret'], { TANDEM_AUTH_TOKEN: 'stale' })).code,
    ).toBe(0)
  })
})
