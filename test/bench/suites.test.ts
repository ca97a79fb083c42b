import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { REPO_ROOT } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { bench, benchReport, type Json } from './run-bench.js'

// The replication and fail-over suites of tandem-bench (issues 3 and 4), at
// tiny sizes. Like bench.test.ts these check the shape of the JSON and that
// every figure is there and sane; never how fast anything is.

function expectSummary(s: Json): void {
  for (const k of ['count', 'min', 'p50', 'p90', 'p99', 'max', 'mean']) expect(s[k], k).toEqual(expect.any(Number))
  expect(s.count).toBeGreaterThan(0)
  expect(s.min).toBeLessThanOrEqual(s.p50)
  expect(s.p50).toBeLessThanOrEqual(s.p99)
  expect(s.p99).toBeLessThanOrEqual(s.max)
}

function expectCheck(c: Json): void {
  expect(c.id).toMatch(/^[a-z]+(\.[A-Za-z0-9]+)+$/)
  expect(c.name).toEqual(expect.any(String))
  expect(c.unit).toEqual(expect.any(String))
  expect(c.target).toEqual(expect.any(String))
  expect([true, false, null]).toContain(c.met)
  expect(c.measured === null || typeof c.measured === 'number').toBe(true)
}

function expectLag(t: Json, replicas: number): void {
  expect(t.replicationLag).toHaveLength(replicas)
  for (const r of t.replicationLag) {
    expect(r.samples).toBeGreaterThan(0)
    expect(r.lagMs.p50).toBeLessThanOrEqual(r.lagMs.p99)
    expect(r.lagMs.p99).toBeLessThanOrEqual(r.lagMs.max)
  }
}

describe('tandem-bench suites', () => {
  const dir = tempDir('tandem-bench-suites-')
  afterAll(() => dir.remove())

  it('lag and replicas: lag at saturation and at an offered rate, throughput against replica count', async () => {
    const json = join(dir.path, 'replication.json')
    const page = readFileSync(join(REPO_ROOT, 'BENCHMARKS.md'), 'utf8')
    const { run, report } = await benchReport(
      json,
      'run --workload lag,replicas --clients 2 --pipeline 2 --duration 0.5 --warmup 0 --keys 1000 --replica-counts 0,1 --repeat 2 --warmup-puts 200 --floor-puts 20000 --progress none --markdown',
    )
    expect(report.machine.loadAverage).toHaveLength(3)
    expect(report.machine.cores).toBeGreaterThan(0)
    expect(report.commandLine).toMatch(/^tandem-bench run --workload lag,replicas /)
    expect(report.git.commit).toMatch(/^[0-9a-f]{40}$/)
    expect(typeof report.git.dirty).toBe('boolean')
    expect(report.scenarios.map((s: Json) => s.workload)).toEqual(['lag', 'lag', 'replicas', 'replicas'])

    const [sat, open, none, one] = report.scenarios
    expect(sat.offeredRate).toBeNull()
    expect(sat.replicas).toBe(1)
    expect(sat.targets.tandem.throughput).toBeGreaterThan(0)
    expectLag(sat.targets.tandem, 1)
    // Half of the saturation just measured, offered open loop.
    expect(open.offeredRate).toBe(Math.max(1, Math.round(sat.targets.tandem.throughput / 2)))
    expect(open.targets.tandem.ops).toBeGreaterThan(0)
    expectLag(open.targets.tandem, 1)

    expect(none.replicas).toBe(0)
    expect(none.vsNoReplicas).toBe(1)
    expect(none.targets.tandem.replicationLag).toBeNull()
    expect(one.replicas).toBe(1)
    expect(one.vsNoReplicas).toBeGreaterThan(0)
    expect(one.targets.tandem.servers).toHaveLength(2)
    // No lag probe beside the replicas' runs: they differ from the run without replicas only by the replicas.
    expect(one.targets.tandem.replicationLag).toBeNull()

    // Each figure under its stable id: what BENCHMARKS.md and these tests look it up by.
    expect(report.checks.map((c: Json) => c.id)).toEqual([
      'lag.p99.half',
      'lag.p99.saturation',
      'replicas.throughput.1',
      'replicas.masterCpu.1',
      'replicas.cpuByThread.0',
      'replicas.cpuByThread.1',
      'replicas.masterGc.0',
      'replicas.masterGc.1',
      'replicas.masterStages.0',
      'replicas.masterStages.1',
      'replicas.floor.block',
      'replicas.floor.entry',
      'replicas.floor.none',
      'replicas.ceiling.1',
    ])
    const check = (id: string) => report.checks.find((c: Json) => c.id === id)
    expect(check('lag.p99.half')).toMatchObject({ unit: 'ms', target: '< 10' })
    expect(check('replicas.masterCpu.1').name).toMatch(/^master CPU per put with none \/ with 1 replicas/)
    // Each pass's ratio (two passes, in ABBA order), their median and range, and how long each master waited for a core.
    expect(check('replicas.masterCpu.1').name).toMatch(
      /; by pass [\d.]+, [\d.]+ \(median of 2, range [\d.]+-[\d.]+\); master main thread waiting for a core, by pass: none (\d+%|-), (\d+%|-), 1 replicas (\d+%|-), (\d+%|-); not pinned\)$/,
    )
    expect(check('replicas.masterStages.1')).toMatchObject({ unit: 'ms' })
    expect(check('replicas.masterStages.1').name).toMatch(
      /^put latency with 1 replicas, p99 [\d.]+ \/ max [\d.]+ ms; master commit stages by group, p50 \/ p99 ms \(bucket bounds\): queue [\d.]+ \/ [\d.]+, /,
    )
    expect(check('replicas.cpuByThread.0').name).toMatch(
      /^CPU per put with 0 replicas, us \(main thread .*\): master [\d.]+ \/ /,
    )
    expect(check('replicas.cpuByThread.1').name).toMatch(
      /^CPU per put with 1 replicas, .*; replica[^;]*; harness [\d.]+$/,
    )
    expect(check('replicas.masterGc.1').name).toMatch(
      /^master GC pauses with 1 replicas, \d+ puts \(the measured window\): minor \d+ \(\d+ over 10 ms, [\d.]+ ms\), major \d+ /,
    )
    expect(check('replicas.floor.entry').name).toContain('a log record per put')
    expect(check('replicas.floor.none').name).toContain('no log at all')
    for (const server of one.targets.tandem.servers) {
      for (const k of ['main', 'busiestOther', 'rest']) expect(server.threads[k], k).toBeGreaterThanOrEqual(0)
      // Linux keeps schedstat: a share of the window, 0 to 1 (its samples a few ms off the window's ends).
      expect(server.mainWaitShare).toBeGreaterThanOrEqual(0)
      expect(server.mainWaitShare).toBeLessThan(1.1)
    }
    for (const c of report.checks) expectCheck(c)
    // --markdown prints the section to paste; it appends to no file.
    expect(readFileSync(join(REPO_ROOT, 'BENCHMARKS.md'), 'utf8')).toBe(page)
    expect(run.stdout).toContain('### replication\n')
    expect(run.stdout).toMatch(/Run \d{4}-\d\d-\d\d \d\d:\d\d UTC on commit [0-9a-f]{7}/)
    expect(run.stdout).toContain('| figure (id) | measured | wanted | met |')
    expect(run.stdout).toContain('(`replicas.throughput.1`)')
  })

  it('fullsync: loads keys in batches, times an empty replica until it streams, with its peak RSS, then Redis on the same keys', async () => {
    const json = join(dir.path, 'fullsync.json')
    const { report } = await benchReport(json, 'run --workload fullsync --keys 3000 --batch 500 --progress none')
    expect(report.scenarios).toHaveLength(1)
    const t = report.scenarios[0].targets.tandem
    expect(report.scenarios[0].workload).toBe('fullsync')
    expect(t.failover).toBeNull()
    const f = t.fullSync
    expect(f.keys).toBe(3000)
    expect(f.valueSize).toBe(100)
    expect(f.masterSeq).toBeGreaterThanOrEqual(3000 / 500)
    for (const k of ['dataMB', 'syncMs', 'spawnToCaughtUpMs', 'keysPerSec', 'mbPerSec', 'endToEndKeysPerSec'])
      expect(f[k], k).toBeGreaterThan(0)
    expect(f.syncMs).toBeLessThanOrEqual(f.spawnToCaughtUpMs)
    expect(f.transferMs).toBeGreaterThanOrEqual(0)
    expect(f.masterSent.keys).toBe(3000)
    expect(f.replicaPeakRssMB).toBeGreaterThan(0)
    expect(f.masterPeakRssMB).toBeGreaterThan(0)
    expect(f.load).toMatchObject({ batch: 500, connections: 4 })
    expect(f.load.keysPerSec).toBeGreaterThan(0)
    expect(t.servers.map((s: Json) => s.role)).toEqual(['master', 'replica (full sync)'])
    // The Redis side of the same run: the same keys through its diskless full sync.
    const r = f.redis
    expect(r.settings).toContain('repl-diskless-sync yes')
    expect(r.version).toMatch(/^\d+\.\d+/)
    for (const k of ['syncMs', 'keysPerSec', 'mbPerSec', 'replicaPeakRssMB', 'masterPeakRssMB'])
      expect(r[k], `redis.${k}`).toBeGreaterThan(0)
    expect(r.load).toMatchObject({ batch: 500, connections: 4 })
    expect(f.vsRedis).toBeCloseTo(f.keysPerSec / r.keysPerSec, 1)
    expect(report.checks.map((c: Json) => [c.id, c.unit])).toEqual([
      ['fullsync.keysPerSec', 'keys/s'],
      ['fullsync.replicaPeakRss', 'MB'],
      ['fullsync.redis.keysPerSec', 'keys/s'],
      ['fullsync.redis.replicaPeakRss', 'MB'],
      ['fullsync.vsRedis', 'x'],
    ])
    const ratio = report.checks.find((c: Json) => c.id === 'fullsync.vsRedis')
    expect(ratio).toMatchObject({ measured: f.vsRedis, target: '>= 1.0', met: f.vsRedis >= 1 })
    for (const c of report.checks) expectCheck(c)
  })

  it('failover: kills the master of a 3-member auto group each round, then a cold restart', async () => {
    const json = join(dir.path, 'failover.json')
    const { run, report } = await benchReport(
      json,
      'run --workload failover --rounds 2 --pipeline 2 --keys 2000 --batch 500 --progress none',
    )
    expect(report.settings.rounds).toBe(2)
    const s = report.scenarios[0]
    expect(s.workload).toBe('failover')
    const t = s.targets.tandem
    expect(t.fullSync).toBeNull()
    expect(t.ops).toBeGreaterThan(0)
    const f = t.failover
    expect(f.members).toHaveLength(3)
    expect(f.writerLoops).toBe(2)
    expect(f.rounds).toHaveLength(2)
    for (const r of f.rounds) {
      expect(f.members).toContain(r.killed)
      expect(f.members).toContain(r.newMaster)
      expect(r.newMaster).not.toBe(r.killed)
      expect(r.downtimeMs).toBeGreaterThan(0)
      expect(r.electionMs).toBeGreaterThan(0)
      expect(r.rejoinMs).toBeGreaterThan(0)
      expect(r.rejoinedAs).toBe('replica')
      expect(r.failedWrites).toBeGreaterThanOrEqual(0)
    }
    expect(f.unrecovered).toBe(0)
    expectSummary(f.downtimeMs)
    expectSummary(f.electionMs)
    expectSummary(f.rejoinMs)
    expect(f.downtimeMs.count).toBe(2)
    const c = f.coldRestart
    expect(c.keys).toBe(2000)
    expect(c.dataDirMB).toBeGreaterThan(0)
    expect(c.spawnToListeningMs).toBeLessThanOrEqual(c.killToListeningMs)
    expect(c.killToListeningMs).toBeLessThanOrEqual(c.killToFirstAckMs)
    expect(report.checks.map((x: Json) => [x.id, x.target])).toEqual([
      ['failover.downtime.p50', '< 1500'],
      ['failover.downtime.p99', '< 3000'],
      ['failover.coldRestart', '-'],
    ])
    for (const x of report.checks) expectCheck(x)
    expect(run.stdout).toContain('kill to first acknowledged write')
  })

  it('refuses suites against Redis or running servers, naming the flag', async () => {
    for (const args of [
      ['compare', '--workload', 'lag'],
      ['run', '--target', 'redis', '--workload', 'failover'],
      ['run', '--server', '127.0.0.1:1', '--workload', 'fullsync'],
      ['run', '--workload', 'failover', '--rounds', '0'],
    ]) {
      const run = await bench(args)
      expect(run.code, args.join(' ')).toBe(2)
      expect(run.stderr).toMatch(/--workload|--rounds/)
    }
  })
})
