import { afterEach, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { PeerGroup } from './peers.js'

/**
 * Last-writer-wins orders writes by their hybrid clock stamps, and a peer
 * stamps a write from its own clock and what it has heard. A client that
 * wrote on one peer and then, that peer gone, deletes the key on another
 * that has not yet heard of the write, must still see its delete win: the
 * SDK carries the greatest stamp it was given to the next peer it writes
 * to, which orders the delete after it. Without that, a peer whose clock
 * runs behind stamps the delete earlier than the put it follows, and the
 * put comes back when the link heals: an acknowledged delete undone.
 */
describe('multi-master: a client’s writes keep their order across peers (lww)', () => {
  let group: PeerGroup
  afterEach(() => group?.teardown())

  it('a delete made on a peer with a slower clock after a put on a faster one is not undone by the put', async () => {
    group = await new PeerGroup().start({
      size: 2,
      conflict: 'lww',
      args: ['--max-clock-offset', '10s'],
      // Node 0's clock runs 3 s ahead: within the tolerated offset, so both take writes.
      clockOffsetOf: (i) => (i === 0 ? 3000 : 0),
    })
    // The put must be taken by node 0. A group client writes to the first
    // peer of its seed list that answers within its discovery grace, and
    // under load node 1 can answer first: connect until writes go to node 0.
    const origin0 = (await group.status(0)).multi?.origin
    const db = await waitFor(
      async () => {
        const client = await group.groupClient({ timeoutMs: 5000 })
        if ((await client.put('probe', 'x')).origin === origin0) return client
        await client.close()
        return undefined
      },
      { what: 'a client whose writes go to node 0' },
    )
    // Node 1 does not hear of node 0's writes until the link heals.
    group.proxies[1][0]?.cut()
    const put = await db.put('set:x', 'present')
    expect(put.origin).toBe(origin0)

    // Node 0 stops answering (SIGSTOP): the client's liveness check gives it
    // up and the client finds node 1, and deletes there (a first try may fail).
    await group.nodes[0].kill('SIGSTOP')
    const del = await waitFor(
      () =>
        db.del('set:x').then(
          (r) => r,
          () => undefined,
        ),
      { what: 'the delete to be taken by node 1', timeoutMs: 20_000 },
    )
    expect(del.origin).toBe((await group.status(1)).multi?.origin)
    expect(del.hlc).toBeGreaterThan(put.hlc as number)

    await group.nodes[0].kill('SIGCONT')
    group.healAll()
    await group.waitConverged(30_000)
    for (const i of [0, 1]) {
      const one = await group.client(i)
      expect(await one.get('set:x')).toBeUndefined()
    }
  })
})
