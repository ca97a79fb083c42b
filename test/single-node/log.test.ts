import { randomBytes } from 'node:crypto'
import { type BatchOp, TandemClient } from '@tandem/client'
import type { LogEntry } from '@tandem/server'
import { afterAll, describe, expect, it } from 'vitest'
import { startNode } from '../helpers/node-process.js'
import { expectLogMatchesData, readOffline, replay, typed } from '../helpers/offline-store.js'
import { tempDir } from '../helpers/temp-dir.js'

interface Write {
  loop: number
  ops: BatchOp[]
  seq: number
}

/** Kinds of write a loop issues, over a small shared key space so that writers collide. */
function randomWrite(keys: number): BatchOp[] {
  const key = () => `k${String(Math.floor(Math.random() * keys)).padStart(3, '0')}`
  const value = () => (Math.random() < 0.5 ? randomBytes(4).toString('hex') : new Uint8Array(randomBytes(6)))
  const r = Math.random()
  if (r < 0.5) return [{ type: 'put', key: key(), value: value() }]
  if (r < 0.7) return [{ type: 'del', key: key() }]
  return Array.from({ length: 2 + Math.floor(Math.random() * 4) }, () =>
    Math.random() < 0.75 ? { type: 'put', key: key(), value: value() } : { type: 'del', key: key() },
  )
}

/** A write's ops as the log should carry them, values made comparable by `typed`. */
function entryOps(ops: BatchOp[]): unknown[] {
  return ops.map((op) => (op.type === 'put' ? [0, op.key, typed(op.value)] : [1, op.key]))
}

function logOps(ops: LogEntry['ops']): unknown[] {
  return ops.map((op) => (op[0] === 0 ? [0, op[1], typed(op[2])] : [1, op[1]]))
}

describe('the write log', () => {
  const dir = tempDir()
  afterAll(() => dir.remove())

  /**
   * Rules: the log holds one entry per acknowledged write, with consecutive
   * seqs from 1 in commit order (a write issued after another was
   * acknowledged has a larger seq, and HLCs increase with seq); each
   * acknowledged seq is the entry carrying exactly that write's ops; and
   * replaying the log in seq order reproduces the stored data exactly.
   */
  it('holds consecutive seqs in commit order, and replaying it reproduces the data exactly', async () => {
    const node = await startNode(dir.path)
    const clients = await Promise.all(
      Array.from({ length: 16 }, () => TandemClient.connect({ servers: [node.address] })),
    )
    const loopsPerClient = 4
    const writesPerLoop = 100
    const writes: Write[] = []
    // 64 loops on 16 sockets: concurrent writes from one client share a
    // frame, and writes from all of them share group commits.
    await Promise.all(
      clients.flatMap((db, c) =>
        Array.from({ length: loopsPerClient }, async (_, l) => {
          const loop = c * loopsPerClient + l
          for (let n = 0; n < writesPerLoop; n++) {
            const ops = randomWrite(300)
            const { seq } =
              ops.length > 1
                ? await db.batch(ops)
                : ops[0].type === 'put'
                  ? await db.put(ops[0].key, ops[0].value)
                  : await db.del(ops[0].key)
            writes.push({ loop, ops, seq })
          }
        }),
      ),
    )
    const status = await clients[0].status()
    const viaApi = new Map<string, string>()
    for await (const [key, value] of clients[0].scan({})) viaApi.set(key, typed(value)!)
    await Promise.all(clients.map((c) => c.close()))
    await node.stop()
    expect(node.exitCode).toBe(0)

    const total = loopsPerClient * clients.length * writesPerLoop
    expect(writes.length).toBe(total)
    // The writes really were concurrent: some group commit held several.
    expect((status.commit as { largestGroup: number }).largestGroup).toBeGreaterThan(1)

    const offline = await readOffline(dir.path)
    expect(offline.lastSeq).toBe(total)
    expect(status.seq).toBe(total)
    expectLogMatchesData(offline)

    // Every acknowledged seq is distinct and names the entry with exactly that write.
    expect(new Set(writes.map((w) => w.seq)).size).toBe(total)
    const bySeq = new Map(offline.entries.map((e) => [e.seq, e]))
    for (const w of writes) {
      const entry = bySeq.get(w.seq)!
      expect(logOps(entry.ops)).toEqual(entryOps(w.ops))
      expect(entry.origin).toBe(offline.nodeId)
      expect(entry.originSeq).toBe(entry.seq)
      expect(entry.epoch).toBe(status.epoch)
    }
    // Commit order: each loop waited for one write before the next, so its seqs increase.
    for (let loop = 0; loop < loopsPerClient * clients.length; loop++) {
      const seqs = writes.filter((w) => w.loop === loop).map((w) => w.seq)
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b))
    }
    // What the API served before the stop is what the log replays to.
    expect([...replay(offline.entries)].sort()).toEqual([...viaApi].sort())
  })
})
