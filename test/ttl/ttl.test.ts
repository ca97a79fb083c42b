import { join } from 'node:path'
import { TandemClient, type WatchEvent } from '@tandem/client'
import { afterAll, describe, expect, it } from 'vitest'
import { FailoverGroup, scanAll, statusOf } from '../failover/group.js'
import { runCli } from '../helpers/cli.js'
import { FaultProxy } from '../helpers/fault-proxy.js'
import { type NodeProcess, startNode } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'

/** Most keys one expiry write deletes (packages/server/src/expirer.ts). */
const MAX_EXPIRED_PER_TICK = 200

/** The events a watch on `address` delivers from `fromSeq` until the first of `untilSeq` (an entry's later ops are not waited for). */
async function eventsUntil(address: string, fromSeq: number, untilSeq: number): Promise<WatchEvent[]> {
  const db = await TandemClient.connect({ servers: [address], direct: true })
  const events: WatchEvent[] = []
  const watch = db.watch({ fromSeq })
  try {
    for await (const event of watch) {
      events.push(event)
      if (event.seq >= untilSeq) break
    }
  } finally {
    watch.close()
    await db.close()
  }
  return events
}

describe('TTL', () => {
  const dir = tempDir('tandem-ttl-')
  const nodes: NodeProcess[] = []
  const proxies: FaultProxy[] = []
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()))
    await Promise.all(proxies.map((p) => p.close()))
    dir.remove()
  })

  it('expires keys on the master as log entries of deletes, at most 200 a write; a replica cut off before the delete reads them as missing', async () => {
    const master = await startNode(join(dir.path, 'master'))
    nodes.push(master)
    const proxy = await new FaultProxy('127.0.0.1', master.port).start()
    proxies.push(proxy)
    const replica = await startNode(join(dir.path, 'replica'), ['--replicaof', proxy.address])
    nodes.push(replica)
    const db = await TandemClient.connect({ servers: [master.address] })
    // Long enough for the checks below to run before it is due, on a loaded
    // machine too: they count it among the TTL keys and read it on the replica.
    const shortTtlMs = 8000
    const before = Date.now()
    const short = await db.put('short', 'soon gone', { ttlMs: shortTtlMs })
    const after = Date.now()
    await db.put('long', 'stays', { ttlMs: 600_000 })
    await db.put('plain', 'stays')
    const meta = await db.get('short', { meta: true })
    expect(meta?.seq).toBe(short.seq)
    expect(meta?.expiresAt).toBeGreaterThanOrEqual(before + shortTtlMs)
    expect(meta?.expiresAt).toBeLessThanOrEqual(after + shortTtlMs)
    // A put without ttlMs clears a TTL; one with it sets a new one.
    await db.put('cleared', 'x', { ttlMs: 1000 })
    await db.put('cleared', 'y')
    expect((await db.get('cleared', { meta: true }))?.expiresAt).toBeUndefined()
    const head = (await statusOf(master)).seq
    await waitFor(async () => (await statusOf(replica)).seq === head, { what: 'the replica to catch up' })
    expect((await statusOf(master)).ttlKeys).toBe(2)
    expect((await statusOf(replica)).ttlKeys).toBe(2)

    // The replica's link goes silent: the master's delete cannot reach it.
    proxy.cut()
    const onReplica = await TandemClient.connect({ servers: [replica.address], direct: true })
    expect(await onReplica.get('short')).toBe('soon gone')
    await waitFor(async () => (await db.get('short')) === undefined, {
      what: 'short to expire on the master',
      timeoutMs: shortTtlMs + 20_000,
    })
    const [expiry] = await eventsUntil(master.address, head + 1, head + 1)
    expect(expiry).toMatchObject({ seq: head + 1, type: 'del', key: 'short' })
    // Missing on the replica too, although the delete has not arrived there.
    expect((await statusOf(replica)).seq).toBe(head)
    expect(await onReplica.get('short')).toBeUndefined()
    expect(await onReplica.mget(['short', 'long'])).toEqual([undefined, 'stays'])
    expect([...(await scanAll(replica.address)).keys()]).toEqual(['cleared', 'long', 'plain'])
    expect(await onReplica.get('long')).toBe('stays')
    await onReplica.close()
    expect((await statusOf(master)).ttlKeys).toBe(1)

    // Many keys due at once: every one is deleted exactly once, in writes of at most 200 deletes.
    const from = (await statusOf(master)).seq + 1
    const keys = Array.from({ length: 1000 }, (_, i) => `many:${i}`)
    for (let i = 0; i < keys.length; i += 250) {
      await db.batch(keys.slice(i, i + 250).map((key) => ({ type: 'put' as const, key, value: 'v', ttlMs: 300 })))
    }
    await waitFor(async () => (await statusOf(master)).ttlKeys === 1, { what: 'the 1000 keys to expire' })
    // A marker after them, so that the watch knows where the last expiry write ends.
    const marker = await db.put('marker', 'm')
    const events = (await eventsUntil(master.address, from, marker.seq)).filter((e) => e.seq < marker.seq)
    const dels = events.filter((e) => e.type === 'del')
    expect(dels.map((e) => e.key).sort()).toEqual([...keys].sort())
    const perWrite = new Map<number, number>()
    for (const e of dels) perWrite.set(e.seq, (perWrite.get(e.seq) ?? 0) + 1)
    expect(Math.max(...perWrite.values())).toBeLessThanOrEqual(MAX_EXPIRED_PER_TICK)
    expect(perWrite.size).toBeGreaterThanOrEqual(Math.ceil(1000 / MAX_EXPIRED_PER_TICK))
    expect((await scanAll(master.address)).size).toBe(4)

    // The CLI: put --ttl, get --meta shows the expiry.
    const server = ['--server', master.address]
    expect((await runCli([...server, 'put', 'cli', 'v', '--ttl', '60000'])).code).toBe(0)
    expect((await runCli([...server, 'get', 'cli', '--meta'])).stdout).toMatch(/^\d+\tv\texpires \d{4}-/)
    expect((await runCli([...server, 'put', 'cli', 'v', '--ttl', '0'])).code).toBe(2)
    // A restarted master rebuilds its index from the data.
    await master.stop()
    await master.start()
    expect((await statusOf(master)).ttlKeys).toBe(2)
    await db.close()
  })
})

describe('TTL across a fail-over', () => {
  const group = new FailoverGroup()
  afterAll(() => group.teardown())

  it('a key whose master dies before it expires is deleted by the new master, in its log and on the surviving replica', async () => {
    await group.start({ size: 3 })
    const master = await group.waitForMaster()
    const db = await group.client()
    // The first majority writes wait for the replicas to stream from the new master.
    await db.put('plain', 'stays', { w: 'majority', timeoutMs: 15_000 })
    const put = await db.put('mid', 'gone after the fail-over', { ttlMs: 3000, w: 'majority', timeoutMs: 15_000 })
    await master.kill('SIGKILL')
    const survivors = group.nodes.filter((n) => n !== master)
    const newMaster = await group.waitForMaster(survivors, 'a new master')
    await waitFor(async () => (await db.get('mid')) === undefined, { what: 'mid to expire', timeoutMs: 30_000 })
    // The new master wrote the delete into its log, and the replica has it too.
    const events = await waitFor(
      async () => {
        const seq = (await statusOf(newMaster)).seq
        const found = await eventsUntil(newMaster.address, put.seq + 1, seq)
        return found.some((e) => e.type === 'del' && e.key === 'mid') ? found : null
      },
      { what: 'the delete of mid in the new master log' },
    )
    expect(events.filter((e) => e.key === 'mid').map((e) => e.type)).toEqual(['del'])
    await waitFor(
      async () => {
        const [a, b] = await Promise.all(survivors.map((n) => statusOf(n)))
        return a.seq === b.seq && a.ttlKeys === 0 && b.ttlKeys === 0
      },
      { what: 'the survivors to agree' },
    )
    for (const node of survivors) expect([...(await scanAll(node.address))]).toEqual([['plain', 'stays']])
  })
})
