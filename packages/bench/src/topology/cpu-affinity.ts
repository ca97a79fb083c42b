import { execFile } from 'node:child_process'
import { availableParallelism } from 'node:os'
import { promisify } from 'node:util'

const run = promisify(execFile)

/**
 * Pins every thread of a process (its event loop, LevelDB's and libuv's
 * pool) to one CPU with taskset, which sched_setaffinity(2) Node does not
 * expose. Threads the process starts later inherit the CPU of the thread
 * that starts them.
 */
export async function pinProcess(pid: number, cpu: number): Promise<void> {
  await run('taskset', ['--all-tasks', '--pid', '--cpu-list', String(cpu), String(pid)])
}

/**
 * Why processes cannot be pinned to `cpus` distinct CPUs here, or null when
 * they can: fewer CPUs than that, or no taskset (util-linux).
 */
export async function cannotPin(cpus: number): Promise<string | null> {
  if (availableParallelism() < cpus) return `${availableParallelism()} CPU, ${cpus} needed`
  try {
    await run('taskset', ['--version'])
    return null
  } catch {
    return 'no taskset'
  }
}
