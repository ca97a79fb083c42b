import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { TandemClient } from '@tandem/client'
import {
  SNAPSHOT_END,
  SNAPSHOT_HEADER,
  SnapshotReader,
  snapshotDataFrame,
  snapshotJsonFrame,
  snapshotPreamble,
} from '@tandem/protocol'
import { afterAll, describe, expect, it } from 'vitest'
import { scanAll, statusOf } from '../failover/group.js'
import { runCli, runNodeBin } from '../helpers/cli.js'
import { type NodeProcess, SERVER_BIN, startNode } from '../helpers/node-process.js'
import { readOffline, typed } from '../helpers/offline-store.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'

/** The data a log's entries up to `seq` leave, key -> comparable value. */
function stateAt(entries: { seq: number; ops: unknown[][] }[], seq: number): Map<string, string> {
  const state = new Map<string, string>()
  for (const entry of entries) {
    if (entry.seq > seq) break
    for (const op of entry.ops) {
      if (op[0] === 0) state.set(op[1] as string, typed(op[2] as string | Uint8Array)!)
      else state.delete(op[1] as string)
    }
  }
  return state
}

const comparable = (data: Map<string, string | Uint8Array>) =>
  [...data].map(([k, v]) => [k, typed(v)] as const).sort((a, b) => (a[0] < b[0] ? -1 : 1))

describe('backup (tandem snapshot save) and restore (tandem-server --restore)', () => {
  const dir = tempDir('tandem-backup-')
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

  it('takes a consistent snapshot under write load; a node restored from it holds exactly the data at its seq, and catches up by partial resync', async () => {
    const source = await start('source')
    // (A loop ends at its first failure: no liveness drop while the node is busy with the backup.)
    const db = await TandemClient.connect({ servers: [source.address], livenessTimeoutMs: 10_000 })
    // Puts, overwrites, deletes and batches over a small keyspace, from 8 loops, while the backup runs.
    let stop = false
    let written = 0
    const loops = Array.from({ length: 8 }, async (_, l) => {
      for (let n = 0; !stop; n++) {
        const key = `k${(n * 7 + l) % 500}`
        if (n % 5 === 4) await db.del(key)
        else if (n % 7 === 6)
          await db.batch([
            { type: 'put', key, value: `b${l}:${n}` },
            { type: 'put', key: `${key}:bin`, value: new Uint8Array([l, n & 255]) },
          ])
        else await db.put(key, `v${l}:${n}`)
        written++
      }
    })
    await waitFor(() => written >= 2000, { what: '2000 writes before the backup' })
    const file = join(dir.path, 'backup.snap')
    const saved = await runCli(['--server', source.address, 'snapshot', 'save', file, '--json'])
    expect(saved.stderr).toBe('')
    expect(saved.code).toBe(0)
    const summary = JSON.parse(saved.stdout) as { seq: number; records: number }
    await waitFor(() => written >= 4000, { what: '2000 more writes after the backup' })
    stop = true
    await Promise.all(loops)
    const head = (await statusOf(source)).seq
    expect(summary.seq).toBeGreaterThan(0)
    expect(summary.seq).toBeLessThan(head)

    // A replica restored from the file resumes from the snapshot's seq by partial resync and converges.
    const follower = await start('follower', ['--restore', file, '--replicaof', source.address])
    await waitFor(async () => (await statusOf(follower)).seq === head, { what: 'the restored replica to catch up' })
    const followerStatus = await statusOf(follower)
    expect(followerStatus.sync.partialSyncs).toBeGreaterThanOrEqual(1)
    expect(followerStatus.sync.fullSyncs).toBe(0)
    expect(comparable(await scanAll(follower.address))).toEqual(comparable(await scanAll(source.address)))
    await db.close()

    // A node restored from the file alone holds the source's data at the snapshot's seq, exactly.
    const restored = await start('restored', ['--restore', file])
    const restoredStatus = await statusOf(restored)
    expect(restoredStatus.seq).toBe(summary.seq)
    const data = await scanAll(restored.address)
    expect(data.size).toBe(summary.records)
    await source.stop()
    const log = await readOffline(source.dataDir)
    expect(log.entries[0].seq).toBe(1)
    const expected = [...stateAt(log.entries as never, summary.seq)].sort((a, b) => (a[0] < b[0] ? -1 : 1))
    expect(comparable(data)).toEqual(expected)
    // And that state is not the source's final one: the writes after the backup are not in it.
    expect(expected).not.toEqual([...stateAt(log.entries as never, head)].sort((a, b) => (a[0] < b[0] ? -1 : 1)))

    // Restarted with the same --restore (a service manager keeps its flags), it keeps what it holds.
    await restored.stop()
    await restored.start()
    expect((await statusOf(restored)).seq).toBe(summary.seq)
  })

  it('refuses a damaged, cut short or foreign snapshot file, and leaves the data dir empty', async () => {
    const source = await start('source2')
    const db = await TandemClient.connect({ servers: [source.address] })
    for (let i = 0; i < 300; i++) await db.put(`key${i}`, 'x'.repeat(100 + i))
    await db.close()
    const file = join(dir.path, 'good.snap')
    expect((await runCli(['--server', source.address, 'snapshot', 'save', file])).code).toBe(0)
    expect((await runCli(['snapshot', 'verify', file])).stdout).toMatch(/^OK seq 300, 300 keys/)

    const bytes = readFileSync(file)
    const flipped = Buffer.from(bytes)
    flipped[Math.floor(bytes.length / 2)] ^= 0x40
    const cases: [string, Buffer, RegExp][] = [
      ['not-utf8.snap', withKeyNotUtf8(bytes), /DATA frame 2 \(at byte \d+\) holds a key that is not UTF-8/],
      ['flipped.snap', flipped, /fails its checksum/],
      ['short.snap', bytes.subarray(0, bytes.length - 10), /cut short/],
      ['foreign.snap', Buffer.from('{"not": "a snapshot"}\n'.repeat(20)), /not a tandem snapshot/],
      ['newer.snap', Buffer.concat([bytes.subarray(0, 8), Buffer.from([0, 9]), bytes.subarray(10)]), /version 9/],
    ]
    for (const [name, content, why] of cases) {
      const path = join(dir.path, name)
      writeFileSync(path, content)
      const verify = await runCli(['snapshot', 'verify', path])
      expect(verify.code, name).toBe(2)
      expect(verify.stderr, name).toMatch(/^error CORRUPT: /)
      expect(verify.stderr, name).toMatch(why)
      const dataDir = join(dir.path, `restore-${name}`)
      const run = await runNodeBin(SERVER_BIN, ['--port', '0', '--data-dir', dataDir, '--restore', path])
      expect(run.code, name).toBe(1)
      expect(run.stderr, name).toMatch(/error CORRUPT: snapshot .* /)
      expect(run.stderr, name).toMatch(why)
      // verify says what --restore says.
      expect(verify.stderr.match(why)?.[0], name).toBe(run.stderr.match(why)?.[0])
      // Whatever was written before the damage was found is not served: the data dir starts empty.
      const after = await start(`restore-${name}`)
      expect((await statusOf(after)).seq, name).toBe(0)
      expect((await scanAll(after.address)).size, name).toBe(0)
      await after.stop()
    }
    // A data dir that holds data is not overwritten by --restore.
    const busy = await runNodeBin(SERVER_BIN, ['--port', '0', '--data-dir', source.dataDir, '--restore', file])
    expect(busy.code).toBe(1)
  })
})

/**
 * The snapshot file `bytes` with its first key's second byte made 0xff (not
 * UTF-8), every frame's checksum and the END frame still right: what no node
 * writes, and a restoring node refuses.
 */
function withKeyNotUtf8(bytes: Buffer): Buffer {
  const items = new SnapshotReader().push(bytes)
  const frames: Buffer[] = [snapshotPreamble()]
  let changed = false
  for (const item of items) {
    if (item.type === 'header') frames.push(snapshotJsonFrame(SNAPSHOT_HEADER, item.header))
    else if (item.type === 'end') frames.push(snapshotJsonFrame(SNAPSHOT_END, item.end))
    else {
      const chunk = Buffer.from(item.chunk)
      if (!changed) {
        // The chunk starts with its first key's length, then the key.
        expect(chunk.readUInt32BE(0)).toBeGreaterThan(1)
        chunk[5] = 0xff
        changed = true
      }
      frames.push(snapshotDataFrame(chunk, item.count))
    }
  }
  expect(changed).toBe(true)
  return Buffer.concat(frames)
}
