import { describe, expect, it } from 'vitest'
import { adjacentRatios, medianInterval } from './paired-windows.js'

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
