import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { runNodeBin } from '../helpers/cli.js'
import { REPO_ROOT } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'

// tandem-bench's console suite (issue 18) at a tiny size: it checks the
// shape of the report, that the console streams were live in the on
// windows and the node's watcher idle in the off ones; never how fast
// anything is.

const BENCH_BIN = join(REPO_ROOT, 'packages/bench/bin/tandem-bench.js')

describe('tandem-bench console suite', () => {
  const dir = tempDir('tandem-bench-console-')
  afterAll(() => dir.remove())

  it('measures put throughput with N console streams opened and closed in windows of one load', async () => {
    const json = join(dir.path, 'console.json')
    const run = await runNodeBin(
      BENCH_BIN,
      [
        'run',
        '--workload',
        'console',
        '--consoles',
        '3',
        '--clients',
        '2',
        '--pipeline',
        '2',
        '--duration',
        '1',
        '--pairs',
        '2',
        '--window',
        '1',
        '--warmup',
        '0',
        '--progress',
        'none',
        '--json',
        json,
      ],
      {},
      110_000,
    )
    expect(run.code, run.stderr).toBe(0)
    const report = JSON.parse(readFileSync(json, 'utf8'))
    // One load throughout: one scenario, its consoles switched on and off inside it.
    expect(report.scenarios.map((s: { workload: string }) => s.workload)).toEqual(['console'])
    const [toggled] = report.scenarios
    expect(toggled.consoles).toBe(3)
    expect(toggled.replicas).toBe(1)
    expect(toggled.targets.tandem.throughput).toBeGreaterThan(0)
    expect(report.checks.map((c: { id: string }) => c.id)).toEqual([
      'console.putThroughputChange',
      'console.cpuPerPutChange',
      'console.idleCpuOne',
      'console.idleCpuMany',
      'console.cpuShare',
    ])
    const [check, cpu, one, many, share] = report.checks
    expect(check.unit).toBe('%')
    expect(check.target).toBe('< 2')
    expect(check.measured).toBeGreaterThanOrEqual(0)
    // --pairs 2: two on windows, each against the off windows beside it.
    expect(check.name).toContain('2 on windows of 1 s')
    // Too few pairs for an interval, so the figure cannot be met whatever it measures.
    expect(check.name).toContain('too few pairs for a 95% interval')
    expect(check.met).toBe(false)
    // Each of the 3 streams received views in every on window ...
    const views = Number(/each stream got at least (\d+) views/.exec(check.name)?.[1])
    expect(views).toBeGreaterThanOrEqual(1)
    // ... and the master's watcher stood still in every off window (no console open, no view encoded).
    expect(check.name).toContain('the watcher encoded 0 views in the off windows')
    expect(cpu.unit).toBe('%')
    expect(typeof cpu.measured).toBe('number')
    // The idle CPU figures are read from /proc for 1 and for 3 consoles (their values are the quiet run's business).
    for (const c of [one, many]) {
      expect(c.unit).toBe('ms/s')
      expect(typeof c.measured).toBe('number')
    }
    expect(many.name).toContain('3 consoles open')
    expect(share.unit).toBe('%')
  })
})
