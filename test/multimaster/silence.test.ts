import { afterEach, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { PeerGroup } from './peers.js'

/**
 * Rule: a peer link gives up a peer that sends nothing for --repl-timeout.
 * A stopped process (SIGSTOP) keeps its sockets open, so only silence tells
 * it is gone: the link must leave 'streaming', say why in status and
 * redial, and once the peer runs again, resume and converge. Without it the
 * link of the node that was not stopped showed 'streaming' for as long as
 * its peer stayed stopped.
 */
describe('multi-master: a silent peer', () => {
  let group: PeerGroup
  afterEach(() => group?.teardown())

  it('a stopped peer’s link leaves streaming after --repl-timeout, redials, and converges after SIGCONT', async () => {
    group = await new PeerGroup().start({ size: 2, conflict: 'lww', args: ['--repl-timeout', '2s'] })
    const db0 = await group.client(0)
    const db1 = await group.client(1)
    await db0.put('before', 'stop')
    await group.waitConverged(30_000)
    const link = async () => (await group.status(0)).multi!.peers[0]
    expect((await link()).link).toBe('streaming')

    await group.nodes[1].kill('SIGSTOP')
    try {
      const down = await waitFor(
        async () => {
          const peer = await link()
          return peer.link !== 'streaming' && peer.silenceTimeouts > 0 ? peer : undefined
        },
        { what: 'node 0’s link to the stopped node 1 to leave streaming', timeoutMs: 30_000 },
      )
      expect(down.reason).toMatch(/silent/)
      // Node 0 goes on taking writes meanwhile.
      for (let i = 0; i < 20; i++) await db0.put(`during:${i}`, String(i))
    } finally {
      await group.nodes[1].kill('SIGCONT')
    }

    await db1.put('after', 'cont')
    await waitFor(async () => (await link()).link === 'streaming', {
      what: 'node 0’s link to node 1 to stream again',
      timeoutMs: 30_000,
    })
    const [s0, s1] = await group.waitConverged(60_000)
    expect(s1.digest).toBe(s0.digest)
    expect(await db1.get('during:19')).toBe('19')
    expect(await db0.get('after')).toBe('cont')
  })
})
