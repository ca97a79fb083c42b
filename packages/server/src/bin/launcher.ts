import { readFileSync } from 'node:fs'

/**
 * `pnpm start` (and `npm start`, `npx pnpm start`) runs tandem-server
 * below package-manager processes that do not pass SIGTERM or SIGINT on:
 * a process manager or a user who signals the top process (`kill PID`,
 * `docker stop`) ends the package manager and leaves the node running,
 * orphaned, holding its port and data dir. (Ctrl-C in a terminal signals
 * the whole process group and reaches the node anyway.)
 *
 * So a node started by a package.json script (npm_lifecycle_event is set)
 * watches the package-manager processes above it: its parent, and on
 * Linux each ancestor above it whose command line names npm, npx, pnpm or
 * yarn. Once one of them is gone, it shuts down as it does on SIGTERM. The
 * start script execs the node (no shell stays between it and the package
 * manager). Started any other way, nothing is watched.
 */

/** How often the launcher processes are checked. */
const CHECK_MS = 500
const PACKAGE_MANAGER = /(^|[\s/'"])(npm|npx|pnpm|yarn)(\.c?js)?($|[\s@'"])/

interface Ancestor {
  pid: number
  /** Start time in clock ticks since boot (Linux), so that a reused pid is not taken for the same process. */
  startedAt: string | null
  command: string
}

/** Starts watching when run from a package.json script; calls `onGone` once. Returns the stop, or null. */
export function watchLauncher(onGone: (launcher: string) => void, env = process.env): (() => void) | null {
  if (!env.npm_lifecycle_event) return null
  const parent = process.ppid
  const chain = launcherChain(parent)
  let fired = false
  const timer = setInterval(() => {
    if (fired) return
    const gone =
      process.ppid !== parent ? (chain[0] ?? { command: `parent ${parent}` }) : chain.find((a) => !stillThere(a))
    if (gone) {
      fired = true
      clearInterval(timer)
      onGone(gone.command)
    }
  }, CHECK_MS)
  timer.unref()
  return () => clearInterval(timer)
}

/** The parent, then each ancestor above it that is a package-manager process (Linux; elsewhere the parent only). */
function launcherChain(parent: number): Ancestor[] {
  const first = describe(parent)
  if (!first) return []
  const chain = [first]
  for (let a = first; chain.length < 16; ) {
    const ppid = parentOf(a.pid)
    if (ppid === null || ppid <= 1) break
    const next = describe(ppid)
    if (!next || !PACKAGE_MANAGER.test(next.command)) break
    chain.push(next)
    a = next
  }
  return chain
}

function describe(pid: number): Ancestor | null {
  const stat = readProc(pid, 'stat')
  if (stat === null) return { pid, startedAt: null, command: `process ${pid}` }
  const command = (readProc(pid, 'cmdline') ?? '').split('\0').filter(Boolean).join(' ')
  return { pid, startedAt: statField(stat, 22), command: command || `process ${pid}` }
}

function parentOf(pid: number): number | null {
  const stat = readProc(pid, 'stat')
  const ppid = stat === null ? null : statField(stat, 4)
  return ppid === null ? null : Number(ppid)
}

function stillThere(a: Ancestor): boolean {
  try {
    process.kill(a.pid, 0)
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  if (a.startedAt === null) return true
  const stat = readProc(a.pid, 'stat')
  return stat !== null && statField(stat, 22) === a.startedAt
}

function readProc(pid: number, file: string): string | null {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8')
  } catch {
    return null
  }
}

/** Field n (1-based, as proc(5) numbers them) of /proc/PID/stat; the command (field 2) may hold spaces. */
function statField(stat: string, n: number): string | null {
  const close = stat.lastIndexOf(')')
  if (close < 0) return null
  const fields = stat.slice(close + 2).split(' ')
  return fields[n - 3] ?? null
}
