import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { TandemClient } from '@tandem/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { NodeProcess } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'

/**
 * TLS end to end: a throwaway CA made at run time with openssl signs a
 * certificate for 127.0.0.1; a master and its replica serve and replicate
 * over it, the SDK and the CLI connect with the CA, and a client that
 * trusts another CA is refused.
 */
const certs = tempDir('tandem-tls-')
const file = (name: string) => join(certs.path, name)

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: certs.path, stdio: 'pipe' })
}

describe('TLS', () => {
  const nodes: NodeProcess[] = []
  const dirs: { remove(): void }[] = []
  beforeAll(() => {
    for (const name of ['good', 'other']) {
      openssl(
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        `/CN=tandem test CA ${name}`,
        '-keyout',
        `ca-${name}.key`,
        '-out',
        `ca-${name}.crt`,
      )
    }
    openssl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-subj',
      '/CN=127.0.0.1',
      '-keyout',
      'node.key',
      '-out',
      'node.csr',
    )
    writeFileSync(file('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
    openssl(
      'x509',
      '-req',
      '-in',
      'node.csr',
      '-CA',
      'ca-good.crt',
      '-CAkey',
      'ca-good.key',
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      'san.ext',
      '-out',
      'node.crt',
    )
  })
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()))
    for (const d of dirs) d.remove()
    certs.remove()
  })

  async function start(args: string[]): Promise<NodeProcess> {
    const dir = tempDir()
    dirs.push(dir)
    const tls = ['--tls-cert', file('node.crt'), '--tls-key', file('node.key'), '--tls-ca', file('ca-good.crt')]
    const node = new NodeProcess(dir.path, [...tls, ...args])
    nodes.push(node)
    return node.start()
  }

  // Rule: with --tls-*, clients, replication and their data go over TLS, and a certificate the client does not trust is refused.
  it('runs a master, a replica and the CLI over TLS, and refuses a client with the wrong CA', async () => {
    const master = await start([])
    const replica = await start(['--replicaof', master.address])
    const ca = readFileSync(file('ca-good.crt'))

    const db = await TandemClient.connect({ servers: [master.address], tls: { ca } })
    for (let i = 0; i < 50; i++) await db.put(`k${i}`, `v${i}`)
    await db.close()

    const onReplica = await TandemClient.connect({ servers: [replica.address], tls: { ca }, direct: true })
    await waitFor(async () => (await onReplica.status()).seq === 50, { what: 'the replica at seq 50 over TLS' })
    expect(await onReplica.get('k49')).toBe('v49')
    await onReplica.close()

    const cli = await runCli(['--server', master.address, '--tls-ca', file('ca-good.crt'), 'get', 'k7'])
    expect(cli.stderr).toBe('')
    expect(cli.stdout.trim()).toBe('v7')
    expect(cli.code).toBe(0)

    const wrongCa = await TandemClient.connect({
      servers: [master.address],
      tls: { ca: readFileSync(file('ca-other.crt')) },
      connectTimeoutMs: 2000,
    }).catch((err) => err)
    expect(wrongCa.code).toBe('UNAVAILABLE')
    expect(String(wrongCa.message)).toMatch(/certificate/i)

    // A replica that trusts another CA does not take the master's data.
    const doubting = await start(['--replicaof', master.address, '--tls-ca', file('ca-other.crt')])
    await doubting.waitForLog((l) => l.msg === 'replication link closed; reconnecting')
    const doubtingDb = await TandemClient.connect({ servers: [doubting.address], tls: { ca }, direct: true })
    expect((await doubtingDb.status()).seq).toBe(0)
    await doubtingDb.close()

    // Plain WebSocket to a TLS port gets nowhere either.
    const plain = await TandemClient.connect({ servers: [master.address], connectTimeoutMs: 2000 }).catch((e) => e)
    expect(plain.code).toBe('UNAVAILABLE')
    const cliWrong = await runCli(['--server', master.address, '--tls-ca', file('ca-other.crt'), 'get', 'k7'])
    expect(cliWrong.code).toBe(3)
  })

  // Rule: a node reachable beyond loopback with neither TLS nor a token says so at start.
  it('warns at start when it listens beyond loopback with neither TLS nor a token', async () => {
    const dir = tempDir()
    dirs.push(dir)
    const node = new NodeProcess(dir.path, ['--host', '0.0.0.0'])
    nodes.push(node)
    await node.start()
    const warning = await node.waitForLog((l) => l.level === 'warn' && String(l.msg).includes('beyond loopback'), 5000)
    expect(String(warning.msg)).toContain('neither TLS')
    await node.stop()
  })
})
