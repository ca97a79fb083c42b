import { execFile } from 'node:child_process'
import { availableParallelism } from 'node:os'
import { promisify } from 'node:util'
import type { Topology } from './topology.js'

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

/**
 * Every topology's master on CPU 0, every replica on CPU 1, the harness
 * left to the scheduler. Two masters sharing one core slow down together
 * when anything else takes that core, and that cancels in the ratio of the two; each
 * still gets its fair share of it, so the consoles' work on one master comes
 * out of that master's share. Tried in a run against no pinning: the
 * estimates spread about half as wide. Returns what was done, for the
 * report; pinning that cannot be done leaves the servers free and says why.
 */
export async function pinMasters(nodes: Topology[]): Promise<string> {
  const why = await cannotPin(2)
  if (why !== null) return `not pinned (${why})`
  try {
    await Promise.all(
      nodes.flatMap((t) =>
        t.processes.map((p, i) => (p.pid === undefined ? undefined : pinProcess(p.pid, i === 0 ? 0 : 1))),
      ),
    )
  } catch (err) {
    return `pinning failed, servers may be partly pinned (${(err as Error).message.split('\n')[0]})`
  }
  return `${nodes.length === 2 ? 'both masters' : 'masters'} pinned to CPU 0 and their replicas to CPU 1`
}

/**
 * The replicas suite's --pin master: every master on CPU 0, its replicas
 * and this process (the load generator, its workers) on CPU 1, so that a
 * master under load has a core to itself but for other users of the
 * machine. Returns what was done, and an undo for this process's pinning.
 */
export async function pinMasterAlone(nodes: Topology[]): Promise<{ pinning: string; undo: () => Promise<void> }> {
  const none = async () => {}
  const why = await cannotPin(2)
  if (why !== null) return { pinning: `not pinned (${why})`, undo: none }
  try {
    await Promise.all(
      nodes.flatMap((t) =>
        t.processes.map((p, i) => (p.pid === undefined ? undefined : pinProcess(p.pid, i === 0 ? 0 : 1))),
      ),
    )
    await pinProcess(process.pid, 1)
  } catch (err) {
    return {
      pinning: `pinning failed, servers may be partly pinned (${(err as Error).message.split('\n')[0]})`,
      undo: () => run('taskset', ['--all-tasks', '--pid', '--cpu-list', '0-1', String(process.pid)]).then(none),
    }
  }
  return {
    pinning: 'each master pinned to CPU 0, its replicas and the load generator to CPU 1',
    undo: () => run('taskset', ['--all-tasks', '--pid', '--cpu-list', '0-1', String(process.pid)]).then(none),
  }
}
