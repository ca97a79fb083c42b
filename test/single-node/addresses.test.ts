import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { TandemClient, TandemError } from '@tandem/client'
import { afterAll, describe, expect, it } from 'vitest'
import type WebSocketClass from 'ws'
import { runCli, runNodeBin } from '../helpers/cli.js'
import { type NodeProcess, REPO_ROOT, SERVER_BIN, startNode } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { packr } from './raw-client.js'

/**
 * One HOST:PORT format everywhere (server flags, `replicaof`, the SDK's
 * servers, the CLI): a name, an IPv4 address or a bracketed IPv6 address,
 * port 1..65535. What does not parse is refused where it is given, and an
 * address a node reports that cannot be dialled fails a call, never the
 * process that made it.
 */

const requireFromClient = createRequire(join(REPO_ROOT, 'packages/client/package.json'))
const { WebSocketServer } = requireFromClient('ws') as typeof import('ws')

const BAD = ['127.0.0.1:99999', '127.0.0.1:0', 'host:port', '999.1.1.1:80', '[nonsense]:80', 'a b:1']

describe('addresses', () => {
  const dirs: { remove(): void }[] = []
  const nodes: NodeProcess[] = []
  const clients: TandemClient[] = []
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()))
    await Promise.all(nodes.map((n) => n.stop()))
    for (const d of dirs) d.remove()
  })
  async function node(args: string[] = []): Promise<NodeProcess> {
    const dir = tempDir()
    dirs.push(dir)
    const n = await startNode(dir.path, args)
    nodes.push(n)
    return n
  }

  it('replicaof with a port out of range or a malformed address is refused, and the node stays master', async () => {
    const master = await node()
    const db = await TandemClient.connect({ servers: [master.address], direct: true })
    clients.push(db)
    for (const bad of BAD) {
      const cli = await runCli(['--server', master.address, 'replicaof', ...bad.split(' ')])
      expect(cli.code, `tandem replicaof ${bad}: ${cli.stderr}`).toBe(2)
      expect(cli.stderr).toMatch(/^error INVALID: /)
      const err = await db.replicaof(bad).then(
        () => null,
        (e: unknown) => e,
      )
      expect(err, `replicaof ${bad} through the SDK`).toBeInstanceOf(TandemError)
      expect((err as TandemError).code).toBe('INVALID')
    }
    const status = await db.status()
    expect(status.role).toBe('master')
    expect(status.upstream).toBeNull()
    expect(status.readOnly).toBe(false)
    await db.put('still', 'writable')
  })

  it('--replicaof and --advertise refuse bad addresses at start (exit 2)', async () => {
    for (const [flag, bad] of [
      ['--replicaof', '127.0.0.1:99999'],
      ['--advertise', '127.0.0.1:0'],
      ['--cluster', '127.0.0.1:1,localhost:70000'],
    ]) {
      const dir = tempDir()
      dirs.push(dir)
      const run = await runNodeBin(SERVER_BIN, ['--port', '0', '--data-dir', dir.path, flag, bad], {}, 15_000)
      expect(run.code, `${flag} ${bad}: ${run.stderr}`).toBe(2)
      expect(run.stderr).toMatch(/out of range/)
    }
  })

  it('follows and serves by name and by IPv6 address', async () => {
    const master = await node()
    const byName = await node(['--replicaof', `localhost:${master.port}`])
    // A master listening on the IPv6 loopback, and a replica of it by bracketed address.
    const v6 = await node(['--host', '::1'])
    const v6Address = `[::1]:${v6.port}`
    const v6Replica = await node(['--replicaof', v6Address])
    const toMaster = await TandemClient.connect({ servers: [`localhost:${master.port}`] })
    const toV6 = await TandemClient.connect({ servers: [v6Address] })
    clients.push(toMaster, toV6)
    await toMaster.put('by', 'name', { w: 1, timeoutMs: 10_000 })
    await toV6.put('by', 'ipv6', { w: 1, timeoutMs: 10_000 })
    const replicaOfName = await TandemClient.connect({ servers: [byName.address], direct: true })
    const replicaOfV6 = await TandemClient.connect({ servers: [v6Replica.address], direct: true })
    clients.push(replicaOfName, replicaOfV6)
    expect(await replicaOfName.get('by')).toBe('name')
    expect(await replicaOfV6.get('by')).toBe('ipv6')
    expect((await toV6.status()).address).toBe(v6Address)
    const cli = await runCli(['--server', v6Address, 'get', 'by'])
    expect(cli).toMatchObject({ code: 0, stdout: 'ipv6\n' })
  })

  it('an SDK whose node reports addresses nobody can dial fails those calls and keeps its process alive', async () => {
    // A stand-in node: it answers as a replica whose master is at an
    // address out of range, refuses writes naming that master, and pushes
    // it as the new master to a client that reads.
    const fake = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await new Promise<void>((resolve) => fake.once('listening', () => resolve()))
    const address = `127.0.0.1:${(fake.address() as { port: number }).port}`
    const bad = '127.0.0.1:99999'
    fake.on('connection', (ws: WebSocketClass) => {
      ws.on('message', (data: Buffer) => {
        const decoded = packr.unpack(data) as { id: number; op: string } | { id: number; op: string }[]
        const replies = (Array.isArray(decoded) ? decoded : [decoded]).map((req) => {
          switch (req.op) {
            case 'status':
              return {
                id: req.id,
                result: {
                  nodeId: 'fake',
                  role: 'replica',
                  epoch: 2,
                  seq: 0,
                  upstream: bad,
                  readOnly: true,
                  replicas: [{ nodeId: 'x', addr: bad, ackedSeq: 0, lagEntries: 0, lagMs: 0 }],
                  master: bad,
                  address,
                },
              }
            case 'put':
              return { id: req.id, error: { code: 'READONLY', message: 'replica', master: bad } }
            case 'get':
              ws.send(packr.pack({ push: 'topology', master: bad, epoch: 2 }))
              return { id: req.id, result: 'v' }
            default:
              return { id: req.id, result: req.op === 'ping' ? 'pong' : null }
          }
        })
        ws.send(packr.pack(replies.length === 1 ? replies[0] : replies))
      })
    })
    try {
      const proc = spawn(process.execPath, [join(import.meta.dirname, 'bad-address-client.mjs'), address])
      let stdout = ''
      let stderr = ''
      proc.stdout.on('data', (d) => (stdout += d))
      proc.stderr.on('data', (d) => (stderr += d))
      // 'close': its output read to the end ('exit' can come before the last of it).
      const code = await new Promise((resolve) => proc.on('close', resolve))
      expect(stderr).toBe('')
      expect(code).toBe(0)
      const lines = stdout.trim().split('\n')
      expect(lines[0]).toMatch(/^bad seed TypeError: .*out of range/)
      expect(lines[1]).toMatch(/^put (NOMASTER|UNAVAILABLE|TIMEOUT): /)
      expect(lines[2]).toMatch(/^get /)
      expect(lines[3]).toMatch(/^status /)
      expect(lines[4]).toMatch(/^replica get /)
      expect(lines[5]).toBe('done')
    } finally {
      await new Promise((resolve) => fake.close(resolve))
    }
  })
})
