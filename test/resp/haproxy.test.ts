import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { freePort } from '@tandem/bench/fixtures'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { REPO_ROOT } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'
import { has, RespGroup } from './helpers.js'

/**
 * Debian's HAProxy with examples/haproxy/master.cfg (only its ports
 * changed) in front of a tandem fail-over group: a plain (standalone)
 * ioredis client connected through it keeps working after the master is
 * SIGKILLed, on the new master, and no write WAIT 1 acknowledged is lost.
 */
describe.skipIf(!has('haproxy') || !has('redis-cli'))('HAProxy in front of a tandem group', () => {
  const group = new RespGroup()
  const dir = tempDir('tandem-haproxy-')
  let haproxy: ChildProcess | undefined
  let port = 0
  let haproxyErrors = ''
  const clients: Redis[] = []

  beforeAll(async () => {
    await group.start(3)
    port = await freePort()
    let config = readFileSync(join(REPO_ROOT, 'examples/haproxy/master.cfg'), 'utf8')
    config = config.replace(/bind 127\.0\.0\.1:\d+/, `bind 127.0.0.1:${port}`)
    let n = 0
    config = config.replace(/server (n\d) 127\.0\.0\.1:\d+ check/g, (_m, name) => {
      return `server ${name} 127.0.0.1:${group.respPorts[n++]} check`
    })
    expect(n).toBe(3)
    const file = join(dir.path, 'haproxy.cfg')
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
    await group.stop()
    dir.remove()
  })

  /** The RESP port of the node a fresh connection through HAProxy reaches. */
  async function behindProxy(): Promise<number | undefined> {
    const r = new Redis({
      port,
      host: '127.0.0.1',
      lazyConnect: true,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
    })
    r.on('error', () => {})
    try {
      await r.connect()
      const info = await r.info('server')
      return Number(/tcp_port:(\d+)/.exec(info)?.[1])
    } catch {
      return undefined
    } finally {
      r.disconnect()
    }
  }

  it('sends clients to the master, and to the new master after a SIGKILL', async () => {
    const first = await group.master()
    await waitFor(
      async () => {
        if (haproxy?.exitCode !== null) throw new Error(`haproxy exited: ${haproxyErrors}`)
        return (await behindProxy()) === group.respPorts[first]
      },
      {
        what: 'HAProxy to route to the master',
        timeoutMs: 20_000,
      },
    )
    const redis = new Redis({
      port,
      host: '127.0.0.1',
      retryStrategy: () => 100,
      maxRetriesPerRequest: null,
      reconnectOnError: (err) => (/^(READONLY|NOMASTER|FENCED)/.test(err.message) ? 2 : false),
    })
    redis.on('error', () => {})
    clients.push(redis)
    const acked = new Map<string, string>()
    let killedAt = 0
    let firstAfterKill = 0
    let ackedAfterKill = 0
    const writer = (async () => {
      for (let i = 0; !(killedAt && ackedAfterKill >= 30); i++) {
        try {
          await redis.set(`h:${i}`, `v${i}`)
          if ((await redis.wait(1, 3000)) < 1) continue
          acked.set(`h:${i}`, `v${i}`)
          if (killedAt) {
            ackedAfterKill++
            firstAfterKill ||= Date.now()
          }
        } catch {
          // Refused or cut off while the group fails over: not acknowledged.
        }
      }
    })()
    await waitFor(() => acked.size >= 30, { what: '30 acknowledged writes through HAProxy', timeoutMs: 30_000 })
    await group.nodes[first].kill('SIGKILL')
    killedAt = Date.now()
    await writer
    const second = await group.master([0, 1, 2].filter((i) => i !== first))
    expect(await behindProxy()).toBe(group.respPorts[second])
    const keys = [...acked.keys()]
    const values = await redis.mget(...keys)
    expect(keys.filter((k, i) => values[i] !== acked.get(k))).toEqual([])
    // For the report: how long writes stopped (fail-over time plus HAProxy's checks); not asserted.
    process.stderr.write(`haproxy test: writes resumed ${firstAfterKill - killedAt} ms after the SIGKILL\n`)
  })
})
