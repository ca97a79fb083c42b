/**
 * Paired windows in a crossover: two like nodes (A and B) run the same load
 * at once, and a condition (consoles open, say) is on exactly ONE of them in
 * every window, the two taking turns: A, B, A, B, ..., A. The machine, and
 * the harness that drives both loads, carry the condition's work in every
 * window; only which node serves it changes.
 *
 * In window w let d(w) = log(A's figure / B's figure). With the condition
 * costing A a fraction cA and B a fraction cB, d is log(1 - cA) above its
 * level while A has it and -log(1 - cB) while B has it. So across two
 * adjacent windows d(on A) - d(on B) = log(1 - cA) + log(1 - cB), about
 * -(cA + cB): what moves both nodes alike (the machine changing speed, a
 * stall of the harness) cancels within each window, and a node steadily
 * faster than the other cancels between them. Assuming the two nodes pay
 * the same (they are started alike and take turns), each node's cost is
 * half of it. Each node's own figure, without the other as a reference
 * (its windows with the condition against its windows without), is kept
 * as the check of that assumption: each should match the half, give or
 * take the machine's swing, which it does not cancel.
 *
 * Each window on B is taken against both on-A windows beside it (the mean of
 * the two adjacent pairs), so that a steady trend in d cancels too. The
 * estimates are summed up by their median and a distribution-free
 * confidence interval for it (order statistics of the binomial: no
 * assumption about how the estimates spread, which on a shared machine is
 * neither normal nor symmetric).
 */

/** Which of the two nodes (A = 0, B = 1) a window's condition was on. */
export type Node2 = 0 | 1

/** One crossover estimate, each as a ratio (0.99: the condition cost 1%). */
interface CrossoverEstimate {
  /** The per-node ratio from both nodes, half of log(ratio on A) - log(ratio on B). */
  perNode: number
  /** Each node's own figure with the condition over its figure without (no reference node). */
  own: [number, number]
}

/**
 * Per window i that lies between two windows of the other target (the
 * middle of B, A, B or A, B, A), the crossover estimate of those three
 * windows. `values[w]` is window w's figure on each node, `targets[w]` the
 * node the condition was on in it. Windows with a figure not positive and
 * finite, or not in turn, give no estimate.
 */
export function crossoverEstimates(
  values: readonly (readonly [number, number])[],
  targets: readonly Node2[],
): CrossoverEstimate[] {
  const out: CrossoverEstimate[] = []
  const usable = (w: number) => values[w].every((v) => Number.isFinite(v) && v > 0)
  for (let i = 1; i + 1 < values.length && i + 1 < targets.length; i += 2) {
    const on = targets[i]
    if (targets[i - 1] === on || targets[i + 1] === on || !usable(i - 1) || !usable(i) || !usable(i + 1)) continue
    // log of node n's figure in the middle window over the mean log of the two beside it.
    const lift = (n: Node2) => Math.log(values[i][n]) - (Math.log(values[i - 1][n]) + Math.log(values[i + 1][n])) / 2
    // Each node's own log change with the condition on it: + when the middle window is its own, - otherwise.
    const own = ([0, 1] as const).map((n) => (n === on ? lift(n) : -lift(n)))
    out.push({ perNode: Math.exp((own[0] + own[1]) / 2), own: [Math.exp(own[0]), Math.exp(own[1])] })
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
