import { readdir, readFile } from 'node:fs/promises'
import type { ServerMeasure } from '../report/result.js'

/**
 * What /proc says about a server process the harness started: its peak
 * resident set (VmHWM, kept by the kernel since the process began) and the
 * CPU time it has used. Linux only; elsewhere both read as undefined.
 */

const CLOCK_TICKS_PER_S = 100

export async function peakRssBytes(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    const kb = /VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? /VmRSS:\s+(\d+) kB/.exec(status)?.[1]
    return kb === undefined ? undefined : Number(kb) * 1024
  } catch {
    return undefined
  }
}

/** User + system CPU seconds the process has used so far. */
export async function cpuSeconds(pid: number): Promise<number | undefined> {
  try {
    return statCpuSeconds(await readFile(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return undefined
  }
}

/** User + system CPU seconds of one /proc stat line (the command name, field 2, may hold spaces). */
function statCpuSeconds(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S
}

/**
 * CPU seconds used so far by each thread of the process, by thread id. The
 * main thread's id is the pid: in a tandem server that thread runs the
 * JavaScript; the others are libuv's pool (LevelDB writes and fsyncs),
 * LevelDB's compaction thread and V8's helpers.
 */
export async function threadCpuSeconds(pid: number): Promise<Map<number, number> | undefined> {
  try {
    const tids = await readdir(`/proc/${pid}/task`)
    const out = new Map<number, number>()
    await Promise.all(
      tids.map(async (tid) => {
        try {
          out.set(Number(tid), statCpuSeconds(await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8')))
        } catch {
          // The thread ended between the listing and the read.
        }
      }),
    )
    return out
  } catch {
    return undefined
  }
}

/**
 * Server CPU per completed request, in µs: the CPU seconds a process used
 * over a window divided by the requests the harness completed in it. Null
 * when either sample is missing or nothing completed. The /proc counters
 * tick every 10 ms, so a window of a second or more keeps the error to a
 * few percent at one busy core.
 */
export function cpuUsPerOp(before: number | undefined, after: number | undefined, ops: number): number | null {
  if (before === undefined || after === undefined || ops <= 0) return null
  return Math.round(((after - before) / ops) * 1e7) / 10
}

/**
 * A server process's figures for a measured window: its peak resident set
 * now, and the CPU it used between the `before` and `after` samples, in
 * cores and per request completed.
 */
export async function serverMeasure(
  p: { role: string; pid: number | undefined },
  before: number | undefined,
  after: number | undefined,
  window: { elapsedS: number; ops: number },
): Promise<ServerMeasure> {
  const rss = p.pid ? await peakRssBytes(p.pid) : undefined
  return {
    role: p.role,
    pid: p.pid ?? null,
    peakRssMB: rss === undefined ? null : Math.round((rss / 2 ** 20) * 10) / 10,
    cpuCores:
      before === undefined || after === undefined ? null : Math.round(((after - before) / window.elapsedS) * 100) / 100,
    cpuUsPerOp: cpuUsPerOp(before, after, window.ops),
  }
}

/** Every process's CPU over the window, summed, per request; null if any process could not be read. */
export function totalCpuUsPerOp(
  before: (number | undefined)[],
  after: (number | undefined)[],
  ops: number,
): number | null {
  if (after.length === 0 || before.length !== after.length) return null
  let b = 0
  let a = 0
  for (let i = 0; i < after.length; i++) {
    const x = before[i]
    const y = after[i]
    if (x === undefined || y === undefined) return null
    b += x
    a += y
  }
  return cpuUsPerOp(b, a, ops)
}

/**
 * Seconds the process's main thread has so far spent ready to run but
 * waiting for a core (the run_delay of /proc/PID/task/PID/schedstat, in
 * ns); undefined where the kernel does not keep it. On a machine with
 * fewer cores than busy threads, a server's requests wait this long with
 * nothing of the server running: latency that is the machine's, not the
 * server's.
 */
export async function mainWaitSeconds(pid: number): Promise<number | undefined> {
  try {
    const fields = (await readFile(`/proc/${pid}/task/${pid}/schedstat`, 'utf8')).trim().split(' ')
    const ns = Number(fields[1])
    return Number.isFinite(ns) ? ns / 1e9 : undefined
  } catch {
    return undefined
  }
}

/** The share of a window of elapsedS seconds spent waiting for a core, between two mainWaitSeconds samples. */
export function waitShare(before: number | undefined, after: number | undefined, elapsedS: number): number | null {
  if (before === undefined || after === undefined || elapsedS <= 0) return null
  return Math.round(((after - before) / elapsedS) * 1000) / 1000
}

export interface ThreadSplit {
  /** Cores used by the main thread (JavaScript and its system calls). */
  main: number
  /** Cores used by the busiest other thread (in a tandem server under writes, LevelDB's compaction thread). */
  busiestOther: number
  /** Cores used by every other thread together. */
  rest: number
}

/** Splits the CPU a process used between two threadCpuSeconds samples, over elapsedS seconds. */
export function splitThreads(
  pid: number,
  before: Map<number, number>,
  after: Map<number, number>,
  elapsedS: number,
): ThreadSplit {
  let main = 0
  let busiest = 0
  let others = 0
  for (const [tid, seconds] of after) {
    const used = seconds - (before.get(tid) ?? 0)
    if (tid === pid) main = used
    else {
      others += used
      busiest = Math.max(busiest, used)
    }
  }
  const cores = (x: number) => Math.round((x / elapsedS) * 1000) / 1000
  return { main: cores(main), busiestOther: cores(busiest), rest: cores(others - busiest) }
}
