import { describe, expect, it } from 'vitest'
import { splitThreads } from './proc.js'

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
