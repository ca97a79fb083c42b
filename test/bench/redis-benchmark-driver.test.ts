import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseRedisBenchmark } from '@tandem/bench'
import { afterAll, describe, expect, it } from 'vitest'
import { runNodeBin } from '../helpers/cli.js'
import { REPO_ROOT } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'

// `tandem-bench compare --driver redis-benchmark` end to end, briefly: it
// runs and reports both targets with sane figures. It never asserts speed.

const BENCH_BIN = join(REPO_ROOT, 'packages/bench/bin/tandem-bench.js')
const has = (cmd: string) => spawnSync(cmd, ['--version']).status === 0

describe('redis-benchmark output', () => {
  it('is read into throughput, count, time and percentiles', () => {
    const text = [
      '====== SET ======',
      '  2000 requests completed in 0.25 seconds',
      '  5 parallel clients',
      '',
      'Latency by percentile distribution:',
      '0.000% <= 0.103 milliseconds (cumulative count 1)',
      '50.000% <= 0.455 milliseconds (cumulative count 1000)',
      '90.625% <= 0.911 milliseconds (cumulative count 1813)',
      '99.219% <= 1.503 milliseconds (cumulative count 1985)',
      '99.902% <= 2.007 milliseconds (cumulative count 1999)',
      '100.000% <= 2.103 milliseconds (cumulative count 2000)',
      '',
      'Cumulative distribution of latencies:',
      '50.000% <= 0.503 milliseconds (cumulative count 1000)',
      '',
      'Summary:',
      '  throughput summary: 8000.00 requests per second',
      '  latency summary (msec):',
      '          avg       min       p50       p95       p99       max',
      '        0.500     0.100     0.455     1.200     1.500     2.103',
    ].join('\n')
    expect(parseRedisBenchmark(text)).toEqual({
      throughput: 8000,
      ops: 2000,
      elapsedS: 0.25,
      latencyMs: { p50: 0.455, p90: 0.911, p99: 1.503, p999: 2.007, max: 2.103, mean: 0.5 },
    })
  })
})

describe.skipIf(!has('redis-benchmark') || !has('redis-server'))('tandem-bench --driver redis-benchmark', () => {
  const dir = tempDir('tandem-bench-rb-')
  afterAll(() => dir.remove())

  it('compare runs the same redis-benchmark against tandem and Redis and reports both', async () => {
    const json = join(dir.path, 'rb.json')
    const args = ['compare', '--driver', 'redis-benchmark', '--workload', 'put,get', '--clients', '5']
    args.push('--pipeline', '1,4', '--requests', '2000', '--keys', '500', '--warmup', '0', '--sync', 'periodic')
    args.push('--progress', 'plain', '--json', json)
    const r = await runNodeBin(BENCH_BIN, args, {}, 120_000)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/put 5x1: tandem\/redis throughput/)
    const report = JSON.parse(readFileSync(json, 'utf8'))
    expect(report.settings.driver).toBe('redis-benchmark')
    expect(report.scenarios.map((s: { name: string }) => s.name)).toEqual(['put 5x1', 'put 5x4', 'get 5x1', 'get 5x4'])
    for (const s of report.scenarios) {
      for (const target of ['tandem', 'redis']) {
        const t = s.targets[target]
        expect(t.ops).toBe(2000)
        expect(t.throughput).toBeGreaterThan(0)
        expect(t.latencyMs.p50).toBeLessThanOrEqual(t.latencyMs.p999)
        expect(t.servers[0].pid).toBeGreaterThan(0)
      }
      expect(s.ratios.throughput).toBeGreaterThan(0)
    }
    // Issue 15's figures: the throughput ratio per scenario, a target at -P 1 only here (-P 4 has none).
    expect(report.checks.map((c: { id: string }) => c.id)).toEqual([
      'resp.put.5x1',
      'resp.put.5x4',
      'resp.get.5x1',
      'resp.get.5x4',
    ])
    for (const c of report.checks) {
      const s = report.scenarios.find((x: { name: string }) => c.id.endsWith(x.name.replace(' ', '.')))
      expect(c.measured).toBe(s.ratios.throughput)
      expect(c.target).toBe(c.id.endsWith('x1') ? '>= 0.8' : '-')
      expect(c.met).toBe(c.id.endsWith('x1') ? c.measured >= 0.8 : null)
    }
    // The same flags went to both: the progress lines name each command.
    const lines = r.stderr.split('\n').filter((l) => l.includes('(redis-benchmark -h'))
    const flags = (l: string) => l.slice(l.indexOf('-t ')).replace(/\)$/, '')
    expect(lines.length).toBe(8)
    for (let i = 0; i < lines.length; i += 2) expect(flags(lines[i])).toBe(flags(lines[i + 1]))
  })
})
