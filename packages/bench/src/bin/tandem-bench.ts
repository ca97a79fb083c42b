import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, relative, resolve } from 'node:path'
import { liveTopologies, runBench } from '../bench.js'
import { parseOptions, USAGE, UsageError } from '../options.js'
import { renderChart } from '../report/chart.js'
import { conflictPoints, renderConflictChart } from '../report/conflict-chart.js'
import { renderMarkdown } from '../report/markdown.js'
import { defaultJsonPath, REPO_ROOT } from '../report/result-file.js'
import { renderText } from '../report/table.js'
import { TargetUnavailable } from '../topology/topology.js'

/** Exit status: 0 done, 1 failed, 2 bad usage, 3 a target is unavailable (e.g. no redis-server). */

const argv = process.argv.slice(2)
const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)
const commandLine = `tandem-bench ${argv.map(quote).join(' ')}`

async function main(): Promise<number> {
  let options: ReturnType<typeof parseOptions>
  try {
    options = parseOptions(argv)
  } catch (err) {
    if (err instanceof UsageError) {
      if (err.message === 'help') {
        process.stdout.write(USAGE)
        return 0
      }
      process.stderr.write(`error INVALID: ${err.message}\n(tandem-bench --help for usage)\n`)
      return 2
    }
    throw err
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: stopping the servers tandem-bench started\n`)
      void Promise.all([...liveTopologies].map((t) => t.close())).finally(() => process.exit(130))
    })
  }
  try {
    const report = await runBench(options, commandLine)
    process.stdout.write(`\n${renderText(report)}`)
    const json = resolve(options.json ?? defaultJsonPath(options))
    await mkdir(dirname(json), { recursive: true })
    await writeFile(json, `${JSON.stringify(report, null, 2)}\n`)
    process.stderr.write(`wrote ${json}\n`)
    if (options.chart) {
      // The multimaster suite's figure is its conflict rate by masters and link latency.
      const chart = conflictPoints(report).length > 0 ? renderConflictChart(report) : renderChart(report)
      await writeFile(options.chart, chart)
    }
    if (options.markdown) {
      // Paths as BENCHMARKS.md, at the repository root, links them.
      const fromRoot = (file: string) => {
        const path = relative(REPO_ROOT, resolve(file))
        return path.startsWith('..') ? resolve(file) : path
      }
      const chart = options.chart ? fromRoot(options.chart) : undefined
      process.stdout.write(`\n${renderMarkdown(report, fromRoot(json), chart)}`)
    }
    return 0
  } catch (err) {
    if (err instanceof TargetUnavailable) {
      process.stderr.write(`error UNAVAILABLE: ${err.message}\n`)
      return 3
    }
    process.stderr.write(`error: ${(err as Error).stack ?? err}\n`)
    return 1
  }
}

main().then((code) => process.exit(code))
