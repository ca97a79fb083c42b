import { afterAll, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { waitFor } from '../helpers/wait.js'
import { FailoverGroup, statusOf } from './group.js'

describe('a member listed under two routes', () => {
  const group = new FailoverGroup()
  afterAll(() => group.teardown())

  it('counts once, towards the group size and towards the master lease', async () => {
    // Four members; node 0's --cluster list reaches node 1 twice (its own
    // proxy and a second one), as a name and its address would. Counted
    // twice, node 0 would see a group of five whose majority (3) it makes
    // with node 1 alone, and keep its lease with half of the real group.
    await group.start({ size: 4, aliases: [[0, 1]] })
    const alias = group.aliasProxies[0].proxy.address
    const first = await group.waitForMaster()
    if (group.index(first) !== 0) {
      const result = await runCli(['--server', group.nodes[0].address, 'promote'])
      expect(result.code, result.stderr).toBe(0)
    }
    await group.waitForMaster([group.nodes[0]], 'node 0 to be the writable master')

    const members = await waitFor(
      async () => {
        const m = (await statusOf(group.nodes[0])).failover?.members ?? []
        return m.length === 3 && m.every((p) => p.nodeId !== null) ? m : undefined
      },
      { what: 'node 0 to count three other members, its alias route to node 1 found out' },
    )
    expect(members.map((m) => m.route)).not.toContain(alias)
    expect(new Set(members.map((m) => m.nodeId)).size).toBe(3)
    expect(
      group.nodes[0].logs.some((l) => l.msg === 'two --cluster routes reach one member; the later is not counted'),
    ).toBe(true)

    // Node 0 keeps node 1 over both routes and loses nodes 2 and 3: two of
    // four is no majority, so its lease lapses and it takes no writes.
    group.cut(0, 2)
    group.cut(0, 3)
    await waitFor(async () => (await statusOf(group.nodes[0])).readOnly, {
      what: 'node 0, hearing only node 1 (twice), to stop taking writes',
    })
    expect((await statusOf(group.nodes[0])).failover?.lease.held).toBe(false)
  })
})
