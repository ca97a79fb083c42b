import { describe, expect, it } from 'vitest'
import { SyncReadGate } from './sync-reads.js'

describe('SyncReadGate', () => {
  it('allows synchronous reads until one is slower than slowMs, then refuses them for backoffMs', () => {
    let now = 100
    const gate = new SyncReadGate({ slowMs: 1, backoffMs: 50, now: () => now })
    const a = gate.begin()
    expect(a).toBe(100)
    now += 0.5
    gate.done(a as number)
    expect(gate.slowReads).toBe(0)
    const b = gate.begin() as number
    now += 3
    gate.done(b)
    expect(gate.slowReads).toBe(1)
    expect(gate.begin()).toBeNull()
    now += 49
    expect(gate.begin()).toBeNull()
    now += 1
    expect(gate.begin()).toBe(now)
  })
})
