import { afterEach, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { PeerGroup } from './peers.js'

/** `tandem status --all` lists every node of the group; in a multi-master group, through the peers. */
describe('multi-master: status --all', () => {
  let group: PeerGroup | undefined
  afterEach(async () => {
    await group?.teardown()
    group = undefined
  })

  it('has one row per peer, reached from any one of them, and one for a read replica of a peer', async () => {
    group = await new PeerGroup().start({ size: 3, conflict: 'lww' })
    const replica = await group.startExtra(['--replicaof', group.nodes[0].address])
    const ids = await Promise.all(group.nodes.map(async (_n, i) => (await group!.status(i)).nodeId))
    for (const seed of [group.nodes[1], replica]) {
      const result = await runCli(['--server', seed.address, '--json', 'status', '--all'])
      expect(result.code).toBe(0)
      const rows = result.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { nodeId: string; role: string; link: string })
      const peers = rows.filter((r) => r.role === 'peer')
      expect(peers.map((r) => r.nodeId).sort()).toEqual([...ids].sort())
      expect(rows.filter((r) => r.role === 'replica')).toHaveLength(1)
      expect(rows.every((r) => r.link !== 'unreachable')).toBe(true)
    }
  })
})
