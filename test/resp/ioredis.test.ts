import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { cli, has, RespGroup } from './helpers.js'

/**
 * ioredis, unchanged, against a tandem fail-over group: its Sentinel mode
 * (sentinels = the members' RESP ports, name = the group's name) finds the
 * master, keeps writing through a SIGKILL of it and follows the new one; no
 * write that WAIT 1 acknowledged is lost. ioredis 6 speaks RESP3 (HELLO 3).
 */
describe.skipIf(!has('redis-cli'))('ioredis against a tandem group', () => {
  const group = new RespGroup()
  const clients: Redis[] = []

  beforeAll(async () => {
    await group.start(3, ['--sync', 'always'])
  })
  afterAll(async () => {
    for (const c of clients) c.disconnect()
    await group.stop()
  })

  const sentinels = () => group.respPorts.map((port) => ({ host: '127.0.0.1', port }))

  it('standalone: RESP3 handshake, pipelines, MSET/MGET, scanStream and WAIT against the master', async () => {
    const m = await group.master()
    const redis = new Redis({ port: group.respPorts[m], host: '127.0.0.1', lazyConnect: true })
    clients.push(redis)
    await redis.connect()
    const hello = (await redis.call('HELLO', '3')) as unknown[]
    expect(hello).toContain('proto')
    const pipeline = redis.pipeline()
    for (let i = 0; i < 500; i++) pipeline.set(`ps:${i}`, `v${i}`).get(`ps:${i}`)
    const results = (await pipeline.exec()) ?? []
    expect(results).toHaveLength(1000)
    for (let i = 0; i < 500; i++) {
      expect(results[2 * i]).toEqual([null, 'OK'])
      expect(results[2 * i + 1]).toEqual([null, `v${i}`]) // each GET reads the SET before it
    }
    await redis.mset('m1', 'a', 'm2', Buffer.from([0xff, 0x01]))
    expect(await redis.mget('m1', 'nope')).toEqual(['a', null])
    expect(await redis.getBuffer('m2')).toEqual(Buffer.from([0xff, 0x01]))
    const keys: string[] = []
    for await (const batch of redis.scanStream({ match: 'ps:1*', count: 50 })) keys.push(...(batch as string[]))
    expect(keys.sort()).toEqual(
      Array.from({ length: 500 }, (_, i) => `ps:${i}`)
        .filter((k) => k.startsWith('ps:1'))
        .sort(),
    )
    expect(await redis.wait(2, 5000)).toBe(2)
    expect(await redis.del('m1', 'm2', 'nope')).toBe(2)
    await expect(redis.call('NOSUCH')).rejects.toThrow(/unknown command/)
    expect(await redis.ping()).toBe('PONG') // still usable
    redis.disconnect()
  })

  it('the Sentinel commands describe the group from every member', async () => {
    const m = await group.master()
    for (const port of group.respPorts) {
      const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true })
      clients.push(r)
      await r.connect()
      expect(await r.call('SENTINEL', 'get-master-addr-by-name', 'tandem')).toEqual([
        '127.0.0.1',
        String(group.respPorts[m]),
      ])
      expect(await r.call('SENTINEL', 'get-master-addr-by-name', 'other')).toBeNull()
      const replicas = (await r.call('SENTINEL', 'replicas', 'tandem')) as string[][]
      const replicaPorts = replicas.map((fields) => Number(fields[fields.indexOf('port') + 1])).sort()
      expect(replicaPorts).toEqual(group.respPorts.filter((_, i) => i !== m).sort())
      const others = (await r.call('SENTINEL', 'sentinels', 'tandem')) as string[][]
      expect(others).toHaveLength(2)
      await expect(r.call('SENTINEL', 'master', 'other')).rejects.toThrow(/No such master/)
      r.disconnect()
    }
  })

  it('Sentinel mode: writes go on through a SIGKILL of the master; no write acknowledged by WAIT 1 is lost', async () => {
    const first = await group.master()
    const redis = new Redis({
      sentinels: sentinels(),
      name: 'tandem',
      sentinelRetryStrategy: () => 100,
      retryStrategy: () => 100,
      maxRetriesPerRequest: null,
      connectTimeout: 2000,
      // The recipe for a Sentinel group: a node that is no longer master sends the client back to the Sentinels.
      reconnectOnError: (err) => (/^(READONLY|NOMASTER|FENCED)/.test(err.message) ? 2 : false),
    })
    clients.push(redis)
    redis.on('error', () => {})
    // A subscriber on a member that survives hears the switch.
    const survivor = (first + 1) % 3
    const watcher = new Redis({ port: group.respPorts[survivor], host: '127.0.0.1' })
    clients.push(watcher)
    const switches: string[] = []
    watcher.on('message', (channel, message) => {
      if (channel === '+switch-master') switches.push(message)
    })
    await watcher.subscribe('+switch-master')

    const acked = new Map<string, string>()
    let failed = 0
    let killed = false
    let ackedAfterKill = 0
    const writer = (async () => {
      for (let i = 0; ; i++) {
        if (killed && ackedAfterKill >= 30) return
        const key = `w:${i}`
        const value = `v${i}`
        try {
          await redis.set(key, value)
          const replicas = await redis.wait(1, 3000)
          if (replicas >= 1) {
            acked.set(key, value)
            if (killed) ackedAfterKill++
          } else failed++
        } catch {
          failed++
        }
      }
    })()
    await waitFor(() => acked.size >= 50, { what: '50 acknowledged writes', timeoutMs: 30_000 })
    await group.nodes[first].kill('SIGKILL')
    killed = true
    await writer
    const second = await group.master([0, 1, 2].filter((i) => i !== first))
    expect(second).not.toBe(first)
    // The client follows the new master.
    expect((redis as unknown as { stream: { remotePort: number } }).stream.remotePort).toBe(group.respPorts[second])
    // Every acknowledged write is on the new master.
    const check = new Redis({ port: group.respPorts[second], host: '127.0.0.1' })
    clients.push(check)
    const keys = [...acked.keys()]
    const values = keys.length === 0 ? [] : await check.mget(...keys)
    const lost = keys.filter((k, i) => values[i] !== acked.get(k))
    expect(lost, `acknowledged writes missing on the new master (${failed} writes failed)`).toEqual([])
    expect(ackedAfterKill).toBeGreaterThanOrEqual(30)
    // The Sentinel event named the old and the new master.
    await waitFor(() => switches.length > 0, { what: 'a +switch-master message', timeoutMs: 10_000 })
    expect(switches[switches.length - 1]).toBe(
      `tandem 127.0.0.1 ${group.respPorts[first]} 127.0.0.1 ${group.respPorts[second]}`,
    )
    // redis-cli sees the same through ROLE on the new master.
    expect(cli(group.respPorts[second], ['role']).stdout.split('\n')[0]).toBe('master')
  })
})
