import { readFileSync, unwatchFile, watchFile } from 'node:fs'
import { performance } from 'node:perf_hooks'

/**
 * Where protocol logic reads the time. One Clock is made per server
 * (TandemServer.start) and passed down to every object that reads the
 * time, so that a test can step it.
 *
 * Two clocks, because they fail differently: `now()` is monotonic (leases,
 * timeouts, lag, anything measured as a difference) and never jumps;
 * `wall()` is ms since 1970 (HLC timestamps, TTL expiry times, times shown
 * to users and compared across nodes) and jumps when the machine's clock is
 * stepped. A lease must never run on wall(): a step would stretch it.
 */
export interface Clock {
  /** Monotonic ms from an arbitrary origin. */
  now(): number
  /** Wall-clock ms since 1970. */
  wall(): number
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wall: () => Date.now(),
}

/** A clock whose wall() a test sets by hand; now() is the real monotonic clock. */
function offsetClock(offsetMs: () => number, base: Clock = systemClock): Clock {
  return { now: () => base.now(), wall: () => base.wall() + offsetMs() }
}

/**
 * The test clock (--test-clock-file, for tests only): wall() is the real
 * wall clock plus the ms written in FILE (missing or unreadable: 0), re-read
 * whenever the file changes. That is what stepping the machine's clock does
 * to a process: wall-clock reads jump, the monotonic now() does not.
 * `close()` stops watching the file.
 */
export function fileClock(file: string, base: Clock = systemClock): Clock & { close(): void } {
  let offset = 0
  const reload = () => {
    try {
      const n = Number(readFileSync(file, 'utf8').trim())
      offset = Number.isFinite(n) ? n : 0
    } catch {
      offset = 0
    }
  }
  reload()
  watchFile(file, { interval: 50, persistent: false }, reload)
  // The watcher's first stat is its baseline: a change made before it is taken would go unseen.
  const settle = setTimeout(reload, 200).unref()
  return {
    ...offsetClock(() => offset, base),
    close() {
      clearTimeout(settle)
      unwatchFile(file, reload)
    },
  }
}
