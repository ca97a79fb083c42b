/**
 * Paired windows: one load runs throughout while a condition (consoles
 * open, say) is switched on and off in alternating windows, off first and
 * last: off, on, off, on, ..., off. Each "on" window is compared with the
 * mean of the two "off" windows either side of it, so that drift on the
 * machine that is slow beside a window (a neighbour's build, LevelDB's
 * compactions, a node warming up) falls on both sides of the ratio, and a
 * steady trend cancels out.
 *
 * The ratios are summed up by their median and a distribution-free
 * confidence interval for it (order statistics of the binomial: no
 * assumption about how the ratios spread, which on a shared machine is
 * neither normal nor symmetric).
 */

/** Per "on" window, its value over the mean of the "off" windows beside it. `values` alternate off, on, ..., off. */
export function adjacentRatios(values: number[]): number[] {
  const out: number[] = []
  for (let i = 1; i + 1 < values.length; i += 2) {
    const off = (values[i - 1] + values[i + 1]) / 2
    if (off > 0) out.push(values[i] / off)
  }
  return out
}

/** Which of two nodes a window's condition was on (0 or 1); the other is the control. */
export type Node2 = 0 | 1

/**
 * Paired windows on two identical nodes under the same load at once, the
 * condition on one of them (the target) in each on window and never on the
 * other (the control). `values[i]` is window i's figure on each node; `targets[k]`
 * the target of the k-th on window (window 2k + 1).
 *
 * controlled: per on window, target / control in it over the mean of target
 * / control in the off windows beside it. What moves both nodes alike (the
 * machine changing speed under them, a stall of the harness that drives
 * both) cancels within each window, which pairing in time alone cannot do
 * when the machine changes speed from one window to the next. A node
 * steadily faster than the other cancels between the windows.
 * Otherwise (raw): the target's own figure, as adjacentRatios does.
 */
export function targetRatios(
  values: readonly (readonly [number, number])[],
  targets: readonly Node2[],
  controlled: boolean,
): { ratio: number; target: Node2 }[] {
  const out: { ratio: number; target: Node2 }[] = []
  for (let i = 1, k = 0; i + 1 < values.length && k < targets.length; i += 2, k++) {
    const t = targets[k]
    const v = (w: number) => (controlled ? values[w][t] / values[w][1 - t] : values[w][t])
    const [before, on, after] = [v(i - 1), v(i), v(i + 1)]
    const off = (before + after) / 2
    if (Number.isFinite(on) && Number.isFinite(off) && off > 0) out.push({ ratio: on / off, target: t })
  }
  return out
}

interface MedianInterval {
  median: number
  /** Bounds of the interval, or null when there are too few values for one at this confidence. */
  low: number | null
  high: number | null
  /** The interval's actual coverage (order statistics give a few levels only), e.g. 0.957. */
  coverage: number | null
}

/**
 * The median of `values` and the narrowest interval of order statistics
 * [x(k), x(n+1-k)] that covers the true median with at least `confidence`.
 */
export function medianInterval(values: number[], confidence = 0.95): MedianInterval {
  if (values.length === 0) throw new RangeError('medianInterval: no values')
  const sorted = [...values].sort((a, b) => a - b)
  const n = sorted.length
  const mid = (n - 1) / 2
  const median = (sorted[Math.floor(mid)] + sorted[Math.ceil(mid)]) / 2
  // P(Binomial(n, 1/2) <= j), summed up term by term.
  const tail = (j: number) => {
    let term = 0.5 ** n
    let sum = term
    for (let i = 1; i <= j; i++) {
      term = (term * (n - i + 1)) / i
      sum += term
    }
    return sum
  }
  let k = 0
  while (k + 1 <= n / 2 && 2 * tail(k) <= 1 - confidence) k++
  if (k === 0) return { median, low: null, high: null, coverage: null }
  return { median, low: sorted[k - 1], high: sorted[n - k], coverage: 1 - 2 * tail(k - 1) }
}
