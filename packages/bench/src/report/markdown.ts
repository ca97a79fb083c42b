import type { BenchReport, TargetResult } from './result.js'
import { cpuPerOpCell, layout, RAW_HEADER, ratioLines, rawRows, suiteLines } from './table.js'

const n = (x: number) => x.toLocaleString('en-US')
const ms = (x: number) => x.toFixed(x < 10 ? 2 : 1)

/** Where the run came from, in one line: when, on which commit, on what machine and how busy it was. */
function provenanceLine(report: BenchReport): string {
  const m = report.machine
  const git = report.git
  const code = git
    ? `commit ${git.commit.slice(0, 7)}${git.dirty ? ` with uncommitted changes (${git.changes.length} paths, listed in the JSON)` : ''}`
    : 'commit not recorded'
  const load = (l: number[] | undefined) => (l ? l[0].toFixed(2) : '?')
  return (
    `Run ${report.startedAt.slice(0, 16).replace('T', ' ')} UTC on ${code}; ${m.cores} cores (${m.cpuModel}), ` +
    `1-minute load ${load(m.loadAverage)} at the start and ${load(m.loadAverageAtEnd)} at the end; ` +
    `Node ${m.nodeVersion}${m.redisVersion ? `, Redis ${m.redisVersion}` : ''}.`
  )
}

const SCENARIO_HEADER = [
  'scenario',
  'target',
  'ops/s',
  'p50 ms',
  'p99 ms',
  'server cores',
  'server µs/op',
  'peak RSS MB',
]

function scenarioRows(report: BenchReport): string[][] {
  const rows: string[][] = []
  for (const s of report.scenarios) {
    for (const t of Object.values(s.targets) as TargetResult[]) {
      rows.push([
        s.name,
        t.harness.cpuBound ? `${t.target} (harness CPU-bound)` : t.target,
        n(t.throughput),
        ms(t.latencyMs.p50),
        ms(t.latencyMs.p99),
        t.servers.map((sv) => (sv.cpuCores === null ? '-' : sv.cpuCores.toFixed(2))).join(' / ') || '-',
        cpuPerOpCell(t),
        t.servers.map((sv) => (sv.peakRssMB === null ? '-' : String(Math.round(sv.peakRssMB)))).join(' / ') || '-',
      ])
    }
  }
  return rows
}

/** Replication lag, one line per scenario and target (its replicas joined). */
function lagSummaries(report: BenchReport): string[] {
  const out: string[] = []
  for (const s of report.scenarios) {
    for (const t of Object.values(s.targets) as TargetResult[]) {
      const lags = (t.replicationLag ?? []).map((r) =>
        r.lagMs ? `${ms(r.lagMs.p50)} / ${ms(r.lagMs.p99)}` : 'none seen',
      )
      if (lags.length) out.push(`${s.name}, ${t.target}: replication lag p50 / p99 ${lags.join('; ')} ms`)
    }
  }
  return out
}

const CHECK_HEADER = ['figure (id)', 'measured', 'wanted', 'met']

/**
 * One run as a section of BENCHMARKS.md, to paste in place of the suite's
 * previous one: where it came from, the command, its scenarios, and each
 * figure the issues set a target for, under its stable id. Per-round and
 * per-pass detail stays in the JSON.
 */
export function renderMarkdown(report: BenchReport, jsonPath: string, chartPath?: string): string {
  const name = jsonPath.replace(/^.*\//, '').replace(/\.json$/, '')
  const lines = [
    `### ${name}`,
    '',
    `${provenanceLine(report)} JSON: \`${jsonPath}\`.`,
    '',
    '```',
    report.commandLine,
    '```',
    '',
  ]
  if (report.rawLevelDb) lines.push(layout(RAW_HEADER, rawRows(report.rawLevelDb), true), '')
  const rows = scenarioRows(report)
  if (rows.length) lines.push(layout(SCENARIO_HEADER, rows, true), '')
  const notes = [
    ...ratioLines(report),
    ...lagSummaries(report),
    ...suiteLines(report).filter((l) => !l.startsWith('  ')),
  ]
  if (notes.length) lines.push(...notes.map((l) => `- ${l}`), '')
  if (report.checks.length) {
    const checkRows = report.checks.map((c) => [
      `${c.name} (\`${c.id}\`)`,
      c.measured === null ? '-' : `${n(c.measured)} ${c.unit}`,
      c.target === '-' ? '-' : `${c.target} ${c.unit}`,
      c.met === null ? '-' : c.met ? 'yes' : 'NO',
    ])
    lines.push(layout(CHECK_HEADER, checkRows, true), '')
  }
  if (chartPath) lines.push(`![throughput and latency](${chartPath})`, '')
  return `${lines.join('\n')}\n`
}
