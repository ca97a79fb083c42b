import type { RawResult } from '../raw-leveldb.js'
import type { BenchReport, TargetResult } from './result.js'

/** Rows of cells laid out in aligned columns (text) or as a GitHub table (markdown). */
export function layout(header: string[], rows: string[][], markdown: boolean): string {
  if (markdown) {
    const line = (cells: string[]) => `| ${cells.join(' | ')} |`
    return [line(header), line(header.map((_, i) => (i === 0 || i === 1 ? '---' : '---:'))), ...rows.map(line)].join(
      '\n',
    )
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const fmt = (cells: string[]) =>
    cells
      .map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join('  ')
      .trimEnd()
  return [fmt(header), ...rows.map(fmt)].join('\n')
}

const n = (x: number) => x.toLocaleString('en-US')
const ms = (x: number) => x.toFixed(x < 10 ? 3 : 1)

/**
 * Server CPU per request in µs: each server process's figure joined by
 * ' / ' (master first), or '-' when none was measured.
 */
export function cpuPerOpCell(t: TargetResult): string {
  const each = t.servers.map((sv) => (sv.cpuUsPerOp == null ? '-' : sv.cpuUsPerOp.toFixed(1)))
  return each.some((x) => x !== '-') ? each.join(' / ') : '-'
}

function resultRows(report: BenchReport): string[][] {
  const rows: string[][] = []
  for (const s of report.scenarios) {
    for (const t of Object.values(s.targets) as TargetResult[]) {
      const l = t.latencyMs
      rows.push([
        s.name,
        t.target,
        n(t.throughput),
        ms(l.p50),
        ms(l.p90),
        ms(l.p99),
        ms(l.p999),
        ms(l.max),
        n(t.errors),
        `${t.harness.cpuCores.toFixed(2)}${t.harness.cpuBound ? ' (bound)' : ''}`,
        t.servers.map((sv) => (sv.cpuCores === null ? '-' : sv.cpuCores.toFixed(2))).join(' / ') || '-',
        cpuPerOpCell(t),
        t.servers.map((sv) => (sv.peakRssMB === null ? '-' : String(Math.round(sv.peakRssMB)))).join(' / ') || '-',
        t.commit ? String(t.commit.avgGroupSize) : '-',
      ])
    }
  }
  return rows
}

const RESULT_HEADER = [
  'scenario',
  'target',
  'ops/s',
  'p50 ms',
  'p90 ms',
  'p99 ms',
  'p99.9 ms',
  'max ms',
  'errors',
  'harness cores',
  'server cores',
  'server µs/op',
  'peak RSS MB',
  'avg group',
]

export function ratioLines(report: BenchReport): string[] {
  return [...tandemRatioLines(report), ...floorLines(report)]
}

/** The floor servers against Redis and tandem, and every pass with --repeat. */
function floorLines(report: BenchReport): string[] {
  const out: string[] = []
  for (const s of report.scenarios) {
    for (const [name, f] of Object.entries(s.floors ?? {})) {
      if (!f) continue
      const t = s.targets[name as 'floor' | 'floor-bare']
      out.push(
        `${s.name}: ${name}/redis throughput ${f.throughputVsRedis}x` +
          (f.serverCpuVsRedis == null
            ? ''
            : `, server CPU per request ${f.serverCpuVsRedis}x (${t?.serverCpuUsPerOp} / ${s.targets.redis?.serverCpuUsPerOp} µs)`) +
          (f.tandemCpuAboveUs == null ? '' : `; tandem spends ${f.tandemCpuAboveUs} µs a request above it`),
      )
    }
    if (s.floors) {
      // µs a request by thread: cores over requests a second.
      const us = (cores: number, t: TargetResult) => ((cores / t.throughput) * 1e6).toFixed(1)
      const each = (Object.values(s.targets) as TargetResult[]).flatMap((t) => {
        const split = t.servers[0]?.threads
        return split && t.throughput > 0
          ? [`${t.target} ${us(split.main, t)} / ${us(split.busiestOther, t)} / ${us(split.rest, t)}`]
          : []
      })
      if (each.length)
        out.push(`${s.name}, server µs a request by thread (main / busiest other / rest): ${each.join('; ')}`)
    }
    if (s.targetPasses) {
      const each = Object.entries(s.targetPasses).map(
        ([t, ps]) => `${t} ${(ps ?? []).map((p) => `${n(p.throughput)}/s ${p.serverCpuUsPerOp ?? '-'} µs`).join(', ')}`,
      )
      out.push(`${s.name}, passes (ABBA; median reported): ${each.join('; ')}`)
    }
  }
  return out
}

function tandemRatioLines(report: BenchReport): string[] {
  return report.scenarios
    .filter((s) => s.ratios)
    .map(
      (s) =>
        `${s.name}: tandem/redis throughput ${s.ratios!.throughput}x, p50 ${s.ratios!.p50}x, ` +
        `p99 ${s.ratios!.p99}x, p99.9 ${s.ratios!.p999}x` +
        (s.ratios!.serverCpuPerOp == null
          ? ''
          : `, server CPU per request ${s.ratios!.serverCpuPerOp}x ` +
            `(${s.targets.tandem?.serverCpuUsPerOp} / ${s.targets.redis?.serverCpuUsPerOp} µs)`),
    )
}

export function rawRows(raw: RawResult[]): string[][] {
  return raw.map((r) => [
    `batch ${r.batchSize}`,
    r.sync ? 'fsync' : 'no sync',
    n(r.entriesPerSec),
    n(r.batchesPerSec),
    ms(r.batchLatencyMs.p50),
    ms(r.batchLatencyMs.p99),
  ])
}

export const RAW_HEADER = ['raw LevelDB', 'sync', 'entries/s', 'batches/s', 'batch p50 ms', 'batch p99 ms']

function lagLines(report: BenchReport): string[] {
  const out: string[] = []
  for (const s of report.scenarios) {
    for (const t of Object.values(s.targets) as TargetResult[]) {
      for (const r of t.replicationLag ?? []) {
        out.push(
          `${s.name} ${t.target} replica ${r.replica}: ` +
            (r.lagMs
              ? `lag p50 ${r.lagMs.p50} ms, p99 ${r.lagMs.p99} ms, max ${r.lagMs.max} ms over ${r.samples} samples`
              : 'no sample reached the replica') +
            (r.missed ? ` (${r.missed} markers never seen within 5 s)` : ''),
        )
      }
    }
  }
  return out
}

/** The final report printed on stdout. */
export function renderText(report: BenchReport): string {
  const parts: string[] = []
  if (report.rawLevelDb) parts.push(layout(RAW_HEADER, rawRows(report.rawLevelDb), false))
  if (report.scenarios.length > 0 && report.scenarios.some((s) => Object.keys(s.targets).length > 0)) {
    parts.push(layout(RESULT_HEADER, resultRows(report), false))
  }
  const ratios = ratioLines(report)
  if (ratios.length) parts.push(ratios.join('\n'))
  const lag = lagLines(report)
  if (lag.length) parts.push(lag.join('\n'))
  const suites = suiteLines(report)
  if (suites.length) parts.push(suites.join('\n'))
  if (report.checks.length) parts.push(layout(CHECK_HEADER, checkRows(report), false))
  const bound = report.scenarios.flatMap((s) =>
    (Object.values(s.targets) as TargetResult[]).filter((t) => t.harness.cpuBound).map((t) => `${s.name} ${t.target}`),
  )
  if (bound.length) {
    parts.push(
      `warning: the harness was CPU-bound in ${bound.join(', ')}; those figures are the client's limit (try --workers N)`,
    )
  }
  return `${parts.join('\n\n')}\n`
}

/** Full-sync and fail-over figures, one line each (plus one per fail-over round). */
export function suiteLines(report: BenchReport): string[] {
  const out: string[] = []
  for (const s of report.scenarios) {
    const t = s.targets.tandem
    if (s.vsNoReplicas !== null && t) {
      out.push(
        `${s.name}: ${n(t.throughput)} ops/s = ${s.vsNoReplicas}x the 0-replica figure` +
          (s.passes ? ` (median of ${s.passes.map(n).join(', ')})` : ''),
      )
    }
    const f = t?.fullSync
    if (f) {
      out.push(
        `${s.name}: loaded at ${n(f.load.keysPerSec)} keys/s; full sync of ${n(f.keys)} keys (${f.dataMB} MB of keys+values) ` +
          `in ${n(f.syncMs)} ms = ${n(f.keysPerSec)} keys/s, ${f.mbPerSec} MB/s ` +
          `(snapshot transfer ${f.transferMs === null ? '-' : `${n(f.transferMs)} ms`}; spawn to caught up ${n(f.spawnToCaughtUpMs)} ms = ` +
          `${n(f.endToEndKeysPerSec)} keys/s; master's 'full sync sent' ${f.masterSent ? `${n(f.masterSent.ms)} ms` : '-'}); ` +
          `replica peak RSS ${f.replicaPeakRssMB} MB, master ${f.masterPeakRssMB} MB; ` +
          `CPU replica ${f.replicaCpuCores ?? '-'} / master ${f.masterCpuCores ?? '-'} cores`,
      )
      const r = f.redis
      if (r) {
        out.push(
          `${s.name}: Redis ${r.version} (${r.settings}) loaded at ${n(r.load.keysPerSec)} keys/s; ` +
            `REPLICAOF to synced in ${n(r.syncMs)} ms = ${n(r.keysPerSec)} keys/s, ${r.mbPerSec} MB/s; ` +
            `replica peak RSS ${r.replicaPeakRssMB} MB, master ${r.masterPeakRssMB} MB; ` +
            `CPU replica ${r.replicaCpuCores ?? '-'} / master ${r.masterCpuCores ?? '-'} cores; tandem / Redis ${f.vsRedis}x`,
        )
      }
    }
    const fo = t?.failover
    if (fo) {
      const sum = (x: typeof fo.downtimeMs) =>
        x ? `median ${n(x.p50)} ms, p90 ${n(x.p90)}, p99 ${n(x.p99)}, min ${n(x.min)}, max ${n(x.max)}` : '-'
      out.push(
        `${s.name}: kill to first acknowledged write ${sum(fo.downtimeMs)} over ${fo.downtimeMs?.count ?? 0} rounds` +
          (fo.unrecovered ? ` (${fo.unrecovered} rounds never recovered)` : ''),
      )
      out.push(`${s.name}: kill to 'became master' ${sum(fo.electionMs)}`)
      out.push(`${s.name}: restart to all 3 healthy and caught up ${sum(fo.rejoinMs)}`)
      for (const r of fo.rounds) {
        out.push(
          `  round ${r.round}: killed ${r.killed}, new master ${r.newMaster ?? '-'}: became master ${r.electionMs ?? '-'} ms, ` +
            `first ack ${r.downtimeMs ?? 'none'} ms, ${r.failedWrites} failed writes, rejoined as ${r.rejoinedAs ?? '-'} in ${r.rejoinMs ?? '-'} ms`,
        )
      }
      const c = fo.coldRestart
      if (c) {
        out.push(
          `cold restart of a master holding ${n(c.keys)} keys (${c.dataDirMB} MB data dir): kill to listening ${n(c.killToListeningMs)} ms ` +
            `(spawn to listening ${n(c.spawnToListeningMs)} ms), kill to first acknowledged write ${n(c.killToFirstAckMs)} ms`,
        )
      }
    }
  }
  return out
}

const CHECK_HEADER = ['target (issue)', 'measured', 'wanted', 'met']

function checkRows(report: BenchReport): string[][] {
  return report.checks.map((c) => [
    c.name,
    c.measured === null ? '-' : `${n(c.measured)} ${c.unit}`,
    c.target === '-' ? '-' : `${c.target} ${c.unit}`,
    c.met === null ? '-' : c.met ? 'yes' : 'NO',
  ])
}
