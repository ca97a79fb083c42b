import { TandemClient, TandemError } from '@tandem/client'
import { afterAll, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { Cluster, statusOf, waitCaughtUp } from './cluster.js'

/**
 * Manual mode has no fail-over group to tell an old master it was
 * replaced, so it learns from whoever has seen the newer epoch: a client's
 * write carrying it, or a replica's hello in it. Either way the old
 * master stops taking writes (FENCED), as rule 5 has it in a group.
 */

async function failure(call: Promise<unknown>): Promise<TandemError> {
  const err = await call.then(
    () => null,
    (e: unknown) => e,
  )
  expect(err, 'the write was taken by a master of an older epoch').toBeInstanceOf(TandemError)
  return err as TandemError
}

describe('an old master in manual mode', () => {
  const cluster = new Cluster()
  afterAll(() => cluster.teardown())

  it('restarted without --replicaof after a promotion, steps down at the first write from a client that saw the new epoch', async () => {
    const old = await cluster.start()
    const next = await cluster.start(['--replicaof', old.address])
    const toOld = await cluster.client({ servers: [old.address], direct: true })
    for (let i = 0; i < 10; i++) await toOld.put(`k${i}`, 'v', { w: 1, timeoutMs: 5000 })
    await cluster.client({ servers: [next.address], direct: true }).then((c) => c.replicaof(null))
    expect((await statusOf(next)).epoch).toBe(2)
    await old.stop()
    await old.start()
    const before = await waitFor(() => statusOf(old), { what: 'the old master to be back' })
    expect(before).toMatchObject({ role: 'master', epoch: 1, readOnly: false })

    // A client that knows both finds the newer master, and learns its epoch.
    const db = await cluster.client({ servers: [next.address, old.address], timeoutMs: 3000 })
    await db.put('on-next', 'v')
    await next.kill('SIGKILL')
    // With the new master gone, the only node taking writes is the old one:
    // the client's write tells it epoch 2 exists.
    const err = await failure(db.put('split', 'brain'))
    expect(['NOMASTER', 'FENCED', 'TIMEOUT', 'UNAVAILABLE']).toContain(err.code)
    const after = await statusOf(old)
    expect(after.readOnly).toBe(true)
    expect(after.role).not.toBe('master')
    expect(old.logs.some((l) => l.msg === 'stepping down: a newer epoch exists')).toBe(true)
    const fenced = await failure(toOld.put('direct', 'v'))
    expect(fenced.code).toBe('FENCED')
    expect(fenced.details.epoch).toBe(2)
    expect(await toOld.get('split')).toBeUndefined()

    // The operator points it at the new master, which it then follows.
    await next.start()
    await waitFor(() => statusOf(next), { what: 'the new master to be back' })
    await toOld.replicaof(next.address)
    await waitCaughtUp(next, [old])
    expect(await toOld.get('on-next')).toBe('v')
  })

  it('steps down when a replica already in the newer epoch says hello to it', async () => {
    const old = await cluster.start()
    const next = await cluster.start(['--replicaof', old.address])
    const toOld = await cluster.client({ servers: [old.address], direct: true })
    for (let i = 0; i < 10; i++) await toOld.put(`k${i}`, 'v', { w: 1, timeoutMs: 5000 })
    await cluster.client({ servers: [next.address], direct: true }).then((c) => c.replicaof(null))
    const replica = await cluster.start(['--replicaof', next.address])
    await waitCaughtUp(next, [replica])
    expect((await statusOf(replica)).history.at(-1)?.epoch).toBe(2)
    await toOld.put('before', 'v') // the old master still takes writes: nothing told it yet

    const toReplica = await TandemClient.connect({ servers: [replica.address], direct: true })
    await toReplica.replicaof(old.address)
    await toReplica.close()
    await waitFor(async () => (await statusOf(old)).readOnly, { what: 'the old master to step down' })
    const fenced = await failure(toOld.put('after', 'v'))
    expect(fenced.code).toBe('FENCED')
    await waitFor(async () => /stale/.test(String((await statusOf(replica)).link?.refusal)), {
      what: 'the replica to be refused by the stale master',
    })
  })
})
