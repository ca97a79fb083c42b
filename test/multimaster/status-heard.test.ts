import { afterAll, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { waitFor } from '../helpers/wait.js'
import { PeerGroup, statusOf } from './peers.js'

/**
 * A peer's lag is what this node lacks from it as far as the peer last
 * said, so a peer killed with SIGKILL keeps showing the lag it had (0)
 * while it misses every new write. The text status says, off a streaming
 * link, how long ago the peer last spoke, or that it never did.
 */
describe('multi-master: the text status says when a peer that is not streaming last spoke', () => {
  const group = new PeerGroup()
  afterAll(() => group.teardown())

  it('shows "last heard N ms ago" for a killed peer and nothing extra for a streaming one', async () => {
    await group.start({ size: 2, conflict: 'lww' })
    const [a, b] = group.nodes
    await waitFor(async () => (await statusOf(a)).multi!.peers[0].link === 'streaming', {
      what: "a's link to b streaming",
    })
    const streaming = await runCli(['--server', a.address, 'status'])
    expect(streaming.code).toBe(0)
    expect(streaming.stdout).toMatch(/^peer \S+ \S+ {2}streaming {2}lag \d+ entries \/ \d+ ms/m)
    expect(streaming.stdout).not.toMatch(/last heard|never heard/)

    await b.kill('SIGKILL')
    await waitFor(async () => (await statusOf(a)).multi!.peers[0].link !== 'streaming', {
      what: "a's link to the killed b to leave streaming",
    })
    const gone = await runCli(['--server', a.address, 'status'])
    expect(gone.code).toBe(0)
    const line = gone.stdout.split('\n').find((l) => l.startsWith('peer '))
    const ago = /lag \d+ entries \/ \d+ ms {2}last heard (\d+) ms ago/.exec(line ?? '')
    expect(ago, line).not.toBeNull()
    const status = await statusOf(a)
    // The figure is the node's own lastHeardMsAgo, which only grows while b is gone.
    expect(Number(ago![1])).toBeLessThanOrEqual(status.multi!.peers[0].lastHeardMsAgo!)
  })
})
