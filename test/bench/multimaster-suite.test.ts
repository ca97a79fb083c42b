import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { runNodeBin } from '../helpers/cli.js'
import { REPO_ROOT } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'

// tandem-bench's multimaster suite (issue 11) at a tiny size: it checks the
// shape of the report (every figure the issue asks for, by id), that the
// kill round found the survivor and the partition healed, and that the
// conflict chart is drawn; never how fast anything is.

const BENCH_BIN = join(REPO_ROOT, 'packages/bench/bin/tandem-bench.js')

describe('tandem-bench multimaster suite', () => {
  const dir = tempDir('tandem-bench-mm-')
  afterAll(() => dir.remove())

  it('measures throughput against replicas, peer lag, convergence, conflict rate and a kill, in one run', async () => {
    const json = join(dir.path, 'multimaster.json')
    const chart = join(dir.path, 'conflicts.svg')
    const run = await runNodeBin(
      BENCH_BIN,
      [
        'run',
        '--workload',
        'multimaster',
        '--master-counts',
        '2',
        '--link-latencies',
        '0,5',
        '--partition-writes',
        '300',
        '--rounds',
        '1',
        '--clients',
        '2',
        '--pipeline',
        '2',
        '--duration',
        '1.5',
        '--warmup',
        '0',
        '--progress',
        'none',
        '--json',
        json,
        '--chart',
        chart,
      ],
      {},
      300_000,
    )
    expect(run.code, run.stderr).toBe(0)
    const report = JSON.parse(readFileSync(json, 'utf8'))
    const all: string[] = report.checks.map((c: { id: string }) => c.id)
    const stage = 'multimaster.peerLagStage.'
    const ids = all.filter((id) => !id.startsWith(stage))
    expect(ids).toEqual([
      'multimaster.duplicates.2',
      'multimaster.throughput.2',
      'multimaster.peerLagP99',
      'multimaster.convergenceMs',
      'multimaster.conflicts.2.0',
      'multimaster.conflicts.2.5',
      'multimaster.failover.firstWriteMs',
      'multimaster.failover.lost',
    ])
    // Where the peer lag went, from the servers' stage timings: both nodes wrote groups and applied the other's frames.
    expect(all.filter((id) => id.startsWith(stage))).toEqual(
      expect.arrayContaining([`${stage}peer_lag`, `${stage}remote_queue`, `${stage}remote_commit`, `${stage}write`]),
    )
    const check = (id: string) => report.checks.find((c: { id: string }) => c.id === id)
    expect(check('multimaster.throughput.2').measured).toBeGreaterThan(0)
    // A share of what the masters received: a percentage.
    expect(check('multimaster.duplicates.2').measured).toBeGreaterThanOrEqual(0)
    expect(check('multimaster.duplicates.2').measured).toBeLessThanOrEqual(100)
    // The partition healed and the nodes converged; the killed master's clients found the survivor.
    expect(check('multimaster.convergenceMs').measured).toBeGreaterThan(0)
    expect(check('multimaster.failover.firstWriteMs').measured).toBeGreaterThan(0)
    expect(check('multimaster.failover.lost').measured).toBeGreaterThanOrEqual(0)
    const points = report.scenarios.flatMap((s: { conflicts?: unknown[] }) => s.conflicts ?? [])
    expect(points.map((p: { masters: number; latencyMs: number }) => [p.masters, p.latencyMs])).toEqual([
      [2, 0],
      [2, 5],
    ])
    const svg = readFileSync(chart, 'utf8')
    expect(svg).toContain('<svg')
    expect(svg).toContain('2 masters')
  })
})
