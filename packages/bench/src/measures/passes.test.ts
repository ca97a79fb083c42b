import { spawn } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { abbaOrder, allIdle, describeSpread, median, passRatios, settle, spreadOf } from './passes.js'

describe('abbaOrder', () => {
  it('runs A first in even passes and B first in odd ones: A B, B A, A B, B A', () => {
    expect([0, 1, 2, 3].map((p) => abbaOrder(p).join(''))).toEqual(['01', '10', '01', '10'])
  })
})

describe('median and spreadOf', () => {
  it('takes the middle value, or the mean of the middle two, of the finite values only', () => {
    expect(median([3, 1, 2])).toBe(2)
    expect(median([4, 1, 3, 2])).toBe(2.5)
    expect(median([null, 5, undefined, Number.NaN])).toBe(5)
    expect(median([])).toBeNull()
    expect(median([null])).toBeNull()
  })

  it('gives the median with the range and how many values it is over', () => {
    expect(spreadOf([0.62, 0.92, null, 0.8])).toEqual({ median: 0.8, min: 0.62, max: 0.92, count: 3 })
    expect(spreadOf([undefined])).toBeNull()
  })

  it('writes a spread as "median (range min-max)", and a single value alone', () => {
    expect(describeSpread({ median: 0.8, min: 0.62, max: 0.92, count: 3 })).toBe('0.8 (range 0.62-0.92)')
    expect(describeSpread({ median: 45608.4, min: 36492, max: 45608.4, count: 2 }, 0)).toBe(
      '45,608 (range 36,492-45,608)',
    )
    expect(describeSpread({ median: 1.5, min: 1.5, max: 1.5, count: 1 }, 1, ' s')).toBe('1.5 s')
    expect(describeSpread(null)).toBe('-')
  })
})

describe('passRatios', () => {
  it("divides each pass's A by the same pass's B, keeping a missing pass's place", () => {
    expect(passRatios([40, 30, null, 10], [50, 60, 20, 0])).toEqual([0.8, 0.5, null, null])
  })
})

describe('allIdle', () => {
  it('holds when every process used less than the share of a core over the window', () => {
    // 0.01 and 0.02 CPU seconds over 0.5 s: 0.02 and 0.04 cores, below 0.05.
    expect(allIdle([1, 2], [1.01, 2.02], 0.5, 0.05)).toBe(true)
    // The second used 0.1 s over 0.5 s (0.2 cores): a compaction still running.
    expect(allIdle([1, 2], [1.01, 2.1], 0.5, 0.05)).toBe(false)
  })

  it('does not wait for a process it cannot read', () => {
    expect(allIdle([1, undefined], [1, 3], 0.5, 0.05)).toBe(true)
    expect(allIdle([1, 2], [1, undefined], 0.5, 0.05)).toBe(true)
  })
})

describe('settle', () => {
  it('resolves settled for processes that use no CPU, reading their CPU from /proc', async () => {
    const child = spawn('sleep', ['60'], { stdio: 'ignore' })
    try {
      const pid = child.pid as number
      const s = await settle([pid], { windowMs: 100, timeoutMs: 30_000 })
      expect(s.settled).toBe(true)
    } finally {
      child.kill()
    }
  })

  it('does not wait for a pid that has ended', async () => {
    const child = spawn('true', [], { stdio: 'ignore' })
    const pid = child.pid as number
    await new Promise((resolve) => child.on('exit', resolve))
    expect((await settle([pid], { windowMs: 50, timeoutMs: 30_000 })).settled).toBe(true)
  })
})
