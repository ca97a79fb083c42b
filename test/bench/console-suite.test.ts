import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { runNodeBin } from '../helpers/cli.js'
import { REPO_ROOT } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'

// tandem-bench's console suite (issue 18) at a tiny size: it checks the
// shape of the report and that the console streams were live while the
// second side ran; never how fast anything is.

const BENCH_BIN = join(REPO_ROOT, 'packages/bench/bin/tandem-bench.js')

describe('tandem-bench console suite', () => {
  const dir = tempDir('tandem-bench-console-')
  afterAll(() => dir.remove())

  it('measures put throughput with none and with N console streams open, in the same run', async () => {
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
        '2.5',
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
    expect(report.scenarios.map((s: { workload: string }) => s.workload)).toEqual(['console', 'console'])
    const [none, some] = report.scenarios
    expect([none.consoles, some.consoles]).toEqual([0, 3])
    expect([none.replicas, some.replicas]).toEqual([1, 1])
    for (const s of [none, some]) expect(s.targets.tandem.throughput).toBeGreaterThan(0)
    expect(report.checks.map((c: { id: string }) => c.id)).toEqual([
      'console.putThroughputChange',
      'console.idleCpuOne',
      'console.idleCpuMany',
      'console.cpuShare',
    ])
    const [check, one, many, share] = report.checks
    expect(check.id).toBe('console.putThroughputChange')
    expect(check.unit).toBe('%')
    expect(check.target).toBe('< 2')
    expect(check.measured).toBeGreaterThanOrEqual(0)
    // Each of the 3 streams received views while the second side ran.
    const views = Number(/each stream got at least (\d+) views/.exec(check.name)?.[1])
    expect(views).toBeGreaterThanOrEqual(1)
    // The idle CPU figures are read from /proc for 1 and for 3 consoles (their values are the quiet run's business).
    for (const c of [one, many]) {
      expect(c.unit).toBe('ms/s')
      expect(typeof c.measured).toBe('number')
    }
    expect(many.name).toContain('3 consoles open')
    expect(share.unit).toBe('%')
  })
})
