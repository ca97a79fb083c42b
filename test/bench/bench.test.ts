import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { tempDir } from '../helpers/temp-dir.js'
import { bench, benchReport, type Json } from './run-bench.js'

// These tests check that tandem-bench runs every workload end to end and
// reports every figure with a sane value. They never assert how fast
// anything is: timings belong in BENCHMARKS.md, not in tests.

const WORKLOADS = ['put', 'get', 'a', 'b', 'c']
const hasRedis = spawnSync('redis-server', ['--version']).status === 0

function expectSaneTarget(t: Json, target: string): void {
  expect(t.target).toBe(target)
  expect(t.throughput).toBeGreaterThan(0)
  expect(t.ops).toBeGreaterThan(0)
  expect(t.errors).toBe(0)
  expect(t.durationS).toBeGreaterThan(0)
  const l = t.latencyMs
  for (const k of ['p50', 'p90', 'p99', 'p999', 'max', 'mean']) expect(l[k]).toBeGreaterThan(0)
  expect(l.p50).toBeLessThanOrEqual(l.p90)
  expect(l.p90).toBeLessThanOrEqual(l.p99)
  expect(l.p99).toBeLessThanOrEqual(l.p999)
  expect(l.p999).toBeLessThanOrEqual(l.max)
  expect(t.harness.cpuCores).toBeGreaterThanOrEqual(0)
  expect(t.harness.threads).toBeGreaterThanOrEqual(1)
  expect(typeof t.harness.cpuBound).toBe('boolean')
  expect(t.servers.length).toBeGreaterThanOrEqual(1)
  for (const s of t.servers) {
    expect(s.pid).toBeGreaterThan(0)
    expect(s.peakRssMB).toBeGreaterThan(0)
    expect(s.cpuCores).toBeGreaterThanOrEqual(0)
  }
  expect(t).toHaveProperty('replicationLag')
  expect(t).toHaveProperty('failover')
}

function expectMachine(m: Json, redis: boolean): void {
  expect(m.cpuModel).toEqual(expect.any(String))
  expect(m.cores).toBeGreaterThan(0)
  expect(m.memoryMB).toBeGreaterThan(0)
  expect(m.nodeVersion).toBe(process.version)
  if (redis) expect(m.redisVersion).toMatch(/^\d+\.\d+/)
}

describe('tandem-bench', () => {
  const dir = tempDir('tandem-bench-test-')
  afterAll(() => dir.remove())
  const common = '--duration 1 --warmup 0 --keys 2000 --progress plain'

  it('runs every workload against a local tandem and writes JSON, a chart and a markdown section', async () => {
    const json = join(dir.path, 'tandem.json')
    const chart = join(dir.path, 'tandem.svg')
    const { run, report } = await benchReport(
      json,
      `run --workload ${WORKLOADS.join(',')} --clients 4 --pipeline 4 ${common} --markdown`,
      ['--chart', chart],
    )
    expect(report.command).toBe('run')
    expectMachine(report.machine, false)
    expect(report.scenarios.map((s: Json) => s.workload)).toEqual(WORKLOADS)
    for (const s of report.scenarios) {
      expectSaneTarget(s.targets.tandem, 'tandem')
      expect(s.targets.redis).toBeUndefined()
      // Pure-read workloads commit nothing; the others report their group size.
      if (s.workload === 'get' || s.workload === 'c') expect(s.targets.tandem.commit.writes).toBe(0)
      else expect(s.targets.tandem.commit.avgGroupSize).toBeGreaterThan(0)
    }
    expect(run.stdout).toContain('p99.9 ms')
    expect(readFileSync(chart, 'utf8')).toMatch(/^<svg[\s\S]*<\/svg>\n$/)
    // The markdown section goes to stdout, after the text report.
    const section = run.stdout.slice(run.stdout.indexOf('### tandem'))
    expect(section).toContain('tandem-bench run --workload put,get,a,b,c')
    expect(section).toContain('| put 4x4 | tandem |')
    expect(report.git.commit).toMatch(/^[0-9a-f]{40}$/)
  })

  it('spreads clients over worker threads, with zipfian keys and a request count', async () => {
    const json = join(dir.path, 'workers.json')
    const { report } = await benchReport(
      json,
      'run --workload a --distribution zipfian --workers 2 --clients 4 --pipeline 2 --requests 2000 --warmup 0 --keys 1000 --progress none',
    )
    // One scenario: its targets are also at the top level.
    expectSaneTarget(report.targets.tandem, 'tandem')
    expect(report.targets.tandem.harness.threads).toBe(2)
    // Each slot may finish the request it had in flight when the quota ran out.
    expect(report.targets.tandem.ops).toBeGreaterThanOrEqual(2000)
    expect(report.targets.tandem.ops).toBeLessThan(2000 + 4 * 2)
  })

  it('reads with each consistency from a fail-over group it starts, one scenario each', async () => {
    const json = join(dir.path, 'consistency.json')
    const { report } = await benchReport(
      json,
      `run --cluster 3 --workload put,get --consistency linearizable,lease,local --clients 4 ${common}`,
    )
    expect(report.settings.cluster).toBe(3)
    // A put-only workload runs once; gets once per consistency.
    expect(report.scenarios.map((s: Json) => [s.workload, s.consistency])).toEqual([
      ['put', null],
      ['get', 'linearizable'],
      ['get', 'lease'],
      ['get', 'local'],
    ])
    for (const s of report.scenarios) expectSaneTarget(s.targets.tandem, 'tandem')
    // The group's three members served it: the master and two replicas.
    expect(report.scenarios[1].targets.tandem.servers.length).toBe(3)
    // The cost of safety: each consistency's read throughput over local's.
    const checks = report.checks.filter((c: Json) => String(c.id).startsWith('reads.'))
    expect(checks.map((c: Json) => String(c.id).replace(/\.\d+x\d+$/, ''))).toEqual([
      'reads.linearizable.get',
      'reads.lease.get',
    ])
    for (const c of checks) expect(c.measured).toBeGreaterThan(0)
  })

  it('measures raw LevelDB fsynced batches', async () => {
    const json = join(dir.path, 'raw.json')
    const { report } = await benchReport(json, 'raw --duration 0.3 --batch-sizes 10,50 --progress none')
    expect(report.rawLevelDb.map((r: Json) => r.batchSize)).toEqual([10, 50])
    for (const r of report.rawLevelDb) {
      expect(r.entriesPerSec).toBeGreaterThan(0)
      expect(r.batchLatencyMs.p50).toBeLessThanOrEqual(r.batchLatencyMs.max)
    }
  })

  it('names a bad flag and exits 2', async () => {
    for (const [args, flag] of [
      [['run', '--clients', 'many'], '--clients'],
      [['run', '--workload', 'put,scan'], '--workload'],
      [['run', '--no-such-flag'], '--no-such-flag'],
      [['compare', '--chart', 'out.png'], '--chart'],
      [['run', '--consistency', 'fast'], '--consistency'],
      [['run', '--cluster', '2'], '--cluster'],
      [['run', '--cluster', '3', '--replicas', '1'], '--cluster'],
    ] as const) {
      const run = await bench([...args])
      expect(run.code).toBe(2)
      expect(run.stderr).toContain(flag)
    }
  })

  it('says clearly when redis-server is missing', async () => {
    // An empty PATH: no redis-server on it (node itself is run by its full path).
    const empty = join(dir.path, 'empty-path')
    mkdirSync(empty)
    const run = await bench(['run', '--target', 'redis', ...common.split(' ')], { env: { PATH: empty } })
    expect(run.code).toBe(3)
    expect(run.stderr).toMatch(/redis-server is not on the PATH/)
  })

  it.skipIf(!hasRedis)('runs every workload against Redis and tandem side by side (compare)', async () => {
    const json = join(dir.path, 'compare.json')
    const chart = join(dir.path, 'compare.svg')
    const { run, report } = await benchReport(
      json,
      `compare --workload ${WORKLOADS.join(',')} --clients 4 --pipeline 4 --workers 2 --sync periodic ${common} --markdown`,
      ['--chart', chart],
    )
    expectMachine(report.machine, true)
    // --sync periodic is compared against the Redis durability that matches it.
    expect(report.settings.redisPersistence).toBe('appendonly yes, appendfsync everysec')
    expect(report.scenarios).toHaveLength(WORKLOADS.length)
    for (const s of report.scenarios) {
      for (const target of ['tandem', 'redis']) {
        const t = s.targets[target]
        expectSaneTarget(t, target)
        // --workers drives both sides.
        expect(t.harness.threads).toBe(2)
        // Server CPU per request: each process's, and the topology's, from the CPU it used and the requests done.
        expect(t.servers[0].cpuUsPerOp).toBeGreaterThan(0)
        expect(t.serverCpuUsPerOp).toBe(t.servers[0].cpuUsPerOp)
      }
      expect(s.targets.redis.commit).toBeNull()
      expect(s.ratios.throughput).toBeGreaterThan(0)
      expect(s.ratios.serverCpuPerOp).toBeGreaterThan(0)
    }
    expect(run.stdout).toMatch(/tandem\/redis throughput .*server CPU per request/)
    const section = run.stdout.slice(run.stdout.indexOf('### '))
    expect(section).toContain('server µs/op')
    expect(existsSync(chart)).toBe(true)
  })

  it.skipIf(!hasRedis)('starts Redis with a replica and samples its replication lag', async () => {
    const json = join(dir.path, 'redis-replica.json')
    const { report } = await benchReport(json, `run --target redis --replicas 1 --workload put --clients 2 ${common}`)
    const t = report.targets.redis
    expectSaneTarget(t, 'redis')
    expect(t.servers).toHaveLength(2)
    expect(t.replicationLag).toHaveLength(1)
    expect(t.replicationLag[0].samples).toBeGreaterThan(0)
    expect(t.replicationLag[0].lagMs.p50).toBeLessThanOrEqual(t.replicationLag[0].lagMs.max)
  })
})
