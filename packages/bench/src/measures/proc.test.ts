import { describe, expect, it } from 'vitest'
import { cpuUsPerOp, splitThreads, totalCpuUsPerOp } from './proc.js'

describe('splitThreads', () => {
  it('splits the CPU used between two samples into the main thread, the busiest other thread and the rest', () => {
    const pid = 100
    const before = new Map([
      [100, 1.0],
      [101, 0.5],
      [102, 0.2],
    ])
    // Thread 103 started between the samples: all its time counts; 102 ended and counts for nothing.
    const after = new Map([
      [100, 2.0],
      [101, 1.3],
      [103, 0.3],
    ])
    expect(splitThreads(pid, before, after, 2)).toEqual({ main: 0.5, busiestOther: 0.4, rest: 0.15 })
  })
})

describe('cpuUsPerOp', () => {
  it('divides the CPU seconds used between two samples by the requests completed, in µs to 0.1', () => {
    // 1.08 cores over 8 s = 8.64 CPU seconds for 227,480 requests: 37.98 µs each.
    expect(cpuUsPerOp(10, 18.64, 227_480)).toBe(38)
    expect(cpuUsPerOp(3.5, 4.0, 100_000)).toBe(5)
    expect(cpuUsPerOp(0, 0.01, 3)).toBe(3333.3)
  })

  it('is null without both samples or without a completed request', () => {
    expect(cpuUsPerOp(undefined, 2, 100)).toBeNull()
    expect(cpuUsPerOp(1, undefined, 100)).toBeNull()
    expect(cpuUsPerOp(1, 2, 0)).toBeNull()
  })
})

describe('totalCpuUsPerOp', () => {
  it('sums every process of a target (master and replicas) before dividing', () => {
    // Master 2 s, replica 1 s of CPU over 100,000 requests: 30 µs per request for the topology.
    expect(totalCpuUsPerOp([1, 4], [3, 5], 100_000)).toBe(30)
  })

  it('is null when any process could not be read, or there is none', () => {
    expect(totalCpuUsPerOp([1, undefined], [3, 5], 100_000)).toBeNull()
    expect(totalCpuUsPerOp([], [], 100_000)).toBeNull()
    expect(totalCpuUsPerOp([1], [3, 5], 100_000)).toBeNull()
  })
})
