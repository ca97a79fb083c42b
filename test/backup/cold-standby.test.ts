import { join } from 'node:path'
import { TandemClient } from '@tandem/client'
import { afterAll, describe, expect, it } from 'vitest'
import { scanAll, statusOf } from '../failover/group.js'
import { runCli } from '../helpers/cli.js'
import { type NodeProcess, startNode } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'

/**
 * The cold standby (README, Backup and restore): a node that is not
 * running, provisioned from the latest backup, started when the master
 * dies, caught up from a surviving replica when there is one, and promoted.
 */
describe('cold standby', () => {
  const dir = tempDir('tandem-cold-')
  const nodes: NodeProcess[] = []
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()))
    dir.remove()
  })
  const start = async (name: string, args: string[] = []) => {
    const node = await startNode(join(dir.path, name), args)
    nodes.push(node)
    return node
  }
  const writeKeys = async (db: TandemClient, prefix: string, n: number) => {
    for (let i = 0; i < n; i += 100) {
      await db.batch(
        Array.from({ length: 100 }, (_, j) => ({ type: 'put' as const, key: `${prefix}${i + j}`, value: `v${i + j}` })),
      )
    }
  }

  it('catches up from the surviving replica by partial resync, is promoted, and loses nothing', async () => {
    const master = await start('master')
    const replica = await start('replica', ['--replicaof', master.address])
    const db = await TandemClient.connect({ servers: [master.address] })
    await writeKeys(db, 'before:', 1000)
    const file = join(dir.path, 'latest.snap')
    expect((await runCli(['--server', master.address, 'snapshot', 'save', file])).code).toBe(0)
    await writeKeys(db, 'after:', 500)
    const head = (await statusOf(master)).seq
    await waitFor(async () => (await statusOf(replica)).seq === head, { what: 'the replica to hold every write' })
    await db.close()
    await master.kill('SIGKILL')

    // The standby starts from the backup and follows the surviving replica, then is promoted.
    const standby = await start('standby', ['--restore', file, '--replicaof', replica.address])
    await waitFor(async () => (await statusOf(standby)).seq === head, { what: 'the standby to catch up' })
    const caughtUp = await statusOf(standby)
    expect(caughtUp.sync.fullSyncs).toBe(0)
    expect(caughtUp.sync.partialSyncs).toBeGreaterThanOrEqual(1)
    expect((await runCli(['--server', standby.address, 'promote'])).code).toBe(0)
    const onStandby = await TandemClient.connect({ servers: [standby.address] })
    await onStandby.put('first-after', 'x')
    const data = await scanAll(standby.address)
    expect(data.size).toBe(1000 + 500 + 1)
    expect(data.get('after:499')).toBe('v499')
    await onStandby.close()
  })

  it('with no surviving replica, holds the backup and loses exactly the writes after it', async () => {
    const master = await start('lonely')
    const db = await TandemClient.connect({ servers: [master.address] })
    await writeKeys(db, 'before:', 1000)
    const file = join(dir.path, 'lonely.snap')
    const saved = JSON.parse((await runCli(['--server', master.address, 'snapshot', 'save', file, '--json'])).stdout)
    await writeKeys(db, 'after:', 300)
    await db.close()
    await master.kill('SIGKILL')
    const standby = await start('lonely-standby', ['--restore', file])
    expect((await statusOf(standby)).seq).toBe(saved.seq)
    const onStandby = await TandemClient.connect({ servers: [standby.address] })
    await onStandby.put('first-after', 'x')
    const data = await scanAll(standby.address)
    expect(data.size).toBe(1000 + 1)
    expect([...data.keys()].filter((k) => k.startsWith('after:'))).toEqual([])
    await onStandby.close()
  })
})
