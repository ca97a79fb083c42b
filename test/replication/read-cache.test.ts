import { afterEach, describe, expect, it } from 'vitest'
import { FaultProxy } from '../helpers/fault-proxy.js'
import { readFromCache, readsGoingBack } from '../helpers/read-cache.js'
import { waitFor } from '../helpers/wait.js'
import { Cluster, statusOf } from './cluster.js'

/**
 * The read cache on a replica: a key it holds is dropped when the
 * replica applies its master's write of it (a remote group), so a read
 * made once the replica holds the master's seq answers that write, and
 * reads during the stream never go back (rules in
 * packages/server/src/storage/read-cache.ts).
 */
describe('read cache on a replica', () => {
  let cluster: Cluster
  const proxies: FaultProxy[] = []
  afterEach(async () => {
    await Promise.all(proxies.splice(0).map((p) => p.close()))
    await cluster?.teardown()
  })

  it("a key read from the replica's cache answers the master's later writes once the replica holds them", async () => {
    cluster = new Cluster()
    const master = await cluster.start()
    const replica = await cluster.start(['--replicaof', master.address])
    await waitFor(async () => (await statusOf(replica)).link?.state === 'streaming', { what: 'the replica to stream' })
    const writer = await cluster.client({ servers: [master.address], direct: true })
    const reader = await cluster.client({ servers: [replica.address], direct: true })
    await writer.put('k', 'v0')
    // Read until answered from the cache (the read that first sees v0 may be made while it is in flight: not kept).
    await readFromCache(replica, reader, 'k', 'v0')

    const writes = 200
    const problems = await readsGoingBack(writer, reader, 'k', writes)
    expect(problems).toEqual([])
    const head = (await statusOf(master)).seq
    await waitFor(async () => (await statusOf(replica)).seq >= head, { what: `the replica to hold seq ${head}` })
    // The replica holds v200: a read answers it (a value the cache kept from before would not).
    expect(await reader.get('k')).toBe(`v${writes}`)
    expect(await reader.get('k')).toBe(`v${writes}`)
  })
  it('a full sync at run time replaces what the cache held: a key written since answers the new value, a key deleted since is missing', async () => {
    cluster = new Cluster()
    const master = await cluster.start(['--log-retention', '100', '--log-trim-interval', '100'])
    const proxy = await new FaultProxy('127.0.0.1', master.port).start()
    proxies.push(proxy)
    const replica = await cluster.start(['--replicaof', proxy.address])
    await waitFor(async () => (await statusOf(replica)).link?.state === 'streaming', { what: 'the replica to stream' })
    const writer = await cluster.client({ servers: [master.address], direct: true })
    const reader = await cluster.client({ servers: [replica.address], direct: true })
    await writer.put('k', 'v0')
    await writer.put('gone', 'g0')
    await readFromCache(replica, reader, 'k', 'v0')
    await readFromCache(replica, reader, 'gone', 'g0')
    const before = await statusOf(replica)
    const held = before.seq

    // Cut off, the replica falls out of the master's log: it can only come back by a full sync.
    proxy.cut('refuse')
    await writer.put('k', 'v1')
    await writer.del('gone')
    for (let i = 0; i < 300; i++) await writer.put(`filler:${i % 10}`, String(i))
    await waitFor(async () => (await statusOf(master)).logStart > held + 1, {
      what: `the master to trim seq ${held + 1} from its log`,
    })
    // Still cut off: the replica answers what it held, from the cache.
    expect(await reader.get('k')).toBe('v0')
    expect(await reader.get('gone')).toBe('g0')

    proxy.heal()
    const head = (await statusOf(master)).seq
    await waitFor(
      async () => {
        const s = await statusOf(replica)
        return s.sync.fullSyncs > before.sync.fullSyncs && s.seq >= head && s.link?.state === 'streaming'
      },
      { what: `the replica to full-sync to seq ${head}` },
    )
    expect(await reader.get('k')).toBe('v1')
    expect(await reader.get('gone')).toBeUndefined()
    // And it fills again after the sync.
    await readFromCache(replica, reader, 'k', 'v1')
  })
})
