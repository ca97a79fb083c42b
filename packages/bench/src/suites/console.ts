import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { bearerHeaders } from '@tandem/protocol'
import type { DriverSpec } from '../drivers/driver.js'
import type { LoadCount } from '../load/runner.js'
import { ConsoleStreams } from '../measures/console-streams.js'
import { adjacentRatios, medianInterval } from '../measures/paired-windows.js'
import { cpuSeconds } from '../measures/proc.js'
import type { BenchOptions } from '../options.js'
import type { ProgressLine } from '../report/progress.js'
import type { ScenarioResult, TargetCheck } from '../report/result.js'
import { runScenario, type Scenario } from '../scenario.js'
import { startTandem } from '../topology/tandem.js'
import type { Topology } from '../topology/topology.js'
import { round } from './common.js'
import type { SuiteOutput } from './suite.js'

/**
 * Issue 18's cost of the web console: the master's put throughput with no
 * console open and with --consoles event streams open on it. The master
 * has max(1, --replicas) replicas, so its console watcher has a group to
 * poll as it would in production.
 *
 * What the console costs is small beside how much throughput moves on a
 * shared machine from one run to the next (separate runs of the same load
 * differ by tens of percent here), so it is measured inside ONE load:
 * - one unmeasured pass first, without consoles: a fresh node runs its
 *   first seconds slower (code not yet optimised, LevelDB's first
 *   compactions);
 * - then one put load runs throughout while the streams are opened and
 *   closed in alternating windows, off first and last (see
 *   paired-windows.ts). After each switch a tick is left out (the streams'
 *   first view, the watcher stopping), then --window seconds are measured:
 *   the puts completed and the master's CPU;
 * - each on window is compared with the off windows either side of it, and
 *   the change is the median of those ratios, with a distribution-free 95%
 *   interval. The figure is met when the whole interval lies within the
 *   target: a change it cannot tell from 2% is not met.
 * The off windows are checked to be off: the master's watcher encodes no
 * view in them (its metric), so no console work runs there.
 *
 * Then, with no load, the CPU the servers use with none, one, none, N
 * consoles open, IDLE_ROUNDS times over and none once more, --duration
 * seconds each, each window with consoles against the none windows beside
 * it (the median of the rounds): what the console itself costs,
 * without the noise of a saturated machine, and whether N cost what one
 * does. Its share of the master's CPU under the load bounds what it can
 * take from put throughput when the master is what limits it.
 */
export async function consoleSuite(o: BenchOptions, progress: ProgressLine, live: Set<Topology>): Promise<SuiteOutput> {
  const clients = o.clients[0]
  const pipeline = o.pipeline[0]
  const replicas = Math.max(1, o.replicas)
  const topology = await startTandem({ replicas, sync: o.sync, authToken: o.authToken })
  live.add(topology)
  try {
    progress.note(`console: master ${topology.master}, replicas ${topology.replicas.join(', ')}`)
    const spec: DriverSpec = { target: 'tandem', servers: [topology.master], authToken: o.authToken, w: o.w, pipeline }
    const put: Scenario = { name: `put ${clients}x${pipeline}`, workload: 'put', clients, pipeline }
    const settling = await runScenario(
      'tandem',
      topology,
      spec,
      { ...put, name: 'settling pass (not measured)' },
      o,
      progress,
    )
    await topology.waitForReplicas(o.syncTimeout * 1000)
    const windows: ConsoleWindow[] = []
    const toggled = await runScenario(
      'tandem',
      topology,
      spec,
      { ...put, name: `put ${clients}x${pipeline}, ${o.consoles} consoles opened and closed every window` },
      { ...o, requests: undefined },
      progress,
      { measureFor: (count) => toggleConsoles(topology, o, count, windows, progress) },
    )
    // Rounds of none, one, none, N, ..., none: what the node still does
    // after the load (LevelDB compacting) fades across the windows, so each
    // window with consoles is taken against the none windows either side.
    const idle = [] as { consoles: number; master: number | null; group: number | null }[]
    const idleOrder = [...Array.from({ length: IDLE_ROUNDS }, () => [0, 1, 0, o.consoles]).flat(), 0]
    for (const consoles of idleOrder) {
      progress.note(`console: idle CPU with ${consoles} consoles open`)
      idle.push({ consoles, ...(await idleCpuMsPerSec(topology, consoles, o.duration, o.authToken)) })
    }
    /** Per round, the ms/s of the windows with `consoles` open over the mean of the none windows beside each. */
    const idleOver = (consoles: number, field: 'master' | 'group'): number[] | null => {
      const out: number[] = []
      for (let i = 1; i + 1 < idle.length; i += 2) {
        if (idle[i].consoles !== consoles) continue
        const [before, v, after] = [idle[i - 1][field], idle[i][field], idle[i + 1][field]]
        if (before === null || v === null || after === null) return null
        out.push(v - (before + after) / 2)
      }
      return out
    }
    const noneMean = (field: 'master' | 'group') => {
      const xs = idle.filter((w) => w.consoles === 0).map((w) => w[field])
      return xs.some((x) => x === null) ? null : round((xs as number[]).reduce((a, b) => a + b, 0) / xs.length, 1)
    }
    const side = (on: boolean) => windows.filter((w) => w.on === on)
    const median = (xs: number[]) => (xs.length === 0 ? null : medianInterval(xs).median)
    const scenarios: ScenarioResult[] = [
      {
        name: `console: put ${clients}x${pipeline}, ${o.consoles} consoles open on the master in every other ${o.window} s window`,
        workload: 'console',
        distribution: o.distribution,
        clients,
        pipeline,
        valueSize: o.valueSize,
        keys: o.keys,
        w: o.w ?? null,
        targets: { tandem: toggled },
        offeredRate: null,
        replicas,
        vsNoReplicas: null,
        passes: windows.map((w) => Math.round(w.throughput)),
        ratios: null,
        consoles: o.consoles,
      },
    ]
    const throughput = windows.map((w) => w.throughput)
    const usPerPut = windows.map((w) => w.masterUsPerPut ?? 0)
    const change = summarize(adjacentRatios(throughput))
    const cpuChange = windows.some((w) => w.masterUsPerPut === null) ? null : summarize(adjacentRatios(usPerPut))
    const fewestEvents = Math.min(...side(true).map((w) => w.fewestEvents))
    const offViews = side(false).reduce((sum, w) => sum + (w.viewsEncoded ?? 0), 0)
    const viewsKnown = windows.every((w) => w.viewsEncoded !== null)
    const medianOps = (on: boolean) => Math.round(median(side(on).map((w) => w.throughput)) ?? 0)
    const medianUs = (on: boolean) =>
      median(side(on).flatMap((w) => (w.masterUsPerPut === null ? [] : [w.masterUsPerPut])))
    const checks: TargetCheck[] = [
      {
        id: 'console.putThroughputChange',
        name:
          `put throughput change with ${o.consoles} consoles open on the master, within one load: ` +
          `${change.pairs} on windows of ${o.window} s, each against the off windows beside it; ` +
          `median ${change.text}; window medians on ${medianOps(true)} / off ${medianOps(false)} ops/s, ` +
          `after an unmeasured pass at ${settling.throughput} ops/s; ` +
          `each stream got at least ${fewestEvents} views in an on window, ` +
          `the watcher encoded ${viewsKnown ? offViews : '?'} views in the off windows`,
        measured: change.median === null ? null : round(Math.abs(change.median), 2),
        unit: '%',
        target: '< 2',
        // Met only when the interval excludes a change of 2% either way, the
        // consoles were live in every on window and idle in every off window.
        met:
          change.low !== null &&
          change.high !== null &&
          change.low > -2 &&
          change.high < 2 &&
          fewestEvents > 0 &&
          viewsKnown &&
          offViews === 0,
      },
      {
        id: 'console.cpuPerPutChange',
        name:
          `the master's CPU per put with ${o.consoles} consoles open, same windows: ` +
          `median ${cpuChange?.text ?? '?'}; window medians on ${fmt(medianUs(true))} / off ${fmt(medianUs(false))} µs per put`,
        measured: cpuChange?.median === null || cpuChange === null ? null : round(cpuChange.median, 2),
        unit: '%',
        target: 'reported',
        met: true,
      },
    ]
    const over = (consoles: number, field: 'master' | 'group') => {
      const diffs = idleOver(consoles, field)
      return diffs === null || diffs.length === 0 ? null : round(medianInterval(diffs).median, 1)
    }
    for (const [consoles, id] of [
      [1, 'console.idleCpuOne'],
      [o.consoles, 'console.idleCpuMany'],
    ] as const) {
      const rounds = (idleOver(consoles, 'master') ?? []).map((d) => `${d >= 0 ? '+' : ''}${round(d, 1)}`).join(', ')
      checks.push({
        id,
        name: `CPU of the master with ${consoles} console${consoles === 1 ? '' : 's'} open and no load, over none: median of ${IDLE_ROUNDS} rounds, each against the none windows beside it (${rounds} ms/s; none ${noneMean('master')} ms/s on average; all servers together ${over(consoles, 'group')} ms/s more)`,
        measured: over(consoles, 'master'),
        unit: 'ms/s',
        target: 'reported',
        met: true,
      })
    }
    const masterUnderLoad = toggled.servers[0]?.cpuCores
    const manyCost = over(o.consoles, 'master')
    checks.push({
      id: 'console.cpuShare',
      name: `that cost of ${o.consoles} consoles as a share of the master's CPU while it serves the puts (${masterUnderLoad ?? '?'} cores)`,
      measured: manyCost === null || !masterUnderLoad ? null : round(Math.max(0, manyCost) / (masterUnderLoad * 10), 2),
      unit: '%',
      target: 'reported',
      met: true,
    })
    return { scenarios, checks }
  } finally {
    live.delete(topology)
    await topology.close()
  }
}

/** Rounds of the idle CPU windows (none, one, none, N each). */
const IDLE_ROUNDS = 3

/** One measured window of the toggled load. */
interface ConsoleWindow {
  on: boolean
  /** Puts per second completed in the window. */
  throughput: number
  /** The master's CPU over the puts completed, in µs; null without /proc. */
  masterUsPerPut: number | null
  /** Views the master's watcher encoded in the window (its metric); null when /metrics did not answer. */
  viewsEncoded: number | null
  /** The fewest views any stream received in the window (0 in off windows). */
  fewestEvents: number
}

/**
 * The switching that runs inside the one load: 2 x --pairs + 1 windows,
 * off first. Each switch is followed by a tick left out: an opened stream
 * waits for its first view (so the watcher runs) and the node sees the
 * closed ones go (so it stops); then --window seconds are measured.
 */
async function toggleConsoles(
  topology: Topology,
  o: BenchOptions,
  count: () => Promise<LoadCount>,
  windows: ConsoleWindow[],
  progress: ProgressLine,
): Promise<void> {
  const pid = topology.processes[0]?.pid
  let streams: ConsoleStreams | null = null
  try {
    for (let i = 0; i < 2 * o.pairs + 1; i++) {
      const on = i % 2 === 1
      if (on) streams = await ConsoleStreams.open(topology.master, o.consoles, o.authToken)
      else {
        streams?.close()
        streams = null
      }
      await sleep(SWITCH_SETTLE_MS)
      const viewsBefore = await viewsEncoded(topology.master, o.authToken)
      const eventsBefore = streams ? [...streams.events] : []
      const [before, cpuBefore] = await Promise.all([count(), pid === undefined ? undefined : cpuSeconds(pid)])
      const started = performance.now()
      await sleep(o.window * 1000)
      const [after, cpuAfter] = await Promise.all([count(), pid === undefined ? undefined : cpuSeconds(pid)])
      const seconds = (performance.now() - started) / 1000
      const viewsAfter = await viewsEncoded(topology.master, o.authToken)
      const ops = after.ops - before.ops
      windows.push({
        on,
        throughput: ops / seconds,
        masterUsPerPut:
          cpuBefore === undefined || cpuAfter === undefined || ops <= 0 ? null : ((cpuAfter - cpuBefore) / ops) * 1e6,
        viewsEncoded: viewsBefore === null || viewsAfter === null ? null : viewsAfter - viewsBefore,
        fewestEvents: streams ? Math.min(...streams.events.map((n, s) => n - eventsBefore[s])) : 0,
      })
      progress.note(
        `console: window ${i + 1}/${2 * o.pairs + 1} ${on ? 'on ' : 'off'} ${Math.round(ops / seconds).toLocaleString('en-US')} ops/s`,
      )
    }
  } finally {
    streams?.close()
  }
}

/**
 * Left out after each switch: the watcher's tick (consoleTickMs, 1 s by
 * default), so that an on window starts with the watcher ticking and an off
 * window after its last tick has finished.
 */
const SWITCH_SETTLE_MS = 1000

/** The master's count of views encoded for console streams (tandem_console_views_encoded_total), or null. */
async function viewsEncoded(address: string, authToken: string | undefined): Promise<number | null> {
  try {
    const res = await fetch(`http://${address}/metrics`, { headers: bearerHeaders(authToken) })
    if (!res.ok) return null
    const m = /^tandem_console_views_encoded_total(?:\{[^}]*\})? (\d+)/m.exec(await res.text())
    return m ? Number(m[1]) : 0
  } catch {
    return null
  }
}

/** Paired ratios as changes in %: the median and its interval, and a line that says so. */
function summarize(ratios: number[]): {
  pairs: number
  median: number | null
  low: number | null
  high: number | null
  text: string
} {
  if (ratios.length === 0) return { pairs: 0, median: null, low: null, high: null, text: 'no pairs' }
  const pct = (r: number) => (r - 1) * 100
  const m = medianInterval(ratios.map(pct))
  const sorted = ratios.map(pct).sort((a, b) => a - b)
  const sign = (x: number) => `${x >= 0 ? '+' : ''}${round(x, 2)}%`
  const interval =
    m.low === null || m.high === null || m.coverage === null
      ? 'too few pairs for a 95% interval'
      : `${Math.round(m.coverage * 1000) / 10}% interval ${sign(m.low)} .. ${sign(m.high)}`
  return {
    pairs: ratios.length,
    median: m.median,
    low: m.low,
    high: m.high,
    text: `${sign(m.median)}, ${interval}, pairs from ${sign(sorted[0])} to ${sign(sorted[sorted.length - 1])}`,
  }
}

const fmt = (x: number | null) => (x === null ? '?' : String(round(x, 2)))

/**
 * CPU the servers use, in ms per second of wall time over `seconds`, while
 * `consoles` streams are open on the master and nothing else runs: the
 * master alone, and every server together (the watcher polls the others).
 */
async function idleCpuMsPerSec(
  topology: Topology,
  consoles: number,
  seconds: number,
  authToken: string | undefined,
): Promise<{ master: number | null; group: number | null }> {
  const streams = consoles > 0 ? await ConsoleStreams.open(topology.master, consoles, authToken) : null
  try {
    // The watcher's first ticks (its first look at every node) stay out of the window.
    await sleep(1000)
    const pids = topology.processes.map((p) => p.pid)
    const read = () => Promise.all(pids.map((pid) => (pid === undefined ? undefined : cpuSeconds(pid))))
    const before = await read()
    const started = performance.now()
    await sleep(seconds * 1000)
    const after = await read()
    const wall = (performance.now() - started) / 1000
    const used = after.map((a, i) => (a === undefined || before[i] === undefined ? null : a - (before[i] as number)))
    const perSec = (cpu: number) => round((cpu / wall) * 1000, 1)
    return {
      master: used[0] === null ? null : perSec(used[0]),
      group: used.some((u) => u === null) ? null : perSec(used.reduce((a: number, u) => a + (u as number), 0)),
    }
  } finally {
    streams?.close()
  }
}
