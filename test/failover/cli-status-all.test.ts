import { afterAll, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { waitFor } from '../helpers/wait.js'
import { FailoverGroup, statusOf } from './group.js'

/**
 * `tandem status --all`, like `etcdctl endpoint status --cluster`: one row
 * per member of the group, whichever member is the seed, found through
 * the seed's status (its fail-over members, master and replicas).
 */
describe('tandem status --all', () => {
  const group = new FailoverGroup()
  afterAll(() => group.teardown())

  it('shows every member of a 3-node group from any one seed, as a table and as JSON lines', async () => {
    await group.start({ size: 3 })
    const master = await group.waitForMaster()
    const replicas = group.nodes.filter((n) => n !== master)
    // As generous as waitForMaster: on a loaded machine the master found
    // above may lose its lease to late heartbeats, and the replicas then
    // follow the next one.
    let seen: unknown
    await waitFor(
      async () => {
        const s = await Promise.all(replicas.map((r) => statusOf(r)))
        seen = s.map((r) => ({ role: r.role, link: r.link, failover: r.failover?.master }))
        return s.every((r) => r.link?.state === 'streaming')
      },
      { what: 'both replicas streaming', timeoutMs: 60_000 },
    ).catch(async (err) => {
      console.log('replicas as last seen:', JSON.stringify(seen), await group.describe())
      for (const n of group.nodes) console.log(n.address, n.tail(30))
      throw err
    })
    const statuses = await Promise.all(group.nodes.map((n) => statusOf(n)))
    const ids = statuses.map((s) => s.nodeId)
    const masterId = (await statusOf(master)).nodeId

    // From a replica: the view is not limited to the seed.
    const json = await runCli(['--server', replicas[1].address, 'status', '--all', '--json'])
    expect(json.code, json.stderr).toBe(0)
    const rows = json.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(rows.map((r) => r.nodeId).sort()).toEqual([...ids].sort())
    for (const r of rows) {
      expect(r.address).toBe(group.nodes[ids.indexOf(r.nodeId)].address)
      expect(r.epoch).toBe(statuses[0].epoch)
      if (r.nodeId === masterId) expect(r).toMatchObject({ role: 'master', link: '-', lag: null })
      else expect(r).toMatchObject({ role: 'replica', link: 'streaming', lag: { entries: expect.any(Number) } })
    }

    const table = await runCli(['--server', master.address, 'status', '--all'])
    expect(table.code, table.stderr).toBe(0)
    const lines = table.stdout.trimEnd().split('\n')
    expect(lines[0]).toMatch(/^ADDRESS\s+NODE\s+ROLE\s+EPOCH\s+SEQ\s+LAG\s+LINK$/)
    expect(lines).toHaveLength(4)
    for (const id of ids) expect(lines.filter((l) => l.includes(id))).toHaveLength(1)
    expect(lines.find((l) => l.includes(masterId))).toMatch(/\smaster\s/)
  })
})
