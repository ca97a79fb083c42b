import { describe, expect, it } from 'vitest'
import { SyncReadGate } from './sync-reads.js'

describe('SyncReadGate', () => {
  it('charges reads slower than slowMs to the window budget, and refuses reads once it is spent until the window ends', () => {
    let now = 100
    const gate = new SyncReadGate({ slowMs: 0.1, budgetMs: 10, windowMs: 1000, now: () => now })
    const read = (ms: number) => {
      const at = gate.begin()
      if (at === null) return false
      now += ms
      gate.done(at)
      return true
    }
    // Fast reads cost nothing, however many.
    for (let i = 0; i < 1000; i++) expect(read(0.05)).toBe(true)
    expect(gate.slowReads).toBe(0)
    // Slow ones spend the budget: 3 x 4 ms goes past 10 ms.
    expect(read(4)).toBe(true)
    expect(read(4)).toBe(true)
    expect(read(4)).toBe(true)
    expect(gate.slowReads).toBe(3)
    expect(gate.exhausted).toBe(1)
    expect(gate.begin()).toBeNull()
    // The window began at the first read (100); at 1100 a new one begins with a full budget.
    now = 1099
    expect(gate.begin()).toBeNull()
    now = 1100
    expect(read(4)).toBe(true)
    expect(read(0.05)).toBe(true)
  })
})
