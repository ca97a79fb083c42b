import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { expect } from 'vitest'
import { type CliResult, runNodeBin } from '../helpers/cli.js'
import { REPO_ROOT } from '../helpers/node-process.js'

const BENCH_BIN = join(REPO_ROOT, 'packages/bench/bin/tandem-bench.js')

// biome-ignore lint/suspicious/noExplicitAny: a report is checked field by field by its tests
export type Json = any

interface BenchOptions {
  env?: Record<string, string>
  /** How long the run may take before it is killed. */
  timeoutMs?: number
}

/** Runs tandem-bench with `args`. */
export function bench(args: string[], options: BenchOptions = {}): Promise<CliResult> {
  return runNodeBin(BENCH_BIN, args, options.env ?? {}, options.timeoutMs ?? 110_000)
}

/**
 * Runs `tandem-bench LINE EXTRA... --json JSON` (LINE's words split on
 * spaces, EXTRA as given: file paths), expects it to exit 0, and returns
 * the run and the report it wrote.
 */
export async function benchReport(
  json: string,
  line: string,
  extra: string[] = [],
  options: BenchOptions = {},
): Promise<{ run: CliResult; report: Json }> {
  const run = await bench([...line.split(' '), ...extra, '--json', json], options)
  expect(run.code, run.stderr).toBe(0)
  return { run, report: JSON.parse(readFileSync(json, 'utf8')) }
}
