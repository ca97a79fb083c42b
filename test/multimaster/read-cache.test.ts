import { metricSum } from '@tandem/bench/fixtures'
import { TandemError } from '@tandem/client'
import { afterEach, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { PeerGroup } from './peers.js'

/**
 * The read cache on a multi-master peer: a key it holds is dropped when a
 * peer's write of it is applied (a remote group), so a read after the peers
 * converge answers the peer's write, and a vclock key that gains a sibling
 * from a peer fails with SIBLINGS instead of answering the one value held
 * (rules in packages/server/src/storage/read-cache.ts).
 */
describe('read cache on a multi-master peer', () => {
  const groups: PeerGroup[] = []
  afterEach(async () => {
    await Promise.all(groups.splice(0).map((g) => g.teardown()))
  })

  /**
   * Reads `key` on node i until it answers `value` from the read cache
   * (its hits grow): the read that first sees a write may be made while
   * the write is in flight, and is then not kept.
   */
  async function cached(group: PeerGroup, i: number, key: string, value: string): Promise<void> {
    const client = await group.client(i)
    const hitsBefore = await metricSum(group.nodes[i], 'tandem_read_cache_hits_total')
    await waitFor(
      async () =>
        (await client.get(key)) === value &&
        (await metricSum(group.nodes[i], 'tandem_read_cache_hits_total')) > hitsBefore,
      { what: `node ${i} to answer ${key} = ${value} from its read cache` },
    )
  }

  it("lww: a key read from the cache answers a peer's later writes once they arrive, and never goes back", async () => {
    const group = new PeerGroup()
    groups.push(group)
    await group.start({ size: 2, conflict: 'lww' })
    const a = await group.client(0)
    const b = await group.client(1)
    await a.put('k', 'v0')
    await cached(group, 1, 'k', 'v0')
    const writes = 200
    let done = false
    const writer = (async () => {
      try {
        for (let i = 1; i <= writes; i++) await a.put('k', `v${i}`)
      } finally {
        done = true
      }
    })()
    // Node 1 applies node 0's writes in order: its reads never go back.
    const problems: string[] = []
    let seen = 0
    let reads = 0
    while (!done || reads < 10) {
      const got = (await b.get('k')) as string
      reads++
      const n = Number(got.slice(1))
      if (n < seen) problems.push(`read v${n} after reading v${seen}`)
      seen = Math.max(seen, n)
    }
    await writer
    await group.waitConverged()
    expect(problems).toEqual([])
    // Converged: node 1 holds v200, and a read answers it (a value the cache kept from before would not).
    expect(await b.get('k')).toBe(`v${writes}`)
    expect(await b.get('k')).toBe(`v${writes}`)
  })

  it("vclock: a key held with one value gains a peer's sibling, and a get then fails with SIBLINGS", async () => {
    const group = new PeerGroup()
    groups.push(group)
    await group.start({ size: 2, conflict: 'vclock' })
    const a = await group.client(0)
    const b = await group.client(1)
    await a.put('cart', 'one')
    await cached(group, 1, 'cart', 'one')
    // A put without a context on node 0 keeps 'one' beside it: two siblings, which node 1 gets from node 0.
    await a.put('cart', 'two')
    expect([...(await a.getAll('cart')).values].sort()).toEqual(['one', 'two'])
    await group.waitConverged()
    const err = await b.get('cart').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TandemError)
    expect((err as TandemError).code).toBe('SIBLINGS')
    expect([...(await b.getAll('cart')).values].sort()).toEqual(['one', 'two'])
    // Node 0 resolves them with the context; node 1 answers the one value again.
    await a.put('cart', 'both', { context: (await a.getAll('cart')).context })
    await group.waitConverged()
    expect(await b.get('cart')).toBe('both')
    expect(await b.get('cart')).toBe('both')
  })
})
