import { describe, expect, it } from 'vitest'
import { HLC_COUNTER_SPAN, HybridClock, hlcWallMs } from './hlc.js'

/** A wall clock the test moves by hand. */
function manualClock(start: number): { now: () => number; set(ms: number): void } {
  let t = start
  return {
    now: () => t,
    set: (ms: number) => {
      t = ms
    },
  }
}

const ts = (l: number, c: number) => l * HLC_COUNTER_SPAN + c
const parts = (t: number) => [hlcWallMs(t), t % HLC_COUNTER_SPAN]

describe('hybrid logical clock (Kulkarni et al., Fig. 5)', () => {
  it('local event: l takes the wall time when it moved on, else c counts up', () => {
    const wall = manualClock(1000)
    const clock = new HybridClock(wall.now)
    expect(parts(clock.tryNow()!)).toEqual([1000, 0])
    expect(parts(clock.tryNow()!)).toEqual([1000, 1])
    wall.set(999) // the wall clock went back: l stays, c counts
    expect(parts(clock.tryNow()!)).toEqual([1000, 2])
    wall.set(1005)
    expect(parts(clock.tryNow()!)).toEqual([1005, 0])
  })

  it('receive: each of the four cases of the rule', () => {
    const wall = manualClock(1000)
    const clock = new HybridClock(wall.now)
    clock.restore(ts(1000, 5))
    // l, l_m and the old l all equal: c = max(c, c_m) + 1
    clock.observe(ts(1000, 9))
    expect(parts(clock.peek())).toEqual([1000, 10])
    // only the old l equals the new l (the message is older): c = c + 1
    clock.observe(ts(990, 500))
    expect(parts(clock.peek())).toEqual([1000, 11])
    // l = l_m (the message is ahead): c = c_m + 1
    clock.observe(ts(1010, 3))
    expect(parts(clock.peek())).toEqual([1010, 4])
    // the wall clock is ahead of both: c = 0
    wall.set(1020)
    clock.observe(ts(1015, 7))
    expect(parts(clock.peek())).toEqual([1020, 0])
    // the next local event orders after everything seen
    expect(clock.tryNow()!).toBeGreaterThan(ts(1020, 0))
  })

  it('never wraps the counter: a used-up millisecond makes a local event wait for the wall clock', async () => {
    const wall = manualClock(2000)
    const clock = new HybridClock(wall.now)
    const issued: number[] = []
    for (let i = 0; i < HLC_COUNTER_SPAN; i++) issued.push(clock.tryNow()!)
    expect(parts(issued[issued.length - 1])).toEqual([2000, HLC_COUNTER_SPAN - 1])
    expect(clock.tryNow()).toBeNull()
    const next = clock.now()
    wall.set(2001)
    expect(parts(await next)).toEqual([2001, 0])
    expect(new Set(issued).size).toBe(HLC_COUNTER_SPAN)
  })

  it('a receive that would overflow the counter saturates it, and the next local event waits for a new millisecond', async () => {
    const wall = manualClock(3000)
    const clock = new HybridClock(wall.now)
    clock.observe(ts(3000, HLC_COUNTER_SPAN - 1))
    expect(parts(clock.peek())).toEqual([3000, HLC_COUNTER_SPAN - 1])
    expect(clock.tryNow()).toBeNull()
    wall.set(3001)
    expect(clock.tryNow()!).toBeGreaterThan(ts(3000, HLC_COUNTER_SPAN - 1))
  })

  it('carries into l only when the wall clock is far behind it, and says how far ahead it runs', async () => {
    const wall = manualClock(4000)
    const clock = new HybridClock(wall.now)
    clock.restore(ts(9000, HLC_COUNTER_SPAN - 1)) // a high-water mark from before the clock was set back
    expect(clock.aheadOfWallMs()).toBe(5000)
    expect(parts(await clock.now())).toEqual([9001, 0])
  })

  it('restore never moves the clock back', () => {
    const wall = manualClock(5000)
    const clock = new HybridClock(wall.now)
    clock.restore(ts(6000, 3))
    clock.restore(ts(5500, 9))
    expect(parts(clock.peek())).toEqual([6000, 3])
    expect(parts(clock.tryNow()!)).toEqual([6000, 4])
  })
  it('held: one wall-clock read stands for pt through a pass; l and c order its events as before, and release reads again', () => {
    const wall = manualClock(3000)
    let reads = 0
    const clock = new HybridClock(() => {
      reads++
      return wall.now()
    })
    clock.hold()
    wall.set(3007) // time passes during the pass: its events keep the held pt
    const a = clock.tryNow()!
    clock.observe(ts(2990, 4))
    const b = clock.tryNow()!
    expect(reads).toBe(1)
    expect(parts(a)).toEqual([3000, 0])
    expect(parts(b)).toEqual([3000, 2])
    // A peer's entry ahead of the held time still moves l (the receive rule).
    clock.observe(ts(3004, 1))
    expect(parts(clock.tryNow()!)).toEqual([3004, 3])
    clock.release()
    expect(parts(clock.tryNow()!)).toEqual([3007, 0])
    expect(reads).toBe(2)
  })

  it('held: a used-up millisecond lets go of the held time, so now() waits for the wall clock, not forever', async () => {
    const wall = manualClock(4000)
    const clock = new HybridClock(wall.now)
    clock.hold()
    for (let i = 0; i < HLC_COUNTER_SPAN; i++) clock.tryNow()
    expect(clock.tryNow()).toBeNull()
    const next = clock.now()
    wall.set(4001)
    expect(parts(await next)).toEqual([4001, 0])
    // Not held any more: the next event reads the wall clock.
    wall.set(4003)
    expect(parts(clock.tryNow()!)).toEqual([4003, 0])
  })
})
