import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** The code a run measured: the commit checked out, and what differed from it. */
export interface GitState {
  commit: string
  /** True when tracked or untracked files differ from the commit (results and BENCHMARKS.md aside). */
  dirty: boolean
  /** The first differing paths, as `git status --porcelain` prints them. */
  changes: string[]
}

const PACKAGE_DIR = fileURLToPath(new URL('../..', import.meta.url))

/**
 * The git state of the tree tandem-bench runs from, or null outside a git
 * checkout. Bench output (packages/bench/results, BENCHMARKS.md) does not
 * count as a change: rewriting it is what a rerun does.
 */
export function gitState(dir = PACKAGE_DIR): GitState | null {
  const git = (args: string[]) => execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8', stdio: 'pipe' })
  try {
    const commit = git(['rev-parse', 'HEAD']).trim()
    const changes = git([
      'status',
      '--porcelain',
      '--',
      ':/',
      ':(top,exclude)packages/bench/results',
      ':(top,exclude)BENCHMARKS.md',
    ])
      .split('\n')
      .filter(Boolean)
    return { commit, dirty: changes.length > 0, changes: changes.slice(0, 20) }
  } catch {
    return null
  }
}
