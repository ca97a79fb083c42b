import { afterEach, describe, expect, it } from 'vitest'
import { PeerGroup } from './peers.js'

/**
 * Rule: a peer that reads small frames (--max-frame-bytes) is sent nothing
 * larger (see test/replication/frame-limit.test.ts): the entries it lacks
 * come in frames cut under the limit its hello says, and it converges.
 * Before, the first frame over it closed its link, which redialled and was
 * sent the same frame again, for ever.
 */
describe('multi-master: a peer with a small --max-frame-bytes', () => {
  let group: PeerGroup
  afterEach(() => group?.teardown())

  it('gets what it lacks in frames under its limit and converges', async () => {
    group = await new PeerGroup().start({
      size: 2,
      conflict: 'lww',
      argsOf: (i) => (i === 1 ? ['--max-frame-bytes', '65536'] : []),
    })
    // Node 1 hears nothing while node 0 takes 800 KiB in batches of 50 KiB.
    group.isolate(1)
    const db0 = await group.client(0)
    const value = 'v'.repeat(1024)
    for (let i = 0; i < 800; i += 50) {
      await db0.batch([...Array(50).keys()].map((j) => ({ type: 'put' as const, key: `k${i + j}`, value })))
    }
    group.healAll()
    const [s0, s1] = await group.waitConverged(60_000)
    expect(s1.digest).toBe(s0.digest)
    const db1 = await group.client(1)
    expect(await db1.get('k799')).toBe(value)
  })
})
