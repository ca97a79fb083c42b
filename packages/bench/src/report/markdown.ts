import { appendFile } from 'node:fs/promises'
import { SUITE_WORKLOADS } from '../options.js'
import type { BenchReport } from './result.js'
import {
  CHECK_HEADER,
  checkRows,
  lagLines,
  layout,
  RAW_HEADER,
  RESULT_HEADER,
  ratioLines,
  rawRows,
  resultRows,
  suiteLines,
} from './table.js'

/** One run as a BENCHMARKS.md section: the command, the machine, the tables, the ratios. */
export function renderMarkdown(report: BenchReport, chartPath?: string): string {
  const m = report.machine
  const suitesOnly =
    report.scenarios.length > 0 &&
    report.scenarios.every((s) => (SUITE_WORKLOADS as readonly string[]).includes(s.workload))
  const lines = [
    `### ${report.startedAt.slice(0, 16).replace('T', ' ')} UTC: \`tandem-bench ${report.command}\``,
    '',
    '```',
    report.commandLine,
    '```',
    '',
    `Machine: ${m.cpuModel}, ${m.cores} cores, ${Math.round(m.memoryMB / 1024)} GiB, ${m.os}, Node ${m.nodeVersion}` +
      (m.redisVersion ? `, Redis ${m.redisVersion}` : '') +
      '.',
    `Settings: tandem --sync ${report.settings.sync}; ` +
      (suitesOnly ? '' : `Redis ${report.settings.redisPersistence}; ${report.settings.replicas} replica(s) each; `) +
      (report.settings.durationS !== null
        ? `${report.settings.durationS}s per scenario`
        : `${report.settings.requests} requests per scenario`) +
      ` after ${report.settings.warmupS}s warm-up; ` +
      (report.settings.workers ? `${report.settings.workers} worker threads.` : 'clients on the main thread.') +
      (report.settings.rate !== null ? ` Open loop at ${report.settings.rate} ops/s.` : '') +
      (report.settings.rounds !== null ? ` ${report.settings.rounds} fail-over rounds.` : ''),
    `Load average (1, 5, 15 min) at the start: ${report.machine.loadAverage.map((x) => x.toFixed(2)).join(', ')}` +
      (report.machine.loadAverageAtEnd
        ? `; at the end: ${report.machine.loadAverageAtEnd.map((x) => x.toFixed(2)).join(', ')}.`
        : '.'),
    '',
  ]
  if (report.rawLevelDb) lines.push(layout(RAW_HEADER, rawRows(report.rawLevelDb), true), '')
  if (report.scenarios.some((s) => Object.keys(s.targets).length > 0)) {
    lines.push(layout(RESULT_HEADER, resultRows(report), true), '')
    lines.push(
      'Scenario `W CxP` = workload W, C connections, P requests in flight on each. Latency in ms; ' +
        'harness/server cores = CPU used while measuring (one value per server process, master first); ' +
        "avg group = writes per LevelDB batch in tandem's group committer.",
      '',
    )
  }
  const ratios = ratioLines(report)
  if (ratios.length) lines.push(...ratios.map((r) => `- ${r}`), '')
  const lag = lagLines(report)
  if (lag.length) lines.push(...lag.map((r) => `- ${r}`), '')
  const suites = suiteLines(report)
  if (suites.length) lines.push(...suites.map((r) => (r.startsWith('  ') ? `  - ${r.trim()}` : `- ${r}`)), '')
  if (report.checks.length) lines.push(layout(CHECK_HEADER, checkRows(report), true), '')
  if (chartPath) lines.push(`![throughput and latency](${chartPath})`, '')
  return `${lines.join('\n')}\n`
}

export async function appendMarkdown(file: string, report: BenchReport, chartPath?: string): Promise<void> {
  await appendFile(file, `\n${renderMarkdown(report, chartPath)}`)
}
