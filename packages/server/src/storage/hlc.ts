import { systemClock } from '../util/clock.js'

/**
 * Hybrid logical clock, as Kulkarni et al. define it ("Logical Physical
 * Clocks", 2014, Fig. 5): a timestamp is (l, c), where l is the greatest
 * wall time (ms) the node has seen and c counts events within that l.
 *
 *   local event:  l' = max(l, pt); c' = (l' == l) ? c + 1 : 0
 *   receive m:    l' = max(l, l_m, pt); c' = max(c, c_m) + 1 when l' == l == l_m,
 *                 c + 1 when l' == l only, c_m + 1 when l' == l_m only, else 0
 *
 * A timestamp travels as one integer, l * 1024 + c, so it compares with
 * `<` and survives msgpack as a plain number: it stays below 2^53 until
 * the year 2248, so the packing never loses a bit. c is bounded by 1024:
 * when a millisecond's counter is used up, a local event waits for the wall
 * clock to move on (tryNow() returns null) instead of wrapping or running
 * l ahead of the wall clock. A receive that would overflow keeps c at its
 * maximum: receives issue no timestamp of their own, and the next local
 * event then waits for the next millisecond, so it still orders after
 * everything seen.
 *
 * |l - pt| stays small only while clocks agree: multi-master refuses
 * entries stamped further ahead than --max-clock-offset (see multimaster/).
 */
export const HLC_COUNTER_SPAN = 1024
const MAX_COUNTER = HLC_COUNTER_SPAN - 1

type WallClock = () => number

export class HybridClock {
  private l = 0
  private c = 0
  /** The wall time hold() read, standing for pt until release() (-1: none held; read the wall clock). */
  private held = -1

  constructor(private readonly wall: WallClock = systemClock.wall) {}

  /**
   * pt for the events of one synchronous pass (a group's build, which
   * stamps each client write and observes each peer entry): the wall clock
   * read once here, not once an event (a clock read a write on both
   * nodes). An event of the pass then happens, as far as pt says, when the
   * pass began: l and c order it as before, and l stays within the pass's
   * length of the wall clock. Until release(); a local event that finds
   * the counter used up (tryNow() null) waits in now(), which lets go of
   * it and reads the wall clock again.
   */
  hold(): void {
    this.held = this.wall()
  }

  release(): void {
    this.held = -1
  }

  private pt(): number {
    return this.held >= 0 ? this.held : this.wall()
  }

  /**
   * A timestamp for a local event, greater than every one issued or
   * observed before; null when this millisecond's counter is used up (wait
   * for the wall clock to pass wallMs(), then ask again).
   */
  tryNow(): number | null {
    const pt = this.pt()
    if (pt > this.l) {
      this.l = pt
      this.c = 0
    } else if (this.c < MAX_COUNTER) {
      this.c++
    } else {
      return null
    }
    return this.l * HLC_COUNTER_SPAN + this.c
  }

  /**
   * A timestamp for a local event, waiting for the wall clock when the
   * counter is used up. When the wall clock is far behind l (it was set
   * back, or this node observed a fast clock), waiting could take that long:
   * then the counter carries into l instead, as the old clock did, and the
   * caller learns it from aheadOfWallMs().
   */
  async now(): Promise<number> {
    // The counter of the held time is used up: from here the wall clock is read anew.
    this.held = -1
    for (;;) {
      const ts = this.tryNow()
      if (ts !== null) return ts
      if (this.l - this.wall() > MAX_WAIT_MS) {
        this.l++
        this.c = 0
        return this.l * HLC_COUNTER_SPAN
      }
      await new Promise((resolve) => setTimeout(resolve, 1))
    }
  }

  /** Folds in a timestamp seen on a remote event (the receive rule), so later local events order after it. */
  observe(remote: number): void {
    const lm = Math.floor(remote / HLC_COUNTER_SPAN)
    const cm = remote - lm * HLC_COUNTER_SPAN
    const pt = this.pt()
    const old = this.l
    const l = Math.max(old, lm, pt)
    let c: number
    if (l === old && l === lm) c = Math.max(this.c, cm) + 1
    else if (l === old) c = this.c + 1
    else if (l === lm) c = cm + 1
    else c = 0
    this.l = l
    this.c = Math.min(c, MAX_COUNTER)
  }

  /** Never issues at or below `timestamp` again (a persisted high-water mark, read at start). */
  restore(timestamp: number): void {
    const current = this.peek()
    if (timestamp <= current) return
    this.l = Math.floor(timestamp / HLC_COUNTER_SPAN)
    this.c = timestamp - this.l * HLC_COUNTER_SPAN
  }

  /** The greatest timestamp issued or observed. */
  peek(): number {
    return this.l * HLC_COUNTER_SPAN + this.c
  }

  /** How far l runs ahead of the wall clock, in ms (0 when it does not). */
  aheadOfWallMs(): number {
    return Math.max(0, this.l - this.wall())
  }
}

/** Longest a local event waits for the wall clock to reach l before carrying instead. */
const MAX_WAIT_MS = 2

export function hlcWallMs(timestamp: number): number {
  return Math.floor(timestamp / HLC_COUNTER_SPAN)
}
