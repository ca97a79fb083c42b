import { afterAll, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { Cluster, statusOf, waitCaughtUp } from './cluster.js'

interface Link {
  state: string
  silenceTimeouts: number
  reason: string | null
}

/**
 * Rule: a replica gives up an upstream that sends nothing for
 * --repl-timeout. A stopped process (SIGSTOP) keeps its socket open, so
 * only silence tells it is gone: the upstream heartbeats a streaming
 * replica every replHeartbeatMs and answers pings in every state, so a
 * replica that hears nothing for that long must leave 'streaming', say why
 * in status, and redial; once the upstream runs again it streams and
 * catches up. Without it the replica showed 'streaming' for as long as its
 * master stayed stopped.
 */
describe('a replica whose upstream goes silent', () => {
  const cluster = new Cluster()
  afterAll(() => cluster.teardown())

  it('leaves streaming after --repl-timeout of a SIGSTOPped master, redials, and catches up after SIGCONT', async () => {
    const master = await cluster.start()
    const replica = await cluster.start(['--replicaof', master.address, '--repl-timeout', '2s'])
    const db = await cluster.client({ servers: [master.address] })
    await db.put('before', 'stop')
    await waitCaughtUp(master, [replica])
    const link = async () => (await statusOf(replica)).link as unknown as Link
    expect((await link()).state).toBe('streaming')

    await master.kill('SIGSTOP')
    try {
      const down = await waitFor(
        async () => {
          const l = await link()
          return l.state !== 'streaming' && l.silenceTimeouts > 0 ? l : undefined
        },
        { what: 'the replica’s link to the stopped master to leave streaming', timeoutMs: 30_000 },
      )
      expect(down.reason).toMatch(/silent/)
      const ready = await fetch(`http://${replica.address}/ready`)
      expect(ready.status).toBe(503)
    } finally {
      await master.kill('SIGCONT')
    }

    await waitFor(async () => (await link()).state === 'streaming', {
      what: 'the replica to stream again after SIGCONT',
      timeoutMs: 30_000,
    })
    await db.put('after', 'cont')
    await waitCaughtUp(master, [replica], 30_000)
    const direct = await cluster.client({ servers: [replica.address], direct: true })
    expect(await direct.get('after')).toBe('cont')
  })
})
