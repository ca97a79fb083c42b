import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { bearerHeaders } from '@tandem/protocol'
import type { LoadCount } from '../load/runner.js'
import { ConsoleStreams } from '../measures/console-streams.js'
import { crossoverEstimates, medianInterval, type Node2 } from '../measures/paired-windows.js'
import { cpuSeconds } from '../measures/proc.js'
import type { BenchOptions } from '../options.js'
import { ProgressLine } from '../report/progress.js'
import type { ScenarioResult, TargetCheck, TargetResult } from '../report/result.js'
import { scenarioResult } from '../report/scenario-result.js'
import { runScenario, type Scenario } from '../scenario.js'
import { pinMasters } from '../topology/cpu-affinity.js'
import { startTandem } from '../topology/tandem.js'
import type { Topology } from '../topology/topology.js'
import { round } from './common.js'
import type { SuiteOutput } from './suite.js'

/**
 * Issue 18's cost of the web console: what --consoles event streams open on
 * a master change its put throughput by. Each node measured is a master with
 * max(1, --replicas) replicas, so its console watcher has a group to follow
 * as it would in production.
 *
 * What the console costs is small beside how much throughput moves on a
 * shared machine, from one run to the next and, on a VM, from one second to
 * the next (the machine changes speed under the load). So, a crossover
 * (see paired-windows.ts):
 * - TWO identical nodes (each a master and its replicas) run the same put
 *   load at once, --clients x --pipeline each, after one unmeasured pass of
 *   both (a fresh node runs its first seconds slower);
 * - while both loads run, the streams are open on exactly ONE of the two
 *   masters in every window, the masters taking turns: node 1, node 2,
 *   node 1, ..., node 1 (2 x --pairs + 1 windows). The machine and the
 *   harness (which reads the streams and drives both loads) carry the same
 *   console work in every window; only which node serves it changes;
 * - a window opens the streams on its node, keeps them --window seconds,
 *   closes them and gives the node CLOSE_GRACE_MS to let them go: opening
 *   and closing are charged to the consoles. The windows follow each other
 *   with no gap;
 * - per window on node 2, node 1 / node 2 in the windows on node 1 beside
 *   it over node 1 / node 2 in it: what moves both nodes alike cancels
 *   within each window, and a node faster than the other between windows.
 *   That is both nodes' costs together; each node's is half of it (the
 *   nodes are alike). The change is the median of those estimates with a
 *   distribution-free 95% interval; the figure is met when the whole
 *   interval lies within the target. Each node's own change (its
 *   throughput with the streams over its throughput without, no reference)
 *   is reported beside it as the check of the halving.
 * The streams must have received views in every window, and the node
 * without them must be untouched: its watcher encodes no view (its metric).
 * With --pin masters (the default) both masters share CPU 0 and the
 * replicas CPU 1 (pinMasters says why).
 *
 * Then, with no load, the CPU the first node's servers use with none, one,
 * none, N consoles open, IDLE_ROUNDS times over and none once more,
 * --duration seconds each, each window with consoles against the none
 * windows beside it (the median of the rounds): what the console itself
 * costs, without the noise of a saturated machine, and whether N cost what
 * one does. It bounds the throughput figure from the other side: the
 * consoles cannot take more from the puts than the CPU they use.
 */
export async function consoleSuite(o: BenchOptions, progress: ProgressLine, live: Set<Topology>): Promise<SuiteOutput> {
  const clients = o.clients[0]
  const pipeline = o.pipeline[0]
  const replicas = Math.max(1, o.replicas)
  const nodes: Topology[] = []
  try {
    for (let i = 0; i < 2; i++) {
      const topology = await startTandem({ replicas, sync: o.sync, authToken: o.authToken })
      live.add(topology)
      nodes.push(topology)
      progress.note(`console: node ${i + 1}: master ${topology.master}, replicas ${topology.replicas.join(', ')}`)
    }
    const pinning = (o.pin ?? 'masters') === 'masters' ? await pinMasters(nodes) : `not pinned (--pin ${o.pin})`
    progress.note(`console: ${pinning}`)
    const put: Scenario = { name: `put ${clients}x${pipeline}`, workload: 'put', clients, pipeline }
    const settling = await bothLoads(nodes, o, progress, { ...put, name: 'settling pass (not measured)' }, o)
    await Promise.all(nodes.map((t) => t.waitForReplicas(o.syncTimeout * 1000)))
    const windows: ConsoleWindow[] = []
    const toggled = await bothLoads(
      nodes,
      o,
      progress,
      { ...put, name: `put ${clients}x${pipeline}, ${o.consoles} consoles open on one node or the other in turn` },
      { ...o, requests: undefined },
      (counts) => toggleConsoles(nodes, o, counts, windows, progress),
    )
    // Rounds of none, one, none, N, ..., none: what the node still does
    // after the load (LevelDB compacting) fades across the windows, so each
    // window with consoles is taken against the none windows either side.
    const topology = nodes[0]
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
    const targets = windows.map((w) => w.target)
    const scenarios: ScenarioResult[] = nodes.map((_, n) =>
      scenarioResult(o, {
        name:
          `console: node ${n + 1} of 2, put ${clients}x${pipeline} on each, ${o.consoles} consoles open on one node ` +
          `or the other in windows of ${o.window} s, the nodes taking turns`,
        workload: 'console',
        clients,
        pipeline,
        targets: { tandem: toggled[n] },
        replicas,
        passes: windows.map((w) => Math.round(w.throughput[n])),
        consoleTargets: windows.map((w) => w.target + 1),
        consolePinning: pinning,
        consoles: o.consoles,
      }),
    )
    const puts = crossoverEstimates(
      windows.map((w) => w.throughput),
      targets,
    )
    const change = summarize(puts.map((e) => e.perNode))
    const own = ([0, 1] as const).map((n) => summarize(puts.map((e) => e.own[n])))
    const ownBoth = summarize(puts.flatMap((e) => e.own))
    const cpuKnown = windows.every((w) => w.usPerPut.every((u) => u !== null))
    const cpu = cpuKnown
      ? crossoverEstimates(
          windows.map((w) => w.usPerPut as [number, number]),
          targets,
        )
      : null
    const cpuChange = cpu === null ? null : summarize(cpu.map((e) => e.perNode))
    const cpuOwn = cpu === null ? null : ([0, 1] as const).map((n) => summarize(cpu.map((e) => e.own[n])))
    const fewestEvents = Math.min(...windows.map((w) => w.fewestEvents))
    const viewsKnown = windows.every((w) => w.viewsEncoded.every((v) => v !== null))
    const otherViews = windows.reduce((sum, w) => sum + (w.viewsEncoded[1 - w.target] ?? 0), 0)
    const medianOps = (onSide: boolean) =>
      Math.round(median(windows.map((w) => w.throughput[onSide ? w.target : 1 - w.target])) ?? 0)
    const checks: TargetCheck[] = [
      {
        id: 'console.putThroughputChange',
        name:
          `put throughput change per master with ${o.consoles} consoles open on it, two masters under the same load at once, ` +
          `the consoles open on one or the other in turn: ${change.pairs} windows of ${o.window} s on node 2, each against ` +
          `the windows on node 1 beside it, half of both nodes' change; median ${change.text}; ` +
          `each node's own change (no reference): node 1 ${own[0].short}, node 2 ${own[1].short}; ` +
          `window medians with consoles ${medianOps(true)} / without ${medianOps(false)} ops/s per node, ` +
          `after an unmeasured pass at ${settling.map((s) => s.throughput).join(' / ')} ops/s; ${pinning}; ` +
          `each stream got at least ${fewestEvents} views in its window, ` +
          `the master without the consoles encoded ${viewsKnown ? otherViews : '?'} views`,
        measured: change.median === null ? null : round(Math.abs(change.median), 2),
        unit: '%',
        target: '< 2',
        // Met only when the interval excludes a change of 2% either way, the
        // consoles were live in every window, and no watcher ran on the node
        // without them.
        met:
          change.low !== null &&
          change.high !== null &&
          change.low > -2 &&
          change.high < 2 &&
          fewestEvents > 0 &&
          viewsKnown &&
          otherViews === 0,
      },
      {
        id: 'console.putThroughputChangeRaw',
        name:
          `the same windows, each node's own throughput with the consoles over its windows without them beside ` +
          `(no reference node, so the machine's swing stays in): node 1 median ${own[0].text}; ` +
          `node 2 median ${own[1].text}; both nodes' estimates together`,
        measured: ownBoth.median === null ? null : round(Math.abs(ownBoth.median), 2),
        unit: '%',
        target: 'reported',
        met: true,
      },
      {
        id: 'console.cpuPerPutChange',
        name:
          `a master's CPU per put with ${o.consoles} consoles open on it, same windows and estimate: ` +
          `median ${cpuChange?.text ?? '?'}; each node's own: node 1 ${cpuOwn?.[0].short ?? '?'}, node 2 ${cpuOwn?.[1].short ?? '?'}`,
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
    const masterUnderLoad = toggled[0].servers[0]?.cpuCores
    const manyCost = over(o.consoles, 'master')
    checks.push({
      id: 'console.cpuShare',
      name: `that cost of ${o.consoles} consoles as a share of the master's CPU while it serves the puts beside the other master (${masterUnderLoad ?? '?'} cores)`,
      measured: manyCost === null || !masterUnderLoad ? null : round(Math.max(0, manyCost) / (masterUnderLoad * 10), 2),
      unit: '%',
      target: 'reported',
      met: true,
    })
    return { scenarios, checks }
  } finally {
    for (const t of nodes) live.delete(t)
    await Promise.all(nodes.map((t) => t.close()))
  }
}

const median = (xs: number[]) => (xs.length === 0 ? null : medianInterval(xs).median)

/**
 * The same load on both nodes at once, each its own clients. With
 * `measureFor`, both measured windows last until it settles; it gets both
 * loads' counts once both are measuring. The first node's progress is shown.
 */
async function bothLoads(
  nodes: Topology[],
  o: BenchOptions,
  progress: ProgressLine,
  scenario: Scenario,
  options: BenchOptions,
  measureFor?: (counts: [CountFn, CountFn]) => Promise<void>,
): Promise<[TargetResult, TargetResult]> {
  const ready = nodes.map(() => deferred<CountFn>())
  const measured = measureFor
    ? Promise.all(ready.map((d) => d.promise)).then((counts) => measureFor(counts as [CountFn, CountFn]))
    : null
  // A load that fails before its window opens ends the other's window too.
  measured?.catch(() => {})
  const runs = nodes.map((t, i) =>
    runScenario(
      'tandem',
      t,
      { target: 'tandem', servers: [t.master], authToken: o.authToken, w: o.w, pipeline: scenario.pipeline },
      { ...scenario, name: `node ${i + 1}: ${scenario.name}` },
      options,
      i === 0 ? progress : new ProgressLine('none'),
      measured
        ? {
            measureFor: (count) => {
              ready[i].resolve(count)
              return measured
            },
          }
        : {},
    ).catch((err) => {
      for (const d of ready) d.reject(err)
      throw err
    }),
  )
  const [a, b] = await Promise.all(runs)
  return [a, b]
}

type CountFn = () => Promise<LoadCount>

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (err: unknown) => void } {
  let resolve!: (v: T) => void
  let reject!: (err: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  promise.catch(() => {})
  return { promise, resolve, reject }
}

/** Rounds of the idle CPU windows (none, one, none, N each). */
const IDLE_ROUNDS = 3

/** One measured window of the toggled load, on both nodes. */
interface ConsoleWindow {
  /** The node whose consoles were open in the window. */
  target: Node2
  /** Puts per second completed in the window, per node. */
  throughput: [number, number]
  /** Each master's CPU over the puts it completed, in µs; null without /proc. */
  usPerPut: [number | null, number | null]
  /** Views each master's watcher encoded in the window (its metric); null when /metrics did not answer. */
  viewsEncoded: [number | null, number | null]
  /** The fewest views any stream received in the window. */
  fewestEvents: number
}

/**
 * The switching that runs inside the two loads: 2 x --pairs + 1 windows,
 * one after the other with no gap, on node 1 first and last. Each window
 * opens the streams on its node (the nodes take turns), holds them
 * --window seconds, closes them and waits for the node to let them go.
 */
async function toggleConsoles(
  nodes: Topology[],
  o: BenchOptions,
  counts: [CountFn, CountFn],
  windows: ConsoleWindow[],
  progress: ProgressLine,
): Promise<void> {
  const pids = nodes.map((t) => t.processes[0]?.pid)
  const sample = async () => {
    // The time goes with the counts (read at once); /metrics may answer later on a busy machine.
    const at = performance.now()
    const [ops, cpu, views] = await Promise.all([
      Promise.all(counts.map((count) => count())),
      Promise.all(pids.map((pid) => (pid === undefined ? undefined : cpuSeconds(pid)))),
      Promise.all(nodes.map((t) => viewsEncoded(t.master, o.authToken))),
    ])
    return { ops: ops.map((c) => c.ops), cpu, views, at }
  }
  let streams: ConsoleStreams | null = null
  try {
    let before = await sample()
    for (let i = 0; i < 2 * o.pairs + 1; i++) {
      const target = (i % 2) as Node2
      const opened = performance.now()
      streams = await ConsoleStreams.open(nodes[target].master, o.consoles, o.authToken)
      await sleep(Math.max(0, o.window * 1000 - (performance.now() - opened)))
      // The streams are this window's own: every view they got, the first included.
      const fewestEvents = streams.minEvents()
      streams.close()
      streams = null
      await sleep(CLOSE_GRACE_MS)
      const after = await sample()
      const seconds = (after.at - before.at) / 1000
      const node = (n: Node2) => {
        const ops = after.ops[n] - before.ops[n]
        const [c0, c1] = [before.cpu[n], after.cpu[n]]
        const [v0, v1] = [before.views[n], after.views[n]]
        return {
          throughput: ops / seconds,
          usPerPut: c0 === undefined || c1 === undefined || ops <= 0 ? null : ((c1 - c0) / ops) * 1e6,
          views: v0 === null || v1 === null ? null : v1 - v0,
        }
      }
      const [a, b] = [node(0), node(1)]
      windows.push({
        target,
        throughput: [a.throughput, b.throughput],
        usPerPut: [a.usPerPut, b.usPerPut],
        viewsEncoded: [a.views, b.views],
        fewestEvents,
      })
      progress.note(
        `console: window ${i + 1}/${2 * o.pairs + 1} on node ${target + 1} ` +
          `${Math.round(a.throughput).toLocaleString('en-US')} / ${Math.round(b.throughput).toLocaleString('en-US')} ops/s`,
      )
      before = after
    }
  } finally {
    streams?.close()
  }
}

/**
 * Left in a window after its streams are closed, so that the node's work
 * of letting them go (the closes, its watcher stopping) is charged to the
 * window's consoles. The node sees the closes within a turn of its event
 * loop; the watcher's metric checks that nothing ran on into the next
 * window, where the streams are on the other node.
 */
const CLOSE_GRACE_MS = 200

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

/** Ratios as changes in %: the median and its interval, a line that says so, and a short one (median, interval). */
function summarize(ratios: number[]): {
  pairs: number
  median: number | null
  low: number | null
  high: number | null
  text: string
  short: string
} {
  const sign = (x: number) => `${x >= 0 ? '+' : ''}${round(x, 2)}%`
  if (ratios.length === 0) return { pairs: 0, median: null, low: null, high: null, text: 'no pairs', short: 'no pairs' }
  const changes = ratios.map((r) => (r - 1) * 100)
  const m = medianInterval(changes)
  const sorted = [...changes].sort((a, b) => a - b)
  const bounds = m.low === null || m.high === null ? null : `${sign(m.low)} .. ${sign(m.high)}`
  const interval =
    bounds === null || m.coverage === null
      ? 'too few pairs for a 95% interval'
      : `${Math.round(m.coverage * 1000) / 10}% interval ${bounds}`
  return {
    pairs: ratios.length,
    median: m.median,
    low: m.low,
    high: m.high,
    text: `${sign(m.median)}, ${interval}, pairs from ${sign(sorted[0])} to ${sign(sorted[sorted.length - 1])}`,
    short: `${sign(m.median)} (${bounds ?? 'no interval'}, ${ratios.length} pairs)`,
  }
}

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
