import { TandemError } from '@tandem/client'
import { afterEach, describe, expect, it } from 'vitest'
import { readFromCache, readsGoingBack } from '../helpers/read-cache.js'
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

  it("lww: a key read from the cache answers a peer's later writes once they arrive, and never goes back", async () => {
    const group = new PeerGroup()
    groups.push(group)
    await group.start({ size: 2, conflict: 'lww' })
    const a = await group.client(0)
    const b = await group.client(1)
    await a.put('k', 'v0')
    await readFromCache(group.nodes[1], b, 'k', 'v0')
    const writes = 200
    // Node 1 applies node 0's writes in order: its reads never go back.
    const problems = await readsGoingBack(a, b, 'k', writes)
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
    await readFromCache(group.nodes[1], b, 'cart', 'one')
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
