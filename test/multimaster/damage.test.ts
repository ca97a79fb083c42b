import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { PrometheusText } from '../helpers/prometheus.js'
import { waitFor } from '../helpers/wait.js'
import { PeerGroup } from './peers.js'

/**
 * Rule: a damaged record on a peer never stalls its links, and is never
 * passed over in silence. A peer's entries that write a key whose record
 * here fails its checksum are taken, their write to that key left out
 * (what it would resolve against is unreadable), counted in status and
 * /metrics with the key named; the other keys' writes go on. Before, the
 * whole frame failed with CORRUPT, the link reconnected and was sent the
 * same entries again, for ever: nothing after them arrived.
 */
describe('multi-master: a damaged record on a peer', () => {
  let group: PeerGroup
  afterEach(() => group?.teardown())

  it('the link goes on past writes to the damaged key, and counts and names them', async () => {
    group = await new PeerGroup().start({
      size: 2,
      conflict: 'lww',
      // A 4 MiB memtable: the fill below surely leaves tables to damage; only the logs are checked at start.
      args: ['--verify-at-start', 'logs', '--tune', 'writeBufferBytes=4194304'],
    })
    const db0 = await group.client(0)
    const written = new Map<string, Buffer>()
    for (let i = 0; i < 8000; i += 100) {
      const ops = Array.from({ length: 100 }, (_, j) => {
        const key = `k${String(i + j).padStart(5, '0')}`
        const value = randomBytes(1024)
        written.set(key, value)
        return { type: 'put' as const, key, value }
      })
      await db0.batch(ops)
    }
    await group.waitConverged(60_000)

    // One bit of one value flipped in one of node 1's tables, node 1 stopped.
    await group.nodes[1].stop()
    const dir = join(group.dirs[1].path, 'db')
    const tables = readdirSync(dir)
      .filter((f) => f.endsWith('.ldb'))
      .map((f) => ({ file: join(dir, f), bytes: readFileSync(join(dir, f)) }))
    let damaged: string | undefined
    for (const [key, value] of written) {
      const table = tables.find((t) => t.bytes.indexOf(value.subarray(256, 320)) >= 0)
      if (!table) continue
      table.bytes[table.bytes.indexOf(value.subarray(256, 320)) + 20] ^= 0x04
      writeFileSync(table.file, table.bytes)
      damaged = key
      break
    }
    expect(damaged, `a table of ${dir} holding a written value`).toBeDefined()
    await group.nodes[1].start()

    // Node 0 writes the damaged key, then others, in frames of their own and shared.
    await db0.put(damaged as string, 'rewritten on node 0')
    await Promise.all([...Array(50).keys()].map((i) => db0.put(`after:${i}`, String(i))))
    await db0.batch([
      { type: 'put', key: damaged as string, value: 'again' },
      { type: 'put', key: 'after:batch', value: 'b' },
    ])
    const db1 = await group.client(1)
    await waitFor(async () => (await db1.get('after:batch')) === 'b', {
      what: 'node 1 to get the writes after the damaged key’s',
      timeoutMs: 60_000,
    })
    expect(await db1.get('after:49')).toBe('49')

    const multi = (await group.status(1)).multi!
    expect(multi.damaged.skipped).toBeGreaterThanOrEqual(2)
    expect(multi.damaged.keys).toContain(damaged)
    const metrics = new PrometheusText(await (await fetch(`http://${group.nodes[1].address}/metrics`)).text())
    expect(metrics.value('tandem_damaged_skipped_writes_total')).toBe(multi.damaged.skipped)
    const warning = group.nodes[1].logs.find(
      (l) => l.msg === 'a write from a peer was not applied: its key is damaged here',
    )
    expect(warning?.key).toBe(damaged)
    // The key stays refused on node 1, never served from bytes its disk damaged.
    await expect(db1.get(damaged as string)).rejects.toMatchObject({ code: 'CORRUPT' })
  })
})
