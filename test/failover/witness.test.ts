import { TandemClient } from '@tandem/client'
import { afterAll, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { FailoverGroup, statusOf } from './group.js'

describe('two data nodes and a witness', () => {
  const group = new FailoverGroup()
  afterAll(() => group.teardown())

  it('promotes the other data node when the master dies, and stays read-only without a majority', async () => {
    // Rules: a witness votes (it is one of the majority) but stores no data
    // and never stands; with no majority reachable no member can be elected,
    // so the survivor serves reads and answers writes with NOMASTER.
    await group.start({ size: 3, witnesses: [2] })
    const [a, b, witness] = group.nodes
    expect((await statusOf(witness)).role).toBe('witness')
    const first = await group.waitForMaster([a, b])
    const second = first === a ? b : a
    const db = await group.client()
    // The first waits for the other data node to stream from the new master:
    // a deadline, not a measure (a loaded machine may take seconds).
    for (let i = 0; i < 50; i++) await db.put(`k${i}`, `v${i}`, { w: 'majority', timeoutMs: 15_000 })

    // Losing the master: the other data node is elected with the witness's vote.
    await first.kill('SIGKILL')
    const killedAt = Date.now()
    expect(await group.waitForMaster([second], 'the other data node to become master')).toBe(second)
    // (A w:'majority' write would wait: the witness holds no data, so the
    // only other data node is the one that is down.)
    await db.put('after-first-failover', 'yes', { timeoutMs: 15_000 })
    console.log(`witness: the other data node took a write ${Date.now() - killedAt} ms after the master was killed`)

    // The killed node returns as a replica and catches up.
    await first.start()
    await waitFor(async () => (await statusOf(first)).link?.state === 'streaming', { what: 'the old master to follow' })
    await group.waitConverged()

    // Losing the master and the witness: no majority; the survivor is read-only.
    await Promise.all([second.kill('SIGKILL'), witness.kill('SIGKILL')])
    const survivor = await TandemClient.connect({ servers: [first.address], direct: true })
    // Its election timer fires and it asks for votes (a pre-vote) that never come.
    const tries = async () => {
      const e = (await statusOf(first)).failover?.elections
      return (e?.started ?? 0) + (e?.preVotesLost ?? 0)
    }
    const before = await tries()
    await waitFor(async () => (await tries()) >= before + 2, {
      what: 'the survivor to try to get elected twice, and fail',
    })
    const status = await statusOf(first)
    expect(status.role).toBe('replica')
    expect(status.readOnly).toBe(true)
    expect(await survivor.get('k7')).toBe('v7')
    expect(await survivor.get('after-first-failover')).toBe('yes')
    const refused = await survivor.put('x', 'y').then(
      () => 'ACCEPTED',
      (err: { code?: string }) => err.code,
    )
    expect(refused).toBe('NOMASTER')
    await survivor.close()
  })
})
