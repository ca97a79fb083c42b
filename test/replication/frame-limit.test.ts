import { afterAll, describe, expect, it } from 'vitest'
import { PrometheusText } from '../helpers/prometheus.js'
import { waitFor } from '../helpers/wait.js'
import { Cluster, statusOf, waitCaughtUp } from './cluster.js'

/**
 * Rule: a downstream reads frames up to a limit (twice its
 * --max-frame-bytes) and says so in hello; its upstream cuts full-sync
 * chunks and entry frames under it. A record or entry that cannot fit is
 * refused with TOOLARGE, shown in the downstream's status, never retried
 * as a full sync that breaks at the same frame again and again.
 */
describe('a downstream with a small --max-frame-bytes', () => {
  const cluster = new Cluster()
  afterAll(() => cluster.teardown())

  async function fullSyncsServed(address: string): Promise<number> {
    const res = await fetch(`http://${address}/metrics`)
    return new PrometheusText(await res.text()).value('tandem_served_full_syncs_total') ?? 0
  }

  it('gets a full sync in chunks under its limit, once, and entries after it', async () => {
    const master = await cluster.start()
    const db = await cluster.client({ servers: [master.address] })
    // 400 values of 2 KiB: 800 KiB, several times the master's snapshot chunk
    // (256 KiB) and of the replica's frame limit (2 x 64 KiB).
    const value = 'v'.repeat(2048)
    for (let i = 0; i < 400; i += 50) {
      await db.batch([...Array(50).keys()].map((j) => ({ type: 'put' as const, key: `k${i + j}`, value })))
    }
    const replica = await cluster.start(['--replicaof', master.address, '--max-frame-bytes', '65536'])
    await waitCaughtUp(master, [replica], 60_000)
    expect((await statusOf(replica)).keys).toBe(400)
    // Entries after the sync, written together: they commit in a few groups
    // whose frames (up to 1 MiB) would pass the replica's limit.
    await Promise.all([...Array(200).keys()].map((j) => db.put(`later${j}`, value)))
    await waitCaughtUp(master, [replica], 60_000)
    expect((await statusOf(replica)).keys).toBe(600)
    const direct = await cluster.client({ servers: [replica.address], direct: true })
    expect(await direct.get('later199')).toBe(value)
    expect(await fullSyncsServed(master.address)).toBe(1)
  })

  it('refuses, with TOOLARGE in the replica’s status, a record that cannot fit its frames', async () => {
    const master = await cluster.start()
    const db = await cluster.client({ servers: [master.address] })
    await db.put('small', 'x')
    // 200 KiB: within the master's --max-value-bytes, beyond the replica's frames (2 x 64 KiB).
    await db.put('big', 'b'.repeat(200 * 1024))
    const replica = await cluster.start(['--replicaof', master.address, '--max-frame-bytes', '65536'])
    const link = await waitFor(
      async () => {
        const res = await fetch(`http://${replica.address}/status`)
        const status = (await res.json()) as { link: { refusal: string | null } | null }
        return status.link?.refusal ? status.link : undefined
      },
      { what: 'the replica to show the refusal', timeoutMs: 30_000 },
    )
    expect(link.refusal).toMatch(/^TOOLARGE: .*"big"/)
    expect(replica.logs.some((l) => JSON.stringify(l).includes('TOOLARGE'))).toBe(true)
  })
})
