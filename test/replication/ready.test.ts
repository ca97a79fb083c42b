import { TandemClient } from '@tandem/client'
import { afterAll, describe, expect, it } from 'vitest'
import { FaultProxy, freePort } from '../helpers/fault-proxy.js'
import { NodeProcess } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'
import { Cluster } from './cluster.js'

/**
 * GET /ready: 200 only when the node can serve its role. A replica is not
 * ready while it full-syncs (its data is a partial snapshot) nor while its
 * link is down; /health, which says the process is alive, stays 200.
 */
interface Ready {
  ready: boolean
  role: string
  link?: string
  reason?: string
}

async function ready(address: string): Promise<{ status: number; body: Ready }> {
  const res = await fetch(`http://${address}/ready`)
  return { status: res.status, body: (await res.json()) as Ready }
}

describe('/ready', () => {
  const cluster = new Cluster()
  const proxies: FaultProxy[] = []
  const cleanups: (() => Promise<void> | void)[] = []
  afterAll(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
    for (const p of proxies) await p.close()
    await cluster.teardown()
  })

  // Rule: a replica answers 503 while it full-syncs, 200 once it streams, and 503 again when its upstream is gone.
  it('is false during a full sync and true after', async () => {
    const master = await cluster.start()
    const db = await TandemClient.connect({ servers: [master.address] })
    await db.batch(Array.from({ length: 500 }, (_, i) => ({ type: 'put' as const, key: `k${i}`, value: `v${i}` })))
    await db.close()
    expect(await ready(master.address)).toEqual({ status: 200, body: { ready: true, role: 'master' } })

    // The replica's link passes the challenge, the welcome and FULLSYNC, then
    // receives nothing more until release(): a full sync that has begun.
    const proxy = await new FaultProxy('127.0.0.1', master.port).start()
    proxies.push(proxy)
    proxy.holdStreams('/replication', 3)
    const replica = await cluster.start(['--replicaof', proxy.address])
    await waitFor(async () => (await ready(replica.address)).body.link === 'fullsync', {
      what: 'the replica in its full sync',
    })
    const during = await ready(replica.address)
    expect(during.status).toBe(503)
    expect(during.body).toMatchObject({ ready: false, role: 'replica', link: 'fullsync' })
    expect(during.body.reason).toMatch(/fullsync/)
    // Alive all the same.
    expect((await fetch(`http://${replica.address}/health`)).status).toBe(200)

    proxy.release()
    await waitFor(async () => (await ready(replica.address)).status === 200, { what: 'the replica ready' })
    expect((await ready(replica.address)).body).toMatchObject({ ready: true, role: 'replica', link: 'streaming' })

    await master.kill('SIGKILL')
    await waitFor(async () => (await ready(replica.address)).status === 503, {
      what: 'the replica not ready without its upstream',
    })
    expect((await ready(replica.address)).body.link).not.toBe('streaming')
  })
  /**
   * Rule: a multi-master peer is ready when it takes writes, as its status's
   * readOnly says. After its start it takes none (UNAVAILABLE) until a peer
   * has answered, or the startup grace has passed, here made longer than
   * the test, so /ready answers 503 until its peer comes up.
   */
  it('a multi-master peer is not ready while it refuses writes after its start, and ready once its peer answers', async () => {
    const dirs = [tempDir('tandem-ready-mm-'), tempDir('tandem-ready-mm-')]
    const ports = [await freePort(), await freePort()]
    const peers = [0, 1].map(
      (i) =>
        new NodeProcess(dirs[i].path, [
          '--mode',
          'multi',
          '--peers',
          `127.0.0.1:${ports[1 - i]}`,
          '--tune',
          'peerStartupGraceMs=600000',
        ]),
    )
    peers.forEach((node, i) => {
      node.port = ports[i]
    })
    cleanups.push(async () => {
      await Promise.all(peers.map((n) => n.stop()))
      for (const d of dirs) d.remove()
    })
    await peers[0].start()
    const alone = await ready(peers[0].address)
    expect(alone.status).toBe(503)
    expect(alone.body).toMatchObject({ ready: false, role: 'peer' })
    expect(alone.body.reason).toMatch(/^UNAVAILABLE: this node has just started/)
    const status = (await (await fetch(`http://${peers[0].address}/status`)).json()) as { readOnly: boolean }
    expect(status.readOnly).toBe(true)
    const db = await TandemClient.connect({ servers: [peers[0].address], direct: true, timeoutMs: 2000 })
    cleanups.push(() => db.close())
    await expect(db.put('k', 'v')).rejects.toMatchObject({ code: expect.stringMatching(/UNAVAILABLE|TIMEOUT/) })
    // Alive all the same.
    expect((await fetch(`http://${peers[0].address}/health`)).status).toBe(200)

    await peers[1].start()
    for (const node of peers) {
      await waitFor(async () => (await ready(node.address)).status === 200, { what: `${node.address} ready` })
    }
    expect((await ready(peers[0].address)).body).toEqual({ ready: true, role: 'peer' })
    expect(await db.put('k', 'v')).toMatchObject({ origin: expect.any(String) })
  })
})
