import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * The one test clock of a tandem-server process: `--test-clock-file FILE`
 * (or TANDEM_TEST_CLOCK_FILE) runs its wall clock ahead by the ms in FILE,
 * re-read when the file changes (see packages/server/src/util/clock.ts).
 * Writes that file in `dir` holding `offsetMs` and returns the flags for it;
 * setTestClock moves it later.
 */
export function testClockArgs(dir: string, name: string, offsetMs: number): string[] {
  const file = join(dir, `clock-${name}`)
  setTestClock(file, offsetMs)
  return ['--test-clock-file', file]
}

/** Steps the wall clock of the node(s) reading `file` to real time + offsetMs. */
export function setTestClock(file: string, offsetMs: number): void {
  writeFileSync(file, String(offsetMs))
}
