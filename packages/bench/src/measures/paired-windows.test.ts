import { describe, expect, it } from 'vitest'
import { adjacentRatios, medianInterval, targetRatios } from './paired-windows.js'

describe('paired windows', () => {
  it('compares each on window with the mean of the off windows beside it', () => {
    // off, on, off, on, off: a steady climb of 10 a window, and on windows 5% below the trend.
    const values = [100, 110 * 0.95, 120, 130 * 0.95, 140]
    expect(adjacentRatios(values).map((r) => Math.round(r * 1000) / 1000)).toEqual([0.95, 0.95])
  })

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

describe('paired windows on two nodes, one of them the control', () => {
  // The machine's speed in each window (it swings by 2x from one window to the next), applied to both nodes alike.
  const speed = [1, 0.5, 1.4, 0.7, 1.9, 0.6, 1.2, 0.5, 1]
  // Node 2 runs at 0.8 of node 1 throughout; the condition costs its target 1%.
  const base: [number, number] = [1000, 800]
  const targets = [0, 1, 0, 1] as const
  const values = speed.map((s, i) => {
    const target = i % 2 === 1 ? targets[(i - 1) / 2] : null
    return base.map((b, n) => b * s * (n === target ? 0.99 : 1)) as [number, number]
  })
  const round3 = (xs: { ratio: number }[]) => xs.map((x) => Math.round(x.ratio * 1000) / 1000)

  it('cancels what moves both nodes alike, and a node faster than the other, whichever node is the target', () => {
    const controlled = targetRatios(values, targets, true)
    expect(round3(controlled)).toEqual([0.99, 0.99, 0.99, 0.99])
    expect(controlled.map((x) => x.target)).toEqual([0, 1, 0, 1])
  })

  it('leaves the swing in the raw ratios, and shows none of the cost on the control', () => {
    // On window i against the off windows beside it: the machine's speed moves the figure, not the 1%.
    const swing = [1, 3, 5, 7].map((i) => speed[i] / ((speed[i - 1] + speed[i + 1]) / 2))
    const round = (xs: number[]) => xs.map((x) => Math.round(x * 1000) / 1000)
    expect(round3(targetRatios(values, targets, false))).toEqual(round(swing.map((x) => x * 0.99)))
    expect(round3(targetRatios(values, [1, 0, 1, 0], false))).toEqual(round(swing))
  })

  it('skips an on window whose off windows beside it did nothing', () => {
    const stalled: [number, number][] = [
      [0, 0],
      [10, 10],
      [0, 0],
    ]
    expect(targetRatios(stalled, [0], true)).toEqual([])
    expect(targetRatios(stalled, [0], false)).toEqual([])
  })
})
