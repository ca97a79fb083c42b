import { readFileSync, unwatchFile, watchFile } from 'node:fs'

/**
 * A wall clock the fault suite can move, for tests only. With
 * TANDEM_TEST_CLOCK_FILE=PATH in its environment, the process's Date.now()
 * is the real time plus the number of ms written in that file (missing or
 * unreadable: 0), re-read whenever the file changes. That is what stepping
 * the machine's clock does to a process: wall-clock reads jump, the
 * monotonic clock (performance.now(), which leases and timeouts use) does
 * not. Returns what undoes it, or null when the variable is not set.
 */
export function installTestClock(env: NodeJS.ProcessEnv = process.env): (() => void) | null {
  const file = env.TANDEM_TEST_CLOCK_FILE
  if (!file) return null
  const realNow = Date.now
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
  setTimeout(reload, 200).unref()
  Date.now = () => realNow() + offset
  return () => {
    unwatchFile(file, reload)
    Date.now = realNow
  }
}
