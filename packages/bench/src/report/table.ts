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

export function resultRows(report: BenchReport): string[][] {
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
        t.servers.map((sv) => (sv.peakRssMB === null ? '-' : String(Math.round(sv.peakRssMB)))).join(' / ') || '-',
        t.commit ? String(t.commit.avgGroupSize) : '-',
      ])
    }
  }
  return rows
}

export const RESULT_HEADER = [
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
  'peak RSS MB',
  'avg group',
]

export function ratioLines(report: BenchReport): string[] {
  return report.scenarios
    .filter((s) => s.ratios)
    .map(
      (s) =>
        `${s.name}: tandem/redis throughput ${s.ratios!.throughput}x, p50 ${s.ratios!.p50}x, ` +
        `p99 ${s.ratios!.p99}x, p99.9 ${s.ratios!.p999}x`,
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

export function lagLines(report: BenchReport): string[] {
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
