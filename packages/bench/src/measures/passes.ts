import { performance } from 'node:perf_hooks'
import { cpuSeconds } from './proc.js'

/**
 * Two topologies measured in alternating passes (ABBA: A B, B A, A B, ...),
 * each pass's ratio taken from its two runs next to each other, so that the
 * shared machine's drift between passes falls on both sides of a ratio and
 * the order within a pass (the first run on a cold machine, the second
 * after the first's compactions) falls on each side every other pass.
 */

/** The order of the sides (0 = A, 1 = B) in pass `pass`: A B in even passes, B A in odd ones. */
export function abbaOrder(pass: number): [0, 1] | [1, 0] {
  return pass % 2 === 0 ? [0, 1] : [1, 0]
}

/** The median of the finite numbers given (the mean of the middle two for an even count); null if none. */
export function median(values: readonly (number | null | undefined)[]): number | null {
  const sorted = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b)
  if (sorted.length === 0) return null
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

interface Spread {
  median: number
  min: number
  max: number
  /** How many values it is taken over. */
  count: number
}

/** Median and range of the finite numbers given; null if none. */
export function spreadOf(values: readonly (number | null | undefined)[]): Spread | null {
  const ok = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v))
  const m = median(ok)
  if (m === null) return null
  return { median: m, min: Math.min(...ok), max: Math.max(...ok), count: ok.length }
}

/**
 * Per pass, a's figure over b's (both from that pass); a pass where either
 * is missing or not positive gives null, in its place, so that the list
 * stays aligned with the passes.
 */
export function passRatios(
  a: readonly (number | null | undefined)[],
  b: readonly (number | null | undefined)[],
): (number | null)[] {
  return a.map((x, i) => {
    const y = b[i]
    return typeof x === 'number' && typeof y === 'number' && x > 0 && y > 0 ? x / y : null
  })
}

/** "median (range min-max)" to `digits` decimals, or "-" when there is nothing. */
export function describeSpread(s: Spread | null, digits = 2, unit = ''): string {
  if (s === null) return '-'
  const f = (x: number) => x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 })
  return s.count > 1 ? `${f(s.median)}${unit} (range ${f(s.min)}-${f(s.max)})` : `${f(s.median)}${unit}`
}

/** Whether every process used less than `idleCores` of a core over a window, from CPU seconds before and after. */
export function allIdle(
  before: readonly (number | undefined)[],
  after: readonly (number | undefined)[],
  windowS: number,
  idleCores: number,
): boolean {
  return after.every((a, i) => {
    const b = before[i]
    // A process that cannot be read (ended, or not Linux) holds nothing up.
    return a === undefined || b === undefined || (a - b) / windowS < idleCores
  })
}

export interface Settled {
  settled: boolean
  ms: number
}

/**
 * Waits until every process in `pids` is idle: each below `idleCores` (default
 * 0.05) of a core over one `windowMs` window (default 500: /proc counts
 * CPU in 10 ms ticks), or `timeoutMs`
 * (default 15 s) passes. A run that follows another while that one's
 * LevelDBs still compact (or a lagging node still applies) shares the
 * cores with them: this starts each run on quiet servers.
 */
export async function settle(
  pids: readonly number[],
  opts: { idleCores?: number; windowMs?: number; timeoutMs?: number } = {},
): Promise<Settled> {
  const idleCores = opts.idleCores ?? 0.05
  const windowMs = opts.windowMs ?? 500
  const timeoutMs = opts.timeoutMs ?? 15_000
  const started = performance.now()
  const sample = () => Promise.all(pids.map((pid) => cpuSeconds(pid)))
  let before = await sample()
  let at = performance.now()
  for (;;) {
    await new Promise((r) => setTimeout(r, windowMs))
    const after = await sample()
    const now = performance.now()
    const ms = Math.round(now - started)
    if (allIdle(before, after, (now - at) / 1000, idleCores)) return { settled: true, ms }
    if (now - started >= timeoutMs) return { settled: false, ms }
    before = after
    at = now
  }
}
