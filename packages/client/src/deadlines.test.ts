import { performance } from 'node:perf_hooks'
import { describe, expect, it } from 'vitest'
import { type Call, Deadlines } from './call.js'

/** What Deadlines reads of a call: its deadline, whether it settled, and the timeout it fails it with. */
class FakeCall {
  settled = false
  timedOutAt = 0
  readonly deadline: number
  constructor(
    private readonly deadlines: Deadlines,
    readonly timeoutMs: number,
  ) {
    this.deadline = performance.now() + timeoutMs
    deadlines.add(this as unknown as Call, timeoutMs)
  }
  settle(): void {
    if (this.settled) return
    this.settled = true
    this.deadlines.settled(this.timeoutMs)
  }
  timedOut(): void {
    this.timedOutAt = performance.now()
    this.settle()
  }
}

/** Resolves once `done` holds, checked every few ms; fails after `ms`. */
async function until(done: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = performance.now() + ms
  while (!done()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length

describe('Deadlines', () => {
  it('times out each waiting call at its deadline, not before, whatever the order of their timeouts', async () => {
    const deadlines = new Deadlines()
    const calls = [300, 100, 200, 100, 50].map((ms) => new FakeCall(deadlines, ms))
    // The second 100 ms call settles in time; the others wait.
    calls[3].settle()
    await until(() => calls.every((c) => c.settled), 'every call to settle')
    for (const [i, c] of calls.entries()) {
      if (i === 3) expect(c.timedOutAt).toBe(0)
      else expect(c.timedOutAt, `call ${i}`).toBeGreaterThanOrEqual(c.deadline)
    }
    // In deadline order.
    const order = calls.filter((c) => c.timedOutAt > 0).sort((a, b) => a.timedOutAt - b.timedOutAt)
    expect(order.map((c) => c.timeoutMs)).toEqual([50, 100, 200, 300])
  })

  it('holds no timer once every call has settled, and one again for the next call', () => {
    const before = timers()
    const deadlines = new Deadlines()
    const calls = Array.from({ length: 100 }, (_, i) => new FakeCall(deadlines, i % 2 === 0 ? 30_000 : 10_000))
    expect(timers()).toBe(before + 1)
    // Settled out of order: the queues empty when the last one before the others settles.
    for (const c of calls.slice(1)) c.settle()
    expect(timers()).toBe(before + 1)
    calls[0].settle()
    expect(timers()).toBe(before)
    const next = new FakeCall(deadlines, 10_000)
    expect(timers()).toBe(before + 1)
    next.settle()
    expect(timers()).toBe(before)
  })

  it('times out a call that waits behind many settled ones, and none of those', async () => {
    const deadlines = new Deadlines()
    const stuck = new FakeCall(deadlines, 200)
    const rest = Array.from({ length: 20_000 }, () => new FakeCall(deadlines, 200))
    for (const c of rest) c.settle()
    const late = new FakeCall(deadlines, 200)
    await until(() => stuck.settled && late.settled, 'the waiting calls to time out')
    expect(stuck.timedOutAt).toBeGreaterThanOrEqual(stuck.deadline)
    expect(late.timedOutAt).toBeGreaterThanOrEqual(late.deadline)
    expect(rest.every((c) => c.timedOutAt === 0)).toBe(true)
  })
})
