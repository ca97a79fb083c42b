import { spawn } from 'node:child_process'
import { cpuSeconds } from '../measures/proc.js'
import type { LatencySummary } from './histogram.js'

/**
 * Debian's redis-benchmark (redis-tools), run as a child process against a
 * RESP port, and its report parsed. The same binary with the same flags
 * loads tandem's RESP port and Redis, so the two sides of a comparison
 * share one C load generator and differ only in the server.
 */
interface RedisBenchmarkRun {
  host: string
  port: number
  /** SET or GET. */
  test: 'set' | 'get'
  clients: number
  pipeline: number
  valueSize: number
  /** Keys are key:000000000000 .. key:(keys-1), chosen at random (-r). */
  keys: number
  requests: number
  /** redis-benchmark --threads: enough that the generator is not the limit. */
  threads: number
  authToken?: string
}

interface RedisBenchmarkResult {
  throughput: number
  ops: number
  elapsedS: number
  latencyMs: LatencySummary
  /** The command line, to reproduce the run. */
  commandLine: string
  /** CPU redis-benchmark used, in cores (sampled while it ran; 0 where /proc is missing). */
  generatorCores: number
}

export function redisBenchmarkArgs(r: RedisBenchmarkRun): string[] {
  const args = ['-h', r.host, '-p', String(r.port), '-t', r.test, '-c', String(r.clients), '-P', String(r.pipeline)]
  args.push('-d', String(r.valueSize), '-r', String(r.keys), '-n', String(r.requests), '--threads', String(r.threads))
  if (r.authToken) args.push('-a', r.authToken)
  return args
}

export async function runRedisBenchmark(r: RedisBenchmarkRun): Promise<RedisBenchmarkResult> {
  const args = redisBenchmarkArgs(r)
  let cpu = 0
  const started = performance.now()
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn('redis-benchmark', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    // Its CPU time, read until it exits (the last sample is within 100 ms of the end).
    const sampler = setInterval(() => {
      if (child.pid) void cpuSeconds(child.pid).then((s) => s !== undefined && (cpu = s))
    }, 100)
    child.on('exit', () => clearInterval(sampler))
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => {
      // Progress lines (\r-separated) are dropped as they come: a long run prints many.
      out += String(d).replace(/[^\n]*\r/g, '')
    })
    child.stderr.on('data', (d) => (err += d))
    child.on('error', reject)
    // 'close': its report read to the end ('exit' can come before the last of it).
    child.on('close', (code) => {
      if (code === 0) resolve(out)
      else reject(new Error(`redis-benchmark ${args.join(' ')} exited ${code}: ${err.trim() || out.slice(-500)}`))
    })
  })
  const parsed = parseRedisBenchmark(output)
  const wallS = Math.max(parsed.elapsedS, (performance.now() - started) / 1000)
  return {
    ...parsed,
    commandLine: `redis-benchmark ${args.join(' ')}`,
    generatorCores: Math.round((cpu / wallS) * 100) / 100,
  }
}

/**
 * Reads redis-benchmark's full report: "N requests completed in S seconds",
 * the "Latency by percentile distribution" lines ("99.900% <= 2.103
 * milliseconds") for the percentiles, and the summary's throughput, avg and max.
 */
export function parseRedisBenchmark(text: string): Omit<RedisBenchmarkResult, 'commandLine' | 'generatorCores'> {
  const completed = /(\d+) requests completed in ([\d.]+) seconds/.exec(text)
  const throughput = /throughput summary: ([\d.]+) requests per second/.exec(text)
  const summary =
    /avg\s+min\s+p50\s+p95\s+p99\s+max\s*\n\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)/.exec(
      text,
    )
  if (!completed || !throughput || !summary) throw new Error(`unexpected redis-benchmark output: ${text.slice(-800)}`)
  const start = text.indexOf('Latency by percentile distribution:')
  const end = text.indexOf('Cumulative distribution of latencies:')
  const points: [number, number][] = []
  for (const m of text.slice(start, end === -1 ? undefined : end).matchAll(/([\d.]+)% <= ([\d.]+) milliseconds/g)) {
    points.push([Number(m[1]), Number(m[2])])
  }
  const at = (p: number) => points.find(([pct]) => pct >= p)?.[1] ?? Number(summary[6])
  return {
    throughput: Math.round(Number(throughput[1])),
    ops: Number(completed[1]),
    elapsedS: Number(completed[2]),
    latencyMs: {
      p50: at(50),
      p90: at(90),
      p99: at(99),
      p999: at(99.9),
      max: Number(summary[6]),
      mean: Number(summary[1]),
    },
  }
}
