import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { NodeProcess } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'
import { Cluster } from './cluster.js'

/** A node's key-trace lines (util/key-trace.ts), once it has written any. */
function traceOf(dir: string, node: NodeProcess): string[] {
  const file = join(dir, `keys-${node.pid}.txt`)
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []
}

/** The G lines' tokens that start with `tag`, with their line's times. */
function groups(lines: string[]) {
  return lines
    .filter((l) => l.startsWith('G '))
    .map((l) => {
      const p = l.split(' ')
      return {
        started: Number(p[1]),
        handed: Number(p[2]),
        written: Number(p[3]),
        local: p.filter((t) => t.startsWith('L')).map((t) => Number(t.slice(1))),
        remote: p
          .filter((t) => t.startsWith('R'))
          .map((t) => {
            const [n, received, queued] = t.slice(1).split(':').map(Number)
            return { n, received, queued }
          }),
        seqs: p.filter((t) => t.startsWith('Q')).map((t) => t.slice(1).split(':').map(Number) as [number, number])[0],
      }
    })
}

describe('key trace of a replicated write (TANDEM_KEY_TRACE_DIR, for the lag anatomy)', () => {
  const cluster = new Cluster()
  const trace = tempDir('tandem-key-trace-')
  afterAll(async () => {
    await cluster.teardown()
    trace.remove()
  })

  it("notes the master's group with its seqs, the frame that sent them, and the replica's group with each traced key's arrival", async () => {
    const env = { TANDEM_KEY_TRACE_DIR: trace.path, TANDEM_KEY_TRACE_PREFIX: 'traced:' }
    const master = new NodeProcess(cluster.dir(), ['--sync', 'always'], env)
    cluster.nodes.push(master)
    await master.start()
    const replica = new NodeProcess(cluster.dir(), ['--sync', 'always', '--replicaof', master.address], env)
    cluster.nodes.push(replica)
    await replica.start()
    const db = await cluster.client({ servers: [master.address], direct: true })
    const onReplica = await cluster.client({ servers: [replica.address], direct: true })
    await db.batch([
      { type: 'put', key: 'traced:7', value: 'a' },
      { type: 'put', key: 'other:8', value: 'b' },
      { type: 'put', key: 'traced:9', value: 'c' },
    ])
    await waitFor(async () => (await onReplica.get('traced:9')) === 'c', {
      what: 'the replica to apply the batch',
      timeoutMs: 10_000,
    })
    // Each node writes its lines every second.
    await waitFor(
      () =>
        groups(traceOf(trace.path, replica)).some((g) => g.remote.length > 0) &&
        traceOf(trace.path, master).some((l) => l.startsWith('F ')),
      { what: 'both nodes to write their traces', timeoutMs: 10_000 },
    )
    const written = groups(traceOf(trace.path, master)).find((g) => g.local.length > 0)
    expect(written?.local).toEqual([7, 9])
    expect(written?.remote).toEqual([])
    const [first, last] = written?.seqs ?? [0, 0]
    expect(last).toBeGreaterThanOrEqual(first)
    // The frame holding the group's entries left the master once the group was written.
    const frames = traceOf(trace.path, master)
      .filter((l) => l.startsWith('F '))
      .map((l) => l.split(' ').slice(1).map(Number))
    const frame = frames.find(([, from, to]) => from <= last && last <= to)
    expect(frame).toBeDefined()
    expect(frame?.[0]).toBeGreaterThanOrEqual(written?.written ?? Number.POSITIVE_INFINITY)
    // The replica's group: the traced keys from the frame, read off the socket, then queued, then written.
    // (Times of two processes are not compared: each has its own performance.timeOrigin.)
    const applied = groups(traceOf(trace.path, replica)).find((g) => g.remote.length > 0)
    expect(applied?.local).toEqual([])
    expect(applied?.remote.map((r) => r.n)).toEqual([7, 9])
    expect(applied?.seqs).toEqual([first, last])
    for (const r of applied?.remote ?? []) {
      expect(r.queued).toBeGreaterThanOrEqual(r.received)
      expect(applied?.handed).toBeGreaterThanOrEqual(r.queued)
    }
    expect(applied?.written).toBeGreaterThanOrEqual(applied?.handed ?? Number.POSITIVE_INFINITY)
  })
})
