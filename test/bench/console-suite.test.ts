import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { runNodeBin } from '../helpers/cli.js'
import { REPO_ROOT } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'

// tandem-bench's console suite (issue 18) at a tiny size: it checks the
// shape of the report, that the console streams were live in every window
// and the watcher of the master without them idle; never how fast anything
// is.

const BENCH_BIN = join(REPO_ROOT, 'packages/bench/bin/tandem-bench.js')

describe('tandem-bench console suite', () => {
  const dir = tempDir('tandem-bench-console-')
  afterAll(() => dir.remove())

  it('measures put throughput with N console streams open on one of two nodes under the same load in every window, the two taking turns', async () => {
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
      240_000,
    )
    expect(run.code, run.stderr).toBe(0)
    const report = JSON.parse(readFileSync(json, 'utf8'))
    // Two nodes under the same load at once, one scenario each; the consoles moved from one to the other inside it.
    expect(report.scenarios.map((s: { workload: string }) => s.workload)).toEqual(['console', 'console'])
    for (const node of report.scenarios) {
      expect(node.consoles).toBe(3)
      expect(node.replicas).toBe(1)
      expect(node.targets.tandem.throughput).toBeGreaterThan(0)
      // --pairs 2: five windows, the consoles open on node 1, 2, 1, 2, 1 in turn.
      expect(node.consoleTargets).toEqual([1, 2, 1, 2, 1])
      expect(node.passes).toHaveLength(5)
      // --pin masters by default: both masters on CPU 0, their replicas on CPU 1 (this machine has 2 CPUs and taskset).
      expect(node.consolePinning).toBe('both masters pinned to CPU 0 and their replicas to CPU 1')
    }
    expect(report.checks.map((c: { id: string }) => c.id)).toEqual([
      'console.putThroughputChange',
      'console.putThroughputChangeRaw',
      'console.cpuPerPutChange',
      'console.idleCpuOne',
      'console.idleCpuMany',
      'console.cpuShare',
    ])
    const [check, raw, cpu, one, many, share] = report.checks
    expect(check.unit).toBe('%')
    expect(check.target).toBe('< 2')
    expect(check.measured).toBeGreaterThanOrEqual(0)
    // Each window on node 2 against the windows on node 1 beside it: two estimates; each node's own figure beside.
    expect(check.name).toContain('2 windows of 1 s on node 2')
    expect(check.name).toContain("each node's own change (no reference): node 1 ")
    expect(check.name).toContain('2 pairs), node 2 ')
    // Too few pairs for an interval, so the figure cannot be met whatever it measures.
    expect(check.name).toContain('too few pairs for a 95% interval')
    expect(check.met).toBe(false)
    // Each of the 3 streams received views in every window ...
    const views = Number(/each stream got at least (\d+) views/.exec(check.name)?.[1])
    expect(views).toBeGreaterThanOrEqual(1)
    // ... and the master without them never ran its watcher (no console open, no view encoded).
    expect(check.name).toContain('the master without the consoles encoded 0 views')
    expect(raw.unit).toBe('%')
    expect(raw.name).toContain('node 1 median ')
    expect(raw.name).toContain('node 2 median ')
    expect(cpu.unit).toBe('%')
    expect(typeof cpu.measured).toBe('number')
    // The idle CPU figures are read from /proc for 1 and for 3 consoles (their values are the quiet run's business).
    for (const c of [one, many]) {
      expect(c.unit).toBe('ms/s')
      expect(typeof c.measured).toBe('number')
    }
    expect(many.name).toContain('3 consoles open')
    expect(share.unit).toBe('%')
  }, 250_000)
})
