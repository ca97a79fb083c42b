import { TandemError } from '@tandem/client'
import { afterAll, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import type { NodeProcess } from '../helpers/node-process.js'
import { PrometheusText } from '../helpers/prometheus.js'
import { waitFor } from '../helpers/wait.js'
import { respPortOf } from '../resp/helpers.js'
import { command, RawResp } from '../resp/raw.js'
import { Cluster, scanAll, statusOf, waitCaughtUp } from './cluster.js'

/**
 * The key count in status and /metrics is kept with every write, not
 * counted on demand: it must equal what a scan of the node finds, on a
 * master and on its replica, through every kind of write (overwrites,
 * deletes of keys that exist and keys that do not, batches, conditional
 * writes refused, TTL expiry, `del --prefix`), a SIGKILL in the middle of
 * writes, and a full sync that replaces a replica's data. The log's
 * retained range moves as the log is trimmed.
 */
describe('key count, bytes on disk and the log range', () => {
  const cluster = new Cluster()
  afterAll(() => cluster.teardown())

  async function metrics(node: NodeProcess): Promise<PrometheusText> {
    const res = await fetch(`http://${node.address}/metrics`)
    expect(res.status).toBe(200)
    return new PrometheusText(await res.text())
  }

  /** Keys a scan of the node finds, and what `tandem count` says, read from that node alone. */
  async function scanned(node: NodeProcess): Promise<{ scan: number; cli: number }> {
    const scan = (await scanAll(node)).size
    const cli = await runCli(['--server', node.address, '--direct', 'count'])
    expect(cli.code, cli.stderr).toBe(0)
    return { scan, cli: Number(cli.stdout.trim()) }
  }

  /** status.keys, tandem_keys, a scan and `tandem count` all say `want` (when given, else what the scan finds). */
  async function expectCount(node: NodeProcess, want?: number): Promise<number> {
    const { scan, cli } = await scanned(node)
    const status = await statusOf(node)
    const m = await metrics(node)
    const expected = want ?? scan
    expect({ status: status.keys, metric: m.value('tandem_keys'), scan, cli }).toEqual({
      status: expected,
      metric: expected,
      scan: expected,
      cli: expected,
    })
    return expected
  }

  it('equals a scan on a master and its replica through every kind of write, a SIGKILL and a full sync', async () => {
    const master = await cluster.start(['--log-retention', '50', '--log-trim-interval', '50', '--resp-port', '0'])
    // The replica remembers no key's presence: every key it applies is read first (the master's cache covers the other path).
    const replica = await cluster.start(['--replicaof', master.address, '--tune', 'presenceKeys=0'])
    let db = await cluster.client({ servers: [master.address] })
    const model = new Map<string, string>()
    const put = async (key: string, value: string) => {
      await db.put(key, value)
      model.set(key, value)
    }

    for (let i = 0; i < 40; i++) await put(`k${i}`, `v${i}`)
    for (let i = 0; i < 10; i++) await put(`k${i}`, `again${i}`)
    for (let i = 10; i < 15; i++) {
      await db.del(`k${i}`)
      model.delete(`k${i}`)
    }
    // Deleting a key that does not exist removes no key.
    await db.del('absent1')
    await db.del('absent2')
    await db.batch([
      { type: 'put', key: 'b0', value: '1' },
      { type: 'put', key: 'b1', value: '1' },
      { type: 'put', key: 'k0', value: 'batched' },
      { type: 'del', key: 'k15' },
      { type: 'del', key: 'absent3' },
      { type: 'put', key: 'b2', value: 'gone in the same batch' },
      { type: 'del', key: 'b2' },
      { type: 'put', key: 'b3', value: 'twice' },
      { type: 'put', key: 'b3', value: 'twice, again' },
    ])
    for (const k of ['b0', 'b1', 'k0', 'b3']) model.set(k, 'x')
    model.delete('k15')
    expect(await expectCount(master)).toBe(model.size)

    // Refused conditional writes change nothing; one that holds adds its key.
    const conflict = { code: 'CONFLICT' }
    await expect(db.put('k1', 'x', { ifAbsent: true })).rejects.toMatchObject(conflict)
    await expect(db.put('c-new', 'x', { ifSeq: 5 })).rejects.toMatchObject(conflict)
    await expect(db.del('absent4', { ifPresent: true })).rejects.toMatchObject(conflict)
    await expect(
      db.batch([
        { type: 'put', key: 'c-batch', value: 'x' },
        { type: 'put', key: 'k1', value: 'x', ifAbsent: true },
      ]),
    ).rejects.toBeInstanceOf(TandemError)
    await db.put('c-ok', 'x', { ifAbsent: true })
    model.set('c-ok', 'x')

    // TTL: a new key and an existing one expire; the master deletes both through its log.
    await db.put('t1', 'x', { ttlMs: 300 })
    await db.put('k2', 'x', { ttlMs: 300 })
    await waitFor(async () => (await statusOf(master)).ttlKeys === 0, { what: 'the master to expire its TTL keys' })
    model.delete('k2')

    // del --prefix through the CLI.
    for (let i = 0; i < 5; i++) await db.put(`p:${i}`, 'x')
    const del = await runCli(['--server', master.address, 'del', '--prefix', 'p:', '--yes'])
    expect(del.code, del.stderr).toBe(0)
    expect(del.stdout.trim()).toBe('5')

    await waitCaughtUp(master, [replica])
    expect(await expectCount(master)).toBe(model.size)
    expect(await expectCount(replica)).toBe(model.size)
    // DBSIZE answers the same kept count.
    const resp = await RawResp.open(respPortOf(master))
    await resp.write(command('DBSIZE'))
    expect(await resp.until((t) => t.endsWith('\r\n'))).toBe(`:${model.size}\r\n`)
    resp.close()

    // The log's retained range: status and /metrics agree, and it moves when the log is trimmed.
    const logOf = async (node: NodeProcess) => {
      const s = await statusOf(node)
      return s.log
    }
    await waitFor(
      async () => {
        const [s, m] = [await statusOf(master), await metrics(master)]
        return (
          s.log.newestSeq === s.seq &&
          m.value('tandem_log_newest_seq') === s.seq &&
          m.value('tandem_log_oldest_seq') === s.log.oldestSeq &&
          m.value('tandem_log_entries') === s.log.entries &&
          m.value('tandem_disk_bytes') === s.diskBytes
        )
      },
      { what: 'status and /metrics to agree on the log range and disk bytes' },
    )
    const before = await logOf(master)
    expect(before.entries).toBe(before.newestSeq - before.oldestSeq + 1)
    expect(before.oldestSeq).toBeGreaterThan(1) // retention 50, well over 50 entries written
    for (let i = 0; i < 100; i++) await put(`more${i}`, 'x'.repeat(1000))
    await waitFor(async () => (await logOf(master)).oldestSeq > before.oldestSeq + 50, {
      what: 'the log to be trimmed past the new entries',
    })
    const after = await logOf(master)
    expect(after.newestSeq).toBe(before.newestSeq + 100)
    expect(after.entries).toBe(after.newestSeq - after.oldestSeq + 1)
    expect(after.entries).toBeGreaterThanOrEqual(50)

    // Bytes on disk: the data dir grew by at least the 100 KB of values just written.
    const diskBefore = (await statusOf(master)).diskBytes as number
    expect(diskBefore).toBeGreaterThan(0)
    for (let i = 0; i < 100; i++) await put(`big${i}`, 'y'.repeat(4000))
    await waitFor(async () => ((await statusOf(master)).diskBytes as number) >= diskBefore + 400_000, {
      what: 'diskBytes to count the 400 KB written',
    })

    // SIGKILL of the master while writes of new keys, overwrites and deletes are in flight.
    const seqAtStart = (await statusOf(master)).seq
    let stop = false
    const loops = Array.from({ length: 8 }, async (_, lane) => {
      for (let i = 0; !stop; i++) {
        const key = `kill${lane}-${i % 30}`
        try {
          if (i % 4 === 3) await db.del(key)
          else
            await db.batch([
              { type: 'put', key, value: `${i}` },
              { type: 'del', key: `kill${lane}-${(i + 7) % 30}` },
            ])
        } catch {
          return
        }
      }
    })
    await waitFor(async () => (await statusOf(master)).seq > seqAtStart + 200, { what: 'writes to be under way' })
    await master.kill('SIGKILL')
    stop = true
    await Promise.all(loops)
    await master.start()
    const kept = await expectCount(master)
    expect(kept).toBeGreaterThan(model.size)
    db = await cluster.client({ servers: [master.address] })
    await waitCaughtUp(master, [replica])
    expect(await expectCount(replica)).toBe(kept)

    // A full sync replaces the replica's data: stopped, it falls behind the master's trimmed log.
    await replica.kill('SIGKILL')
    const replicaSeq = (await statusOf(master)).seq
    for (let i = 0; i < 150; i++) {
      if (i % 3 === 0) await db.del(`more${i % 100}`)
      else await db.put(`late${i}`, 'x')
    }
    await waitFor(async () => (await logOf(master)).oldestSeq > replicaSeq + 1, {
      what: "the master's log to be trimmed past the replica's seq",
    })
    await replica.start()
    await waitCaughtUp(master, [replica])
    expect((await statusOf(replica)).sync.fullSyncs).toBe(1)
    const synced = await expectCount(master)
    expect(await expectCount(replica)).toBe(synced)
    // A restart keeps the count (it is stored with the data, not recounted).
    await replica.stop()
    await replica.start()
    expect(await expectCount(replica)).toBe(synced)
  })
})
