import { TandemClient } from '@tandem/client'
import { afterAll, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { FailoverGroup, statusOf, WriteLoad } from './group.js'

describe('a master paused longer than the fail-over timeout', () => {
  const group = new FailoverGroup()
  afterAll(() => group.teardown())

  it('is replaced, refuses its very first write after SIGCONT, and becomes a replica', async () => {
    // Rules: the lease is measured on a monotonic clock that runs while the
    // process is stopped, so a master resumed after its lease lapsed takes no
    // write, even one already waiting on its socket (rule 4); on hearing the
    // newer epoch it is fenced and follows the new master (rule 5).
    await group.start({ size: 3 })
    const master = await group.waitForMaster()
    const pinned = await TandemClient.connect({ servers: [master.address], direct: true })
    // Default connect timeout: discovery must not wait on the paused node.
    const writers = await Promise.all([0, 1].map(() => group.client({ connectTimeoutMs: 5000 })))
    const load = new WriteLoad(
      writers.map((db) => ({ db, node: -1 })),
      { w: 'majority' },
    ).start()
    await waitFor(() => load.acked.length >= 200, { what: '200 acknowledged writes' })
    await pinned.put('before-pause', 'x')

    await master.kill('SIGSTOP')
    const stoppedAt = Date.now()
    const others = group.nodes.filter((n) => n !== master)
    await group.waitForMaster(others, 'a new master while the old one is paused')
    const electedAfter = Date.now() - stoppedAt
    await waitFor(() => load.ackedBy(0, stoppedAt) + load.ackedBy(1, stoppedAt) >= 50, {
      what: 'writes acknowledged by the new master',
    })

    // A client that starts now, with the paused master first among its
    // seeds, finds the new master without waiting out its connect timeout
    // on the paused one (which accepts TCP but never answers).
    const lateStart = Date.now()
    const late = await group.client({
      servers: [master.address, ...others.map((n) => n.address)],
      connectTimeoutMs: 5000,
    })
    await late.put('late-client', 'ok', { w: 'majority', timeoutMs: 10_000 })
    const lateMs = Date.now() - lateStart

    // The write is on the paused master's socket before it resumes: it is
    // the first thing it can be asked after SIGCONT.
    const attempt = pinned.put('after-pause', 'must-not-be-taken', { timeoutMs: 5000 }).then(
      () => 'ACCEPTED',
      (err: { code?: string }) => err.code ?? 'ERROR',
    )
    await master.kill('SIGCONT')
    const outcome = await attempt
    const firstAck = Math.min(...load.acked.filter((r) => r.sentAt > stoppedAt).map((r) => r.ackedAt)) - stoppedAt
    console.log(
      `paused-master: new master seen ${electedAfter} ms after SIGSTOP, first client write acknowledged after ${firstAck} ms; a client started during the pause wrote after ${lateMs} ms; first write to the old master after SIGCONT: ${outcome}`,
    )
    expect(['FENCED', 'NOMASTER', 'READONLY']).toContain(outcome)

    // (The master found above may since have been replaced: follow whichever is master now.)
    await waitFor(
      async () => {
        const s = await statusOf(master)
        const current = await group.writableMaster(others)
        const currentId = current && (await statusOf(current)).nodeId
        return s.role === 'replica' && s.link?.state === 'streaming' && s.failover?.master.nodeId === currentId
      },
      { what: 'the old master to follow the new one' },
    ).catch(async (err) => {
      throw new Error(`${(err as Error).message}\n${await group.describe()}`)
    })
    await load.stop()
    const data = await group.waitConverged()
    expect(data.has('after-pause')).toBe(false)
    expect(data.get('before-pause')).toBe('x')
    for (const r of load.acked) if (r.key.startsWith('u:')) expect(data.get(r.key)).toBe(r.value)
    await pinned.close()
    expect(group.epochsWithTwoMasters()).toEqual([])
  })
})
