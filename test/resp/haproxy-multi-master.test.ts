import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { freePort } from '@tandem/bench/fixtures'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NodeProcess, REPO_ROOT } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'
import { cli, has } from './helpers.js'

/**
 * Debian's HAProxy with examples/haproxy/multi-master.cfg (only its ports
 * changed) in front of a three-peer multi-master group (--mode multi,
 * lww): clients connected through it are spread over the peers, each one's
 * writes reach every peer, and after a peer is SIGKILLed its clients go on
 * writing through HAProxy on the others.
 */
describe.skipIf(!has('haproxy') || !has('redis-cli'))('HAProxy in front of a multi-master group', () => {
  const nodes: NodeProcess[] = []
  const respPorts: number[] = []
  const dirs = [tempDir('tandem-hamm-'), tempDir('tandem-hamm-'), tempDir('tandem-hamm-'), tempDir('tandem-hamm-')]
  let haproxy: ChildProcess | undefined
  let haproxyErrors = ''
  let port = 0
  const clients: Redis[] = []

  beforeAll(async () => {
    const ports = [await freePort(), await freePort(), await freePort()]
    for (let i = 0; i < 3; i++) respPorts.push(await freePort())
    for (let i = 0; i < 3; i++) {
      const peers = ports.filter((_, j) => j !== i).map((p) => `127.0.0.1:${p}`)
      const args = [
        '--mode',
        'multi',
        '--conflict',
        'lww',
        '--peers',
        peers.join(','),
        '--resp-port',
        String(respPorts[i]),
      ]
      const node = new NodeProcess(dirs[i].path, [...args, '--sync', 'none'])
      node.port = ports[i]
      nodes.push(node)
    }
    await Promise.all(nodes.map((n) => n.start()))
    port = await freePort()
    let config = readFileSync(join(REPO_ROOT, 'examples/haproxy/multi-master.cfg'), 'utf8')
    config = config.replace(/bind 127\.0\.0\.1:\d+/, `bind 127.0.0.1:${port}`)
    let n = 0
    config = config.replace(/server (p\d) 127\.0\.0\.1:\d+ check/g, (_m, name) => {
      return `server ${name} 127.0.0.1:${respPorts[n++]} check`
    })
    expect(n).toBe(3)
    const file = join(dirs[3].path, 'haproxy.cfg')
    writeFileSync(file, config)
    haproxy = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] })
    haproxy.stderr?.on('data', (d) => (haproxyErrors += d))
  })
  afterAll(async () => {
    for (const c of clients) c.disconnect()
    if (haproxy && haproxy.exitCode === null) {
      const exited = new Promise((resolve) => haproxy?.once('exit', resolve))
      haproxy.kill('SIGKILL')
      await exited
    }
    await Promise.all(nodes.map((n) => n.stop().catch(() => {})))
    for (const d of dirs) d.remove()
  })

  const client = () => {
    const r = new Redis({
      port,
      host: '127.0.0.1',
      retryStrategy: () => 100,
      maxRetriesPerRequest: null,
    })
    r.on('error', () => {})
    clients.push(r)
    return r
  }
  /** The RESP port of the peer a client's connection reached. */
  const peerOf = async (r: Redis) => Number(/tcp_port:(\d+)/.exec(await r.info('server'))?.[1])

  it('spreads clients over the peers; writes reach every peer; a SIGKILLed peer is left out', async () => {
    // A peer takes writes once it has heard another.
    await waitFor(() => respPorts.every((p) => cli(p, ['set', `warm:${p}`, '1']).stdout === 'OK\n'), {
      what: 'every peer taking writes',
      timeoutMs: 30_000,
    })
    // Six held connections: least-connections puts two on each peer once HAProxy has all three up.
    const held = await waitFor(
      async () => {
        if (haproxy?.exitCode !== null) throw new Error(`haproxy exited: ${haproxyErrors}`)
        const six = Array.from({ length: 6 }, client)
        const reached = await Promise.all(six.map(peerOf))
        if (new Set(reached).size === 3) return { six, reached }
        for (const r of six) r.disconnect()
        return undefined
      },
      { what: 'HAProxy spreading six clients over three peers', timeoutMs: 30_000, intervalMs: 200 },
    )
    for (const p of respPorts) expect(held.reached.filter((x) => x === p)).toHaveLength(2)

    for (let i = 0; i < 6; i++) expect(await held.six[i].set(`mm:${i}`, `from-${held.reached[i]}`)).toBe('OK')
    const want = Array.from({ length: 6 }, (_, i) => `from-${held.reached[i]}`)
    for (const p of respPorts) {
      await waitFor(() => cli(p, ['mget', ...want.map((_, i) => `mm:${i}`)]).stdout === `${want.join('\n')}\n`, {
        what: `every write on peer ${p}`,
      })
    }

    // SIGKILL the first client's peer: its clients reconnect through HAProxy to the others and write on.
    const victim = respPorts.indexOf(held.reached[0])
    await nodes[victim].kill('SIGKILL')
    const orphans = held.six.filter((_, i) => held.reached[i] === respPorts[victim])
    for (const [k, r] of orphans.entries()) {
      await waitFor(async () => (await r.set(`after:${k}`, 'x').catch(() => null)) === 'OK', {
        what: 'a write through HAProxy after the SIGKILL',
        timeoutMs: 30_000,
      })
      expect(await peerOf(r)).not.toBe(respPorts[victim])
    }
    const survivors = respPorts.filter((_, i) => i !== victim)
    for (const p of survivors) {
      await waitFor(() => cli(p, ['mget', 'after:0', 'after:1']).stdout === 'x\nx\n', { what: `after:* on ${p}` })
    }
  })
})
