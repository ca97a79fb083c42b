import { afterAll, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { waitFor } from '../helpers/wait.js'
import { FailoverGroup, statusOf, WriteLoad } from './group.js'

describe('tandem promote', () => {
  const group = new FailoverGroup()
  afterAll(() => group.teardown())

  it('hands the master role over back and forth under load without losing a w:majority write', async () => {
    // Rules: promotion hands over: the old master stops taking writes, the
    // candidate catches up to where the old master's log ends, then wins a
    // new epoch (rules 1, 2, 5); the other members follow it.
    await group.start({ size: 3 })
    let master = await group.waitForMaster()
    const clients = await Promise.all([0, 1, 2].map(() => group.client()))
    const load = new WriteLoad(
      clients.map((db) => ({ db, node: -1 })),
      { w: 'majority', timeoutMs: 2000 },
    ).start()
    await waitFor(() => load.acked.length >= 100, { what: '100 acknowledged writes' })

    const rounds = 6
    const took: number[] = []
    for (let round = 0; round < rounds; round++) {
      const others = group.nodes.filter((n) => n !== master)
      const target = others[round % others.length]
      const startedAt = Date.now()
      const result = await runCli(['--server', target.address, 'promote'])
      expect(result.code, result.stderr).toBe(0)
      const targetId = (await statusOf(target)).nodeId
      await waitFor(
        async () => {
          const statuses = await Promise.all(group.nodes.map((n) => statusOf(n)))
          return statuses.every((s, i) =>
            group.nodes[i] === target
              ? s.role === 'master' && !s.readOnly
              : s.role === 'replica' && s.link?.state === 'streaming' && s.failover?.master.nodeId === targetId,
          )
        },
        { what: `round ${round}: every member to follow the promoted node` },
      )
      const acked = load.acked.length
      await waitFor(() => load.acked.length >= acked + 50, { what: `round ${round}: writes to go on` })
      took.push(Date.now() - startedAt)
      master = target
    }
    await load.stop()
    const data = await group.waitConverged()
    const lost = load.acked.filter((r) => r.key.startsWith('u:') && data.get(r.key) !== r.value)
    console.log(
      `promote: ${rounds} promotions, ${load.acked.length} w:majority writes acknowledged, ${lost.length} lost, ` +
        `${load.uncertain.length} uncertain, errors ${JSON.stringify([...load.errors])}, per round (promote to 50 more writes) ${took.join(', ')} ms`,
    )
    expect(lost.map((r) => r.key)).toEqual([])
    const statuses = await Promise.all(group.nodes.map((n) => statusOf(n)))
    expect(statuses.reduce((sum, s) => sum + s.rollbacks.entries, 0)).toBe(0)
    expect(group.epochsWithTwoMasters()).toEqual([])
  })
})
