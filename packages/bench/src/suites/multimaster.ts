import { mkdtemp, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { TandemClient } from '@tandem/client'
import type { DriverSpec } from '../drivers/driver.js'
import { lagAnatomy, readTimelines, type SEGMENTS } from '../measures/lag-anatomy.js'
import { abbaOrder, describeSpread, median, passRatios, type Settled, settle, spreadOf } from '../measures/passes.js'
import { type GcFigure, stageWindow } from '../measures/write-stages.js'
import type { BenchOptions } from '../options.js'
import type { ProgressLine } from '../report/progress.js'
import type { ConflictPoint, ScenarioResult, TargetCheck, TargetResult } from '../report/result.js'
import { scenarioResult } from '../report/scenario-result.js'
import { runScenario, type Scenario } from '../scenario.js'
import { type PeerStatus, type PeersTopology, startPeers, statusOf } from '../topology/peers.js'
import { startTandem } from '../topology/tandem.js'
import type { Topology } from '../topology/topology.js'
import { waitFor } from '../wait.js'
import { round, sampleSummary } from './common.js'
import { worstLagP99 } from './replication.js'
import type { SuiteOutput } from './suite.js'

/**
 * Issue 11's multi-master figures, each in the same run as what it is
 * compared with:
 *
 * - aggregate put throughput of --master-counts masters (clients spread
 *   evenly over them) against one master with as many replicas, in ABBA
 *   passes (throughputPasses);
 * - peer lag at half of the 2-master saturation, open loop: markers put on
 *   each master in turn every --lag-interval ms (default: 1, or as many as
 *   make the markers a tenth of the writes offered), each timed from
 *   its acknowledgement to its event on a watch of the other master
 *   (MarkerLagProbe), thousands of samples a run; beside it its floor, the
 *   1 master of the throughput passes offered the same writes, its markers
 *   timed on its replica's watch (lagFloor);
 * - convergence time after healing a partition during which each of 2
 *   masters took --partition-writes puts;
 * - conflict rate (writes that arrived older than their key's value, over
 *   the writes each node applied) as masters grow and as the proxied links'
 *   latency grows (--link-latencies), on a --conflict-keys keyspace;
 * - --rounds SIGKILLs of one of 2 masters under load: kill to the first
 *   write acknowledged by the survivor to a client that was writing to the
 *   killed one, and acknowledged writes lost (the killed master's that had
 *   not reached the survivor).
 *
 * Beside the throughput passes, the half-saturation window and each
 * conflict-rate run: the entries frames the masters sent each other and
 * the entries a frame (peerFramesCheck).
 */

const scenario = (
  o: BenchOptions,
  name: string,
  replicas: number,
  t: TargetResult | null,
  extra: Partial<ScenarioResult> = {},
): ScenarioResult =>
  scenarioResult(o, {
    name,
    workload: 'multimaster',
    clients: o.clients[0],
    pipeline: o.pipeline[0],
    replicas,
    targets: t ? { tandem: t } : {},
    ...extra,
  })

async function withTopology<T extends Topology, R>(
  live: Set<Topology>,
  start: () => Promise<T>,
  body: (t: T) => Promise<R>,
): Promise<R> {
  const topology = await start()
  live.add(topology)
  try {
    return await body(topology)
  } finally {
    live.delete(topology)
    await topology.close()
  }
}

/** Passes of the throughput comparison when --repeat is not given: M S, S M, M S, S M. */
const MULTIMASTER_PASSES = 4

/**
 * Aggregate put throughput of the n masters against 1 master with n - 1
 * replicas, both up at once and taking turns in ABBA passes (n masters
 * first in even passes, 1 master first in odd ones; --repeat passes,
 * default MULTIMASTER_PASSES), with the same clients, pipeline, keys,
 * value size, --sync and write concern. Each run:
 *
 * - starts once every server of both topologies is idle (measures/passes.ts
 *   settle): the other side's LevelDB compactions and a lagging node's
 *   apply after its run would otherwise run in this one's window;
 * - warms up until the first node has committed --warmup-puts writes (an
 *   n-master node commits its peers' entries too, so both sides warm up on
 *   as many client writes): a node idle through the other side's run
 *   starts with its young generation shrunk (see the replicas suite);
 * - has no lag probe (its markers and polls would be load of their own);
 * - ends when every peer (replica) holds every write.
 *
 * Reported: the median of the passes' ratios, each from the pass's two
 * runs, with every pass's ratio; each side's median throughput and range;
 * the server CPU a write of every node summed, per pass, and its ratio;
 * each node's CPU a write, cores and main-thread wait for a core.
 */
async function throughputPasses(
  o: BenchOptions,
  n: number,
  multiTopology: PeersTopology,
  multiSpec: DriverSpec,
  single: Topology,
  progress: ProgressLine,
  scenarios: ScenarioResult[],
  checks: TargetCheck[],
): Promise<TargetResult> {
  const clients = o.clients[0]
  const pipeline = o.pipeline[0]
  const passes = o.repeat ?? MULTIMASTER_PASSES
  const sides = [
    {
      label: `${n} masters`,
      title: `${n} masters (writes spread)`,
      topology: multiTopology as Topology,
      spec: multiSpec,
      caughtUp: () => multiTopology.waitConverged(o.syncTimeout * 1000),
    },
    {
      label: `1 master + ${n - 1} replicas`,
      title: `1 master + ${n - 1} replicas`,
      topology: single,
      spec: { target: 'tandem', servers: [single.master], authToken: o.authToken, w: o.w, pipeline } as DriverSpec,
      caughtUp: () => single.waitForReplicas(o.syncTimeout * 1000),
    },
  ]
  const pids = [...multiTopology.processes, ...single.processes]
    .map((p) => p.pid)
    .filter((pid): pid is number => pid !== undefined)
  const counted = () => Promise.all(multiTopology.nodes.map((node) => statusOf(node.address, o.authToken)))
  const before = await counted()
  const runs: TargetResult[][] = [[], []]
  const order: string[] = []
  const loads: number[] = []
  const settles: Settled[] = []
  const gcs: GcFigure[][][] = [[], []]
  for (let pass = 0; pass < passes; pass++) {
    for (const side of abbaOrder(pass)) {
      const s = sides[side]
      settles.push(await settle(pids))
      loads.push(loadavg()[0])
      const name = `put ${clients}x${pipeline}, ${s.label}${passes > 1 ? `, pass ${pass + 1} of ${passes}` : ''}`
      // Every node's GC pauses over the measured window alone (their /metrics, scraped as it opens).
      const addresses = [s.topology.master, ...s.topology.replicas]
      let gcWindow: ReturnType<typeof stageWindow> | null = null
      runs[side].push(
        await runScenario('tandem', s.topology, s.spec, { name, workload: 'put', clients, pipeline }, o, progress, {
          lagProbe: false,
          warmupWrites: o.warmupPuts,
          onWindow: () => {
            gcWindow = stageWindow(addresses, o.authToken)
          },
        }),
      )
      const window = await (gcWindow ?? stageWindow(addresses, o.authToken)).then((w) => w.since())
      gcs[side].push(window.gc)
      await s.caughtUp()
    }
    order.push(
      abbaOrder(pass)
        .map((i) => (i === 0 ? 'M' : 'S'))
        .join(' '),
    )
  }
  const after = await counted()
  const delta = (field: 'received' | 'duplicates') =>
    after.reduce((sum, s, i) => sum + (s.multi?.[field] ?? 0) - (before[i].multi?.[field] ?? 0), 0)
  const received = delta('received')
  const duplicates = delta('duplicates')
  checks.push({
    id: `multimaster.duplicates.${n}`,
    name: `entries the ${n} masters received from peers that they already held, % of received (${duplicates} of ${received})`,
    measured: received > 0 ? round((duplicates / received) * 100, 2) : null,
    unit: '%',
    target: '-',
    met: null,
  })
  checks.push(peerFramesCheck(`multimaster.peerFrames.${n}`, `${n} masters at saturation, every pass`, before, after))
  // Each side reports its median-throughput run, with every pass's throughput and CPU beside it.
  const medians = runs.map((r) => [...r].sort((a, b) => a.throughput - b.throughput)[(r.length - 1) >> 1])
  sides.forEach((s, i) => {
    scenarios.push(
      scenario(o, `multimaster: put ${clients}x${pipeline}, ${s.title}`, i === 0 ? 0 : n - 1, medians[i], {
        passes: passes > 1 ? runs[i].map((r) => r.throughput) : null,
        targetPasses: {
          tandem: runs[i].map((r) => ({ throughput: r.throughput, serverCpuUsPerOp: r.serverCpuUsPerOp ?? null })),
        },
      }),
    )
  })
  const tp = runs.map((r) => r.map((x) => x.throughput))
  const cpu = runs.map((r) => r.map((x) => x.serverCpuUsPerOp ?? null))
  const ratios = passRatios(tp[0], tp[1])
  const ratio = median(ratios)
  const list = (xs: (number | null)[], digits: number) =>
    xs.map((x) => (x === null ? '-' : x.toLocaleString('en-US', { maximumFractionDigits: digits }))).join(', ')
  const notSettled = settles.filter((x) => !x.settled).length
  const conditions =
    `1-minute load at the runs' starts ${describeSpread(spreadOf(loads), 1)}; ` +
    `servers idle before each run after ${describeSpread(spreadOf(settles.map((x) => x.ms / 1000)), 1, ' s')}` +
    (notSettled > 0 ? ` (${notSettled} runs started with a server still busy)` : '') +
    (runs.flat().some((r) => r.harness.cpuBound) ? '; harness CPU-bound in some runs' : '')
  checks.push({
    id: `multimaster.throughput.${n}`,
    name:
      `aggregate put throughput of ${n} masters / 1 master with ${n - 1} replicas, median of ${passes} passes' ratios ` +
      `(M = ${n} masters, S = 1 master; order by pass ${order.join(', ')}): by pass ${list(ratios, 2)}; ` +
      `puts/s by pass, ${n} masters ${list(tp[0], 0)} (median ${list([median(tp[0])], 0)}), ` +
      `1 master ${list(tp[1], 0)} (median ${list([median(tp[1])], 0)}); ${conditions}`,
    measured: ratio === null ? null : round(ratio, 2),
    unit: 'x',
    target: '>= 0.9',
    met: ratio === null ? null : ratio >= 0.9,
  })
  const cpuRatio = median(passRatios(cpu[0], cpu[1]))
  const perNode = (i: number) =>
    sides[i].topology.processes
      .map((p, k) => {
        const us = spreadOf(runs[i].map((r) => r.servers[k]?.cpuUsPerOp))
        const cores = spreadOf(runs[i].map((r) => r.servers[k]?.cpuCores))
        const main = spreadOf(runs[i].map((r) => r.servers[k]?.threads?.main))
        const wait = spreadOf(runs[i].map((r) => r.servers[k]?.mainWaitShare))
        return (
          `${p.role} ${describeSpread(us, 1, ' us')}, ${describeSpread(cores, 2)} cores ` +
          `(main thread ${describeSpread(main, 2)}, waiting for a core ${wait === null ? '-' : `${Math.round(wait.median * 100)}%`})`
        )
      })
      .join('; ')
  checks.push({
    id: `multimaster.serverCpu.${n}`,
    name:
      `server CPU a write, every node summed, ${n} masters / 1 master with ${n - 1} replicas, median of the passes' ratios ` +
      `(us by pass: ${n} masters ${list(cpu[0], 1)}, 1 master ${list(cpu[1], 1)}); ` +
      `each node's median a write and cores: ${n} masters: ${perNode(0)}; 1 master: ${perNode(1)}`,
    measured: cpuRatio === null ? null : round(cpuRatio, 2),
    unit: 'x',
    target: '-',
    met: null,
  })
  // A run that follows the other side's (its nodes idle meanwhile) against one that follows its own side's
  // run: the ratio of the passes with each side first, apart, shows what the order costs each side.
  const firstM = ratios.filter((_, p) => abbaOrder(p)[0] === 0)
  const firstS = ratios.filter((_, p) => abbaOrder(p)[0] === 1)
  // Minor and major pauses of every node in each run's window, and their time a 1,000 writes.
  const gcRuns = gcs.map((side, i) =>
    side.map((g, p) => {
      const count = (kind: string) => g.find((x) => x.kind === kind)?.pauses ?? 0
      const ms = g.reduce((sum, x) => sum + (x.kind === 'minor' || x.kind === 'major' ? x.totalMs : 0), 0)
      const ops = runs[i][p].ops
      return { minor: count('minor'), major: count('major'), msPer1000: ops > 0 ? (ms / ops) * 1000 : null }
    }),
  )
  const gcOf = (i: number) =>
    gcRuns[i].map((g) => `${g.minor}/${g.major} (${g.msPer1000 === null ? '-' : round(g.msPer1000, 2)} ms)`).join(', ')
  const gcMs = (i: number) => gcRuns[i].map((g) => g.msPer1000)
  const gcRatio = median(passRatios(gcMs(0), gcMs(1)))
  checks.push({
    id: `multimaster.gc.${n}`,
    name:
      `GC pauses in the window, every node summed, minor/major (their time a 1,000 writes) by pass: ${n} masters ${gcOf(0)}; 1 master ${gcOf(1)}; ` +
      `throughput ratio of the passes run ${n} masters first ${list(firstM, 2)}, 1 master first ${list(firstS, 2)}; ` +
      `measured: GC pause time a write, ${n} masters / 1 master, median of the passes' ratios`,
    measured: gcRatio === null ? null : round(gcRatio, 2),
    unit: 'x',
    target: '-',
    met: null,
  })
  return medians[0]
}

export async function multimasterSuite(
  o: BenchOptions,
  progress: ProgressLine,
  live: Set<Topology>,
): Promise<SuiteOutput> {
  const clients = o.clients[0]
  const pipeline = o.pipeline[0]
  const scenarios: ScenarioResult[] = []
  const checks: TargetCheck[] = []
  const peers =
    (masters: number, proxies = false, env?: Record<string, string>) =>
    () =>
      startPeers({ masters, conflict: 'lww', sync: o.sync, authToken: o.authToken, proxies, env })
  const put = (name: string, rate?: number): Scenario => ({ name, workload: 'put', clients, pipeline, rate })

  // ---- aggregate throughput, and peer lag at half of the 2-master saturation
  for (const n of o.masterCounts) {
    // The 2 masters of the peer-lag run trace the probe's markers (see measures/lag-anatomy.ts).
    const traceDir = n === 2 ? await mkdtemp(join(tmpdir(), 'tandem-bench-lag-')) : null
    const floorTraceDir = n === 2 ? await mkdtemp(join(tmpdir(), 'tandem-bench-lag-floor-')) : null
    const traceEnv =
      traceDir === null ? undefined : { TANDEM_KEY_TRACE_DIR: traceDir, TANDEM_KEY_TRACE_PREFIX: LAG_PREFIX }
    await withTopology(live, peers(n, false, traceEnv), async (t) => {
      const spec: DriverSpec = {
        target: 'tandem',
        servers: t.nodes.map((node) => node.address),
        authToken: o.authToken,
        w: o.w,
        pipeline,
        spread: true,
      }
      // Up through the peer-lag run too: its floor is this master's lag to its replica at the same rate,
      // traced as the masters are (its anatomy beside theirs).
      const single = await startTandem({
        replicas: n - 1,
        sync: o.sync,
        authToken: o.authToken,
        env:
          floorTraceDir === null
            ? undefined
            : { TANDEM_KEY_TRACE_DIR: floorTraceDir, TANDEM_KEY_TRACE_PREFIX: LAG_PREFIX },
      })
      live.add(single)
      try {
        const multi = await throughputPasses(o, n, t, spec, single, progress, scenarios, checks)
        const counted = () => Promise.all(t.nodes.map((node) => statusOf(node.address, o.authToken)))
        if (n !== 2) return
        await t.waitConverged(o.syncTimeout * 1000)
        // The probe's markers are writes too, and the load offers the rest of half the saturation. By
        // default they are at most a tenth of it: one a ms from 10,000 writes/s up, fewer on a slower machine.
        const halfRate = Math.max(1, Math.round(multi.throughput / 2))
        const markerMs = o.lagInterval ?? Math.max(1, Math.ceil(10_000 / halfRate))
        const markers = Math.round(1000 / markerMs)
        const rate = Math.max(1, halfRate - markers)
        const stages = await stageWindow(
          t.nodes.map((node) => node.address),
          o.authToken,
        )
        const holdsBefore = await counted()
        const half = await runScenario(
          'tandem',
          t,
          { ...spec, spread: true },
          put(`put @${rate}/s + ${markers} markers/s, 2 masters (half saturation)`, rate),
          o,
          progress,
          { lagIntervalMs: markerMs, peerLag: true, lagTraceDir: traceDir ?? undefined },
        )
        scenarios.push(
          scenario(
            o,
            `multimaster: put @${rate}/s + ${markers} lag markers/s on 2 masters (half saturation), peer lag`,
            0,
            half,
            {
              offeredRate: rate,
            },
          ),
        )
        const lag = half.replicationLag ?? []
        const samples = lag.reduce((sum, r) => sum + r.samples, 0)
        const missed = lag.reduce((sum, r) => sum + r.missed, 0)
        const p99 = worstLagP99(half)
        checks.push({
          id: 'multimaster.peerLagP99',
          name:
            `peer lag p99 at half of the 2-master saturation (${rate + markers} writes/s offered, ${markers} of them markers): ` +
            `a marker put every ${markerMs} ms on each master in turn, timed from its acknowledgement to its event on a watch of the other master; ` +
            `the worse direction's p99, ${samples} samples` +
            (missed > 0
              ? `, ${missed} of them markers not seen within 5 s, counted at their age then (a lower bound)`
              : ''),
          measured: p99 === null ? null : round(p99, 2),
          unit: 'ms',
          target: '< 10',
          met: p99 === null ? null : p99 < 10,
        })
        // Where that lag goes, for reading beside it (the servers' own timings; see measures/write-stages.ts).
        const window = await stages.since()
        for (const f of window.stages) {
          const ms = (x: number) => (Number.isFinite(x) ? `${x}` : '> 4096')
          checks.push({
            id: `multimaster.peerLagStage.${f.stage}`,
            name: `half saturation, both masters: stage ${f.stage}, p50 <= ${ms(f.p50Ms)} ms, p99 <= ${ms(f.p99Ms)} ms (${f.count} timed; bucket bounds)`,
            measured: Number.isFinite(f.p99Ms) ? f.p99Ms : null,
            unit: 'ms',
            target: '-',
            met: null,
          })
        }
        // What stopped the nodes' event loops meanwhile: a pause there holds every stage above at once.
        for (const g of window.gc) {
          checks.push({
            id: `multimaster.peerLagGc.${g.kind}`,
            name: `half saturation, both masters: ${g.kind} GC pauses, ${g.pauses} (${g.over10Ms} over 10 ms), total of their durations`,
            measured: g.totalMs,
            unit: 'ms',
            target: '-',
            met: null,
          })
        }
        // Links that stopped reading their peer's socket (too many of its frames in the committer): frames sent meanwhile waited.
        const holdsAfter = await counted()
        const holds = (field: 'count' | 'ms') =>
          holdsAfter.reduce(
            (sum, s, i) =>
              sum +
              (s.multi?.peers ?? []).reduce((a, p, j) => {
                const before = holdsBefore[i].multi?.peers[j]?.applyHolds?.[field] ?? 0
                return a + (p.applyHolds?.[field] ?? 0) - before
              }, 0),
            0,
          )
        checks.push({
          id: 'multimaster.peerLagApplyHeldMs',
          name: `half saturation, both masters: time peer links stopped reading their socket, more than peerMaxQueuedApply frames in the committer (${holds('count')} holds), in all`,
          measured: holds('ms'),
          unit: 'ms',
          target: '-',
          met: null,
        })
        checks.push(
          peerFramesCheck(
            'multimaster.peerLagFrames',
            'half saturation, both masters',
            holdsBefore,
            holdsAfter,
            half.durationS + o.warmup,
          ),
        )
        checks.push({
          id: 'multimaster.peerLagLoopMax',
          name: 'half saturation: longest event-loop delay of either master (its GC pauses, long tasks and time off the CPU)',
          measured: window.loopMaxMs,
          unit: 'ms',
          target: '-',
          met: null,
        })
        checks.push(await lagFloor(o, single, rate, markerMs, half, progress, scenarios, floorTraceDir))
      } finally {
        live.delete(single)
        await single.close()
      }
    })
    // The nodes write their traces as they exit (both topologies are closed by now).
    if (traceDir !== null) {
      checks.push(...anatomyChecks(traceDir, 'multimaster.peerLagAnatomy', 'the other master'))
      await rm(traceDir, { recursive: true, force: true })
    }
    if (floorTraceDir !== null) {
      checks.push(...anatomyChecks(floorTraceDir, 'multimaster.peerLagFloorAnatomy', 'the replica'))
      await rm(floorTraceDir, { recursive: true, force: true })
    }
  }

  // ---- convergence after a partition
  await withTopology(live, peers(2, true), async (t) => {
    const [a, b] = t.nodes.map((node) => node.address)
    await t.cutAll()
    progress.note(`multimaster: ${o.partitionWrites} puts on each side of a partition`)
    const started = performance.now()
    await Promise.all([
      putMany(a, o.partitionWrites, 'left', o, clients, pipeline),
      putMany(b, o.partitionWrites, 'right', o, clients, pipeline),
    ])
    const writeMs = performance.now() - started
    const healedAt = performance.now()
    await t.healAll()
    const ok = await t.waitConverged(120_000)
    const convergenceMs = ok ? round(performance.now() - healedAt, 1) : null
    scenarios.push(
      scenario(o, `multimaster: partition of 2 masters, ${o.partitionWrites} puts on each side, healed`, 0, null, {
        multimaster: { convergenceMs, partitionWrites: o.partitionWrites, writeMs: round(writeMs) },
      }),
    )
    checks.push({
      id: 'multimaster.convergenceMs',
      name: `heal to converged (equal version vectors and digests) after ${o.partitionWrites} puts on each side of a partition`,
      measured: convergenceMs,
      unit: 'ms',
      target: '< 2000',
      met: convergenceMs === null ? false : convergenceMs < 2000,
    })
  })

  // ---- conflict rate against masters and link latency
  const points: ConflictPoint[] = []
  for (const n of o.masterCounts) {
    await withTopology(live, peers(n, true), async (t) => {
      for (const latency of o.linkLatencies) {
        await t.setDelay(latency)
        await t.waitConverged(o.syncTimeout * 1000)
        const before = await Promise.all(t.nodes.map((node) => statusOf(node.address, o.authToken)))
        const spec: DriverSpec = {
          target: 'tandem',
          servers: t.nodes.map((node) => node.address),
          authToken: o.authToken,
          pipeline,
          spread: true,
        }
        const keys = o.conflictKeys
        const r = await runScenario(
          'tandem',
          t,
          spec,
          put(`put on ${keys} keys, ${n} masters, links +${latency} ms`),
          { ...o, keys },
          progress,
        )
        await t.waitConverged(o.syncTimeout * 1000)
        const after = await Promise.all(t.nodes.map((node) => statusOf(node.address, o.authToken)))
        const lost = after.reduce((sum, s, i) => sum + (s.multi?.lwwLost ?? 0) - (before[i].multi?.lwwLost ?? 0), 0)
        const writes = after[0].seq - before[0].seq
        const rate = writes > 0 ? round((lost / (writes * n)) * 100, 3) : null
        points.push({ masters: n, latencyMs: latency, conflictRatePct: rate, writes, lost })
        scenarios.push(
          scenario(o, `multimaster: put on ${keys} keys, ${n} masters, peer links +${latency} ms`, 0, r, {
            multimaster: { conflictRatePct: rate, latencyMs: latency, masters: n },
          }),
        )
        checks.push({
          id: `multimaster.conflicts.${n}.${latency}`,
          name: `conflict rate, ${n} masters, peer links +${latency} ms (${lost} writes arrived older than their key, of ${writes} writes on each node)`,
          measured: rate,
          unit: '%',
          target: '-',
          met: null,
        })
        // Whether a slower link carries fewer, fuller frames, beside the same run's throughput and CPU.
        const cpu = r.serverCpuUsPerOp ?? null
        checks.push(
          peerFramesCheck(
            `multimaster.conflictFrames.${n}.${latency}`,
            `${keys} keys, ${n} masters, peer links +${latency} ms (${Math.round(r.throughput)} puts/s, ${cpu ?? '-'} us of server CPU a put)`,
            before,
            after,
            r.durationS + o.warmup,
          ),
        )
      }
      await t.setDelay(0)
    })
  }
  if (points.length > 0) {
    scenarios.push(
      scenario(o, 'multimaster: conflict rate by masters and link latency', 0, null, { conflicts: points }),
    )
  }

  // ---- one master killed under load
  await withTopology(live, peers(2), async (t) => {
    const firstWrite: number[] = []
    let lostTotal = 0
    let failedTotal = 0
    for (let r = 1; r <= o.rounds; r++) {
      const round = await killRound(t, r, o)
      if (round.firstWriteMs !== null) firstWrite.push(round.firstWriteMs)
      lostTotal += round.lost
      failedTotal += round.failed
      progress.note(
        `multimaster kill ${r}: first write on the survivor ${round.firstWriteMs ?? '-'} ms, ${round.lost} lost, ${round.failed} failed`,
      )
    }
    const summary = sampleSummary(firstWrite)
    scenarios.push(
      scenario(o, `multimaster: ${o.rounds} SIGKILLs of one of 2 masters under load`, 0, null, {
        multimaster: { firstWriteMs: summary, lost: lostTotal, failed: failedTotal, rounds: o.rounds },
      }),
    )
    checks.push({
      id: 'multimaster.failover.firstWriteMs',
      name: `kill of one of 2 masters to the first write the survivor acknowledged to its clients, median of ${firstWrite.length} of ${o.rounds} kills`,
      measured: summary?.p50 ?? null,
      unit: 'ms',
      target: '< 500',
      met: summary === null ? false : summary.p50 < 500 && firstWrite.length === o.rounds,
    })
    checks.push({
      id: 'multimaster.failover.lost',
      name: `acknowledged writes (w: 0) the killed master held and the survivor never got, over ${o.rounds} kills`,
      measured: lostTotal,
      unit: 'writes',
      target: '-',
      met: null,
    })
  })
  return { scenarios, checks }
}

/**
 * The peer lag's floor on this machine, in the same run: the 1 master with
 * 1 replica of the throughput passes, offered the peer-lag run's puts/s
 * (`rate`, and as many markers), its markers put on the master and timed
 * on the replica's watch by the same probe. A replica's apply is the same
 * path as a peer's without what multi-master adds (the other node's client
 * writes, resolving, the digest, a second group stream a node), so the
 * peer lag over this is what multi-master costs; this itself is what the
 * machine's group commit, fsync and scheduling cost a hop.
 */
async function lagFloor(
  o: BenchOptions,
  single: Topology,
  rate: number,
  markerMs: number,
  peers: TargetResult,
  progress: ProgressLine,
  scenarios: ScenarioResult[],
  traceDir: string | null,
): Promise<TargetCheck> {
  await single.waitForReplicas(o.syncTimeout * 1000)
  const markers = Math.round(1000 / markerMs)
  const spec: DriverSpec = {
    target: 'tandem',
    servers: [single.master],
    authToken: o.authToken,
    w: o.w,
    pipeline: o.pipeline[0],
  }
  const stages = await stageWindow([single.master, ...single.replicas], o.authToken)
  const r = await runScenario(
    'tandem',
    single,
    spec,
    {
      name: `put @${rate}/s + ${markers} markers/s, 1 master + 1 replica (peer-lag floor)`,
      workload: 'put',
      clients: o.clients[0],
      pipeline: o.pipeline[0],
      rate,
    },
    o,
    progress,
    { lagIntervalMs: markerMs, peerLag: true, markersOnMaster: true, lagTraceDir: traceDir ?? undefined },
  )
  scenarios.push(
    scenario(o, `multimaster: put @${rate}/s + ${markers} lag markers/s on 1 master + 1 replica, replica lag`, 1, r, {
      offeredRate: rate,
    }),
  )
  const window = await stages.since()
  const stage = (name: string) => {
    const f = window.stages.find((x) => x.stage === name)
    const ms = (x: number) => (Number.isFinite(x) ? `${x}` : '> 4096')
    return f ? `${name} ${ms(f.p50Ms)} / ${ms(f.p99Ms)}` : `${name} -`
  }
  const gc = window.gc.map((g) => `${g.kind} ${g.pauses} (${g.over10Ms} over 10 ms) ${g.totalMs} ms`).join(', ')
  const lag = (r.replicationLag ?? []).find((x) => x.lagMs)
  const p99 = worstLagP99(r)
  // What each run cost its servers a write, and how long their main threads were ready to run but had no core:
  // at the same rate, the first is what the two paths cost, the second how much of either lag is the machine's.
  const share = (x: number | null | undefined) => (x === null || x === undefined ? '-' : `${Math.round(x * 100)}%`)
  const costs = (t: TargetResult) =>
    `${t.serverCpuUsPerOp ?? '-'} us, main threads waiting for a core ` +
    t.servers.map((s) => `${s.role} ${share(s.mainWaitShare)}`).join(', ')
  return {
    id: 'multimaster.peerLagFloor',
    name:
      `peer lag's floor, same run: 1 master + 1 replica offered the peer-lag run's ${rate + markers} writes/s ` +
      `(${Math.round(r.throughput)} done), a marker put on the master every ${markerMs} ms, timed from its acknowledgement ` +
      `to its event on a watch of the replica; p50 ${lag?.lagMs?.p50 ?? '-'} ms, ${lag?.samples ?? 0} samples; ` +
      `both nodes' stages p50 / p99 ms (bucket bounds) ${['remote_wait', 'remote_commit', 'write', 'watch_send'].map(stage).join(', ')}; ` +
      `GC pauses ${gc}; longest event-loop delay ${window.loopMaxMs ?? '-'} ms; server CPU a write, every node summed: ` +
      `1 master + 1 replica ${costs(r)}; 2 masters ${costs(peers)}`,
    measured: p99 === null ? null : round(p99, 2),
    unit: 'ms',
    target: '-',
    met: null,
  }
}

/** `count` puts to one node, `clients` connections with `pipeline` in flight each. */
async function putMany(
  address: string,
  count: number,
  prefix: string,
  o: BenchOptions,
  clients: number,
  pipeline: number,
): Promise<void> {
  const dbs = await Promise.all(
    [...Array(Math.max(1, Math.min(clients, 16))).keys()].map(() =>
      TandemClient.connect({ servers: [address], direct: true, authToken: o.authToken, timeoutMs: 30_000 }),
    ),
  )
  const value = Buffer.alloc(o.valueSize, 7)
  let next = 0
  try {
    await Promise.all(
      dbs.flatMap((db) =>
        [...Array(pipeline).keys()].map(async () => {
          for (let i = next++; i < count; i = next++) await db.put(`${prefix}-${i}`, value)
        }),
      ),
    )
  } finally {
    await Promise.all(dbs.map((db) => db.close()))
  }
}

/**
 * One kill: a writer per master (each a client given both masters, its own
 * first), SIGKILL of master 1 after a second of load, a second more, then
 * what the killed master acknowledged is looked for on the survivor.
 */
async function killRound(
  t: PeersTopology,
  r: number,
  o: BenchOptions,
): Promise<{ firstWriteMs: number | null; lost: number; failed: number }> {
  const [victim, survivor] = t.nodes
  const survivorId = (await statusOf(survivor.address, o.authToken)).multi?.origin
  const connect = (servers: string[]) =>
    TandemClient.connect({ servers, authToken: o.authToken, timeoutMs: 5000, connectTimeoutMs: 3000 })
  const onVictim = await connect([victim.address, survivor.address])
  const onSurvivor = await connect([survivor.address, victim.address])
  const ackedByVictim: string[] = []
  let failed = 0
  let killedAt = 0
  let firstWriteMs: number | null = null
  let stop = false
  const loop = async (db: TandemClient, tag: string, onKilled: boolean) => {
    let i = 0
    while (!stop) {
      const key = `kill-${r}-${tag}-${i++}`
      try {
        const result = await db.put(key, key)
        if (result.origin !== survivorId) ackedByVictim.push(key)
        else if (onKilled && killedAt > 0 && firstWriteMs === null) firstWriteMs = round(performance.now() - killedAt)
      } catch {
        failed++
      }
    }
  }
  const loops = [
    ...[...Array(4).keys()].map((k) => loop(onVictim, `v${k}`, true)),
    ...[...Array(4).keys()].map((k) => loop(onSurvivor, `s${k}`, false)),
  ]
  await new Promise((resolve) => setTimeout(resolve, 1000))
  killedAt = performance.now()
  await victim.kill('SIGKILL')
  await waitFor(() => firstWriteMs !== null || performance.now() - killedAt > 10_000, { timeoutMs: 15_000 })
  stop = true
  await Promise.all(loops)
  let lost = 0
  for (let i = 0; i < ackedByVictim.length; i += 5000) {
    const keys = ackedByVictim.slice(i, i + 5000)
    const present = await onSurvivor.mget(keys)
    lost += present.filter((v) => v === undefined).length
  }
  await Promise.all([onVictim.close(), onSurvivor.close()])
  await victim.start(30_000)
  await t.waitConverged(60_000)
  return { firstWriteMs, lost, failed }
}

/** The key prefix the 2 masters trace: every MarkerLagProbe marker's. */
const LAG_PREFIX = 'bench-lag:'

/**
 * A lag run's anatomy (measures/lag-anatomy.ts): for each segment of a
 * marker's way, its mean over the slowest 1% of markers (what makes the
 * p99), beside its mean over the middle ones and its own p99. The peer-lag
 * run's (`multimaster.peerLagAnatomy`, `receiver` the other master) and its
 * floor's (`multimaster.peerLagFloorAnatomy`, the replica) read alike.
 */
function anatomyChecks(traceDir: string, prefix: string, receiver: string): TargetCheck[] {
  let anatomy: ReturnType<typeof lagAnatomy>
  try {
    anatomy = lagAnatomy(readTimelines(traceDir))
  } catch {
    anatomy = null
  }
  if (anatomy === null) return []
  const checks: TargetCheck[] = [
    {
      id: `${prefix}.traced`,
      name:
        `half saturation: markers traced from their origin through ${receiver} (of ${anatomy.markers} acknowledged; ` +
        `${anatomy.dropped} trace lines dropped); their lag p99 (every direction together) ${anatomy.lagP99Ms} ms, ` +
        `${anatomy.top} markers at or above it`,
      measured: anatomy.traced,
      unit: 'markers',
      target: '-',
      met: null,
    },
  ]
  for (const s of anatomy.segments) {
    checks.push({
      id: `${prefix}.${s.segment}`,
      name:
        `half saturation, to ${receiver}: segment ${s.segment} (${SEGMENT_WORDS[s.segment]}): mean over the slowest 1% of markers; ` +
        `${s.midMeanMs} ms over the 40th-60th percentile, its own p99 ${s.p99Ms} ms`,
      measured: s.topMeanMs,
      unit: 'ms',
      target: '-',
      met: null,
    })
  }
  if (anatomy.sent !== null) {
    checks.push({
      id: `${prefix}.arriveSent`,
      name:
        `half saturation, to ${receiver}: arrive's first part, acknowledged to the frame holding the marker's group sent by its origin ` +
        `(negative: sent before the probe saw the acknowledgement; the rest of arrive is the frame's way and ${receiver}'s event loop), ` +
        `mean over the slowest 1%; ${anatomy.sent.midMeanMs} ms over the 40th-60th percentile; ${anatomy.sent.traced} markers told`,
      measured: anatomy.sent.topMeanMs,
      unit: 'ms',
      target: '-',
      met: null,
    })
  }
  return checks
}

const SEGMENT_WORDS: Record<(typeof SEGMENTS)[number], string> = {
  arrive: 'acknowledged on its origin to its frame read off the socket',
  inbox: 'read to queued to the committer',
  wait: 'queued to its group handed to LevelDB',
  write: "its group's LevelDB write",
  watch: 'written to the watch event sent',
  deliver: 'event sent to seen by the probe',
}

/**
 * The entries frames the masters' feeds sent each other between two
 * status reads, and the entries a frame (what the masters received from
 * peers over the frames sent), with the frames each link joined to the one
 * queued before them on arrival: what each peer frame's fixed costs (its
 * write and read, a task, a committer hand-off, an ack) were spread over.
 */
function peerFramesCheck(
  id: string,
  label: string,
  before: PeerStatus[],
  after: PeerStatus[],
  seconds?: number,
): TargetCheck {
  const sum = (statuses: PeerStatus[], of: (p: PeerStatus['multi'] & object) => number) =>
    statuses.reduce((total, s) => total + (s.multi ? of(s.multi) : 0), 0)
  const count = (statuses: PeerStatus[]) => ({
    frames: sum(statuses, (m) => m.peers.reduce((a, p) => a + (p.pulling?.frames ?? 0), 0)),
    joined: sum(statuses, (m) => m.peers.reduce((a, p) => a + (p.joinedFrames ?? 0), 0)),
    received: sum(statuses, (m) => m.received ?? 0),
  })
  const [b, a] = [count(before), count(after)]
  const frames = a.frames - b.frames
  const perSecond = seconds ? `, ${Math.round(frames / seconds).toLocaleString('en-US')} a second` : ''
  return {
    id,
    name: `${label}: entries frames sent between the masters, ${frames.toLocaleString('en-US')}${perSecond}, ${a.joined - b.joined} of them joined to the one before on arrival; entries received a frame`,
    measured: frames > 0 ? round((a.received - b.received) / frames, 1) : null,
    unit: 'entries',
    target: '-',
    met: null,
  }
}
