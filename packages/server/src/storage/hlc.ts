/**
 * Hybrid logical clock. A timestamp is one integer, `wallMs * 1024 + counter`,
 * so timestamps compare with `<` and survive msgpack as plain numbers (the
 * value stays below 2^53 until the year 2248). The counter carries into the
 * wall part when more than 1024 events share a millisecond, so the clock
 * never goes backwards and never stalls; it merely runs slightly ahead of
 * the wall clock under extreme load, as an HLC is allowed to.
 */
export const HLC_COUNTER_SPAN = 1024

export type WallClock = () => number

export class HybridClock {
  private last = 0

  constructor(private readonly wall: WallClock = Date.now) {}

  /** A timestamp for a local event, greater than every one issued or observed before. */
  now(): number {
    const physical = this.wall() * HLC_COUNTER_SPAN
    this.last = physical > this.last ? physical : this.last + 1
    return this.last
  }

  /** Folds in a timestamp seen on a remote event, so later local events order after it. */
  observe(remote: number): void {
    if (remote > this.last) this.last = remote
  }

  /** The last timestamp issued or observed. */
  peek(): number {
    return this.last
  }
}

export function hlcWallMs(timestamp: number): number {
  return Math.floor(timestamp / HLC_COUNTER_SPAN)
}
