import { afterEach, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { waitFor } from '../helpers/wait.js'
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

  it("fills a peer's LAG and LINK from its links to its peers, and names a peer whose link is down", async () => {
    group = await new PeerGroup().start({ size: 3, conflict: 'lww' })
    const g = group
    type Row = {
      address: string
      role: string
      link: string
      lag: { entries: number; ms: number } | null
      links?: { addr: string; link: string; lagEntries: number; lagMs: number }[]
    }
    const rowsFrom = async (seed: string) => {
      const result = await runCli(['--server', seed, '--json', 'status', '--all'])
      expect(result.code).toBe(0)
      return result.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Row)
    }
    // Every link streaming: each peer's row says so, with its lag (none, once caught up).
    await waitFor(
      async () => {
        const peers = (await rowsFrom(g.nodes[0].address)).filter((r) => r.role === 'peer')
        return peers.length === 3 && peers.every((r) => r.link === 'streaming' && r.lag?.entries === 0)
      },
      { what: 'every peer row streaming, no entries behind' },
    )
    for (const r of (await rowsFrom(g.nodes[0].address)).filter((r) => r.role === 'peer')) {
      expect(r.links).toHaveLength(2)
      expect(r.lag).not.toBeNull()
    }
    const table = await runCli(['--server', g.nodes[0].address, 'status', '--all'])
    const peerLines = table.stdout.split('\n').filter((l) => /\speer\s/.test(l))
    expect(peerLines).toHaveLength(3)
    for (const line of peerLines) expect(line).toMatch(/\s0\/\d+ms\s+streaming$/)

    // Node 2 stops: the rows of 0 and 1 name their link to it, not streaming.
    const gone = g.nodes[2]
    const goneId = (await g.status(2)).nodeId
    // Each live peer's address for node 2: the --peers entry its link dials (a proxy in this group).
    const addrOfGone = await Promise.all(
      [0, 1].map(async (i) => (await g.status(i)).multi?.peers.find((p) => p.nodeId === goneId)?.addr),
    )
    expect(addrOfGone.every((a) => typeof a === 'string')).toBe(true)
    await gone.stop()
    await waitFor(
      async () => {
        const rows = await rowsFrom(g.nodes[0].address)
        return [0, 1].every((i) => {
          const r = rows.find((x) => x.role === 'peer' && x.address === g.nodes[i].address)
          const down = r?.links?.find((l) => l.addr === addrOfGone[i])?.link
          return down !== undefined && down !== 'streaming' && r?.link === `streaming 1/2, ${down} ${addrOfGone[i]}`
        })
      },
      { what: "the live peers' rows naming their link to the stopped peer" },
    )
  })
})
