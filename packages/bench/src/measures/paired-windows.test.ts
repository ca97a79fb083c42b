import { describe, expect, it } from 'vitest'
import { crossoverEstimates, medianInterval, type Node2 } from './paired-windows.js'

describe('paired windows', () => {
  it('gives the order-statistic interval of the median at 95%', () => {
    const values = Array.from({ length: 25 }, (_, i) => 25 - i) // 25 .. 1, unsorted on purpose
    const m = medianInterval(values)
    expect(m.median).toBe(13)
    // n = 25: ranks 8 and 18 (P(Binomial(25, 1/2) <= 7) = 0.0216).
    expect([m.low, m.high]).toEqual([8, 18])
    expect(Math.round((m.coverage ?? 0) * 1000)).toBe(957)
  })

  it('gives no interval when there are too few values for 95%', () => {
    // n = 5: even [min, max] covers the median only 1 - 2/32 = 93.75% of the time.
    expect(medianInterval([3, 1, 2, 5, 4])).toEqual({ median: 3, low: null, high: null, coverage: null })
    // n = 6: [min, max] covers 96.9%.
    const six = medianInterval([6, 1, 5, 2, 4, 3])
    expect([six.median, six.low, six.high]).toEqual([3.5, 1, 6])
  })
})

describe('crossover windows on two nodes, the condition on one of them in every window', () => {
  // The machine's speed in each window (it swings by 2x from one window to the next), applied to both nodes alike.
  const speed = [1, 0.5, 1.4, 0.7, 1.9, 0.6, 1.2, 0.5, 1]
  // The condition alternates A, B, A, ..., A; node B runs at 0.8 of node A throughout.
  const targets = speed.map((_, i) => (i % 2) as Node2)
  const windows = (cost: [number, number]) =>
    speed.map((s, i) => [1000, 800].map((b, n) => b * s * (n === targets[i] ? 1 - cost[n] : 1)) as [number, number])
  const round4 = (xs: number[]) => xs.map((x) => Math.round(x * 10_000) / 10_000)

  it('recovers a cost of 1% per node under a common 2x swing and a node faster than the other', () => {
    const estimates = crossoverEstimates(windows([0.01, 0.01]), targets)
    // --pairs 4: windows 1, 3, 5 and 7 (on B), each between two windows on A.
    expect(round4(estimates.map((e) => e.perNode))).toEqual([0.99, 0.99, 0.99, 0.99])
  })

  it('gives no change when the condition costs nothing, whatever the swing', () => {
    const estimates = crossoverEstimates(windows([0, 0]), targets)
    expect(estimates).toHaveLength(4)
    for (const e of estimates) expect(Math.abs(e.perNode - 1)).toBeLessThan(1e-12)
  })

  it("shares an unequal cost between the nodes, and leaves the swing in each node's own figure", () => {
    // 3% on A, 1% on B: per node the geometric mean of 0.97 and 0.99.
    const estimates = crossoverEstimates(windows([0.03, 0.01]), targets)
    expect(round4(estimates.map((e) => e.perNode))).toEqual(Array(4).fill(round4([Math.sqrt(0.97 * 0.99)])[0]))
    // A node's own figure (no reference) moves with the machine: window i (on B) against the mean log of its neighbours (on A).
    const swing = [1, 3, 5, 7].map((i) => speed[i] / Math.sqrt(speed[i - 1] * speed[i + 1]))
    expect(round4(estimates.map((e) => e.own[0]))).toEqual(round4(swing.map((x) => 0.97 / x)))
    expect(round4(estimates.map((e) => e.own[1]))).toEqual(round4(swing.map((x) => 0.99 * x)))
  })

  it('works with either node first', () => {
    const flipped = windows([0.01, 0.01]).map(([a, b]) => [b, a] as [number, number])
    const estimates = crossoverEstimates(
      flipped,
      targets.map((t) => (1 - t) as Node2),
    )
    expect(round4(estimates.map((e) => e.perNode))).toEqual([0.99, 0.99, 0.99, 0.99])
  })

  it('skips windows that did nothing or are not in turn', () => {
    const stalled: [number, number][] = [
      [0, 0],
      [10, 10],
      [10, 10],
    ]
    expect(crossoverEstimates(stalled, [0, 1, 0])).toEqual([])
    const same: [number, number][] = [
      [10, 10],
      [10, 10],
      [10, 10],
    ]
    expect(crossoverEstimates(same, [0, 0, 1])).toEqual([])
    expect(crossoverEstimates(same, [1, 0, 1])).toHaveLength(1)
  })
})
