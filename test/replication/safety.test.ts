import { afterAll, describe, expect, it } from 'vitest'
import type { NodeProcess } from '../helpers/node-process.js'
import { waitFor } from '../helpers/wait.js'
import { Cluster, scanAll, statusOf, waitCaughtUp } from './cluster.js'

/**
 * An upstream restarted with an empty data dir must not wipe a replica that
 * holds more than it: the replica is refused, keeps its data, says so in
 * its log and status, and waits.
 */
describe('an empty restarted master cannot wipe its replicas', () => {
  const cluster = new Cluster()
  afterAll(() => cluster.teardown())

  async function replicaWithData(masterArgs: string[]) {
    const master = await cluster.start(masterArgs)
    const replica = await cluster.start(['--replicaof', master.address])
    const db = await cluster.client({ servers: [master.address] })
    for (let i = 0; i < 20; i++) {
      await db.batch(
        Array.from({ length: 50 }, (_, j) => ({ type: 'put' as const, key: `d:${i}:${j}`, value: `${i * j}` })),
      )
    }
    await waitCaughtUp(master, [replica])
    const data = await scanAll(replica.address)
    expect(data.size).toBe(1000)
    const seq = (await statusOf(replica)).seq
    await db.close()
    await master.stop()
    return { master, replica, data, seq }
  }

  /** A master on the old one's port, in a fresh empty data dir. */
  async function emptyMasterAt(port: number, args: string[] = []): Promise<NodeProcess> {
    const fresh = cluster.create(args)
    fresh.port = port
    return fresh.start()
  }

  async function expectRefusedAndIntact(replica: NodeProcess, data: [string, string][], seq: number) {
    const status = await waitFor(
      async () => {
        const s = await statusOf(replica)
        return s.link?.refusal ? s : null
      },
      { what: 'the replica to report the refusal' },
    )
    expect(status.link?.state).not.toBe('streaming')
    expect(status.seq).toBe(seq)
    expect(status.sync.fullSyncs).toBe(1) // the first one, from the old master when it was empty
    expect(await scanAll(replica.address)).toEqual(data)
    const warned = await replica.waitForLog((l) => l.level === 'warn' && /refused/.test(l.msg))
    expect(String(warned.reason)).toMatch(/behind|diverged/)
    return status
  }

  it('a new node in an empty data dir on the master’s address is refused', async () => {
    // Rule: an upstream behind a downstream, or on a history it does not
    // share, refuses it rather than sending a full sync.
    const { master, replica, data, seq } = await replicaWithData([])
    const fresh = await emptyMasterAt(master.port)
    await expectRefusedAndIntact(replica, data, seq)
    expect(fresh.logs.some((l) => l.level === 'warn' && l.msg === 'refusing replica')).toBe(true)

    // Still refused once the new master has taken more writes than the
    // replica holds: its history is not the replica's.
    const db = await cluster.client({ servers: [fresh.address] })
    for (let i = 0; i < seq + 10; i++) await db.put(`new:${i}`, 'n')
    expect((await statusOf(fresh)).seq).toBeGreaterThan(seq)
    const servedBefore = (await statusOf(fresh)).sync.servedPartial + (await statusOf(fresh)).sync.servedFull
    await waitFor(
      async () =>
        fresh.logs.filter((l) => l.msg === 'refusing replica' && /diverge/.test(String(l.message))).length > 0,
      { what: 'a refusal for diverged histories' },
    )
    const s = await statusOf(fresh)
    expect(s.sync.servedPartial + s.sync.servedFull).toBe(servedBefore)
    expect((await statusOf(replica)).seq).toBe(seq)
    expect(await scanAll(replica.address)).toEqual(data)
    await fresh.stop()
  })

  it('the same node id restarted with an empty data dir is refused too', async () => {
    // Rule: same epoch and same seq must mean the same entry, so a master
    // that lost its data must not pass as the history it once wrote.
    const { master, replica, data, seq } = await replicaWithData(['--node-id', 'master-a'])
    const fresh = await emptyMasterAt(master.port, ['--node-id', 'master-a'])
    await expectRefusedAndIntact(replica, data, seq)
    const db = await cluster.client({ servers: [fresh.address] })
    for (let i = 0; i < seq + 10; i++) await db.put(`new:${i}`, 'n')
    expect((await statusOf(fresh)).seq).toBeGreaterThan(seq)
    await waitFor(
      async () =>
        fresh.logs.filter((l) => l.msg === 'refusing replica' && /diverge/.test(String(l.message))).length > 0,
      { what: 'a refusal for diverged histories' },
    )
    expect((await statusOf(replica)).seq).toBe(seq)
    expect(await scanAll(replica.address)).toEqual(data)
  })
})
