import { type ChildProcess, spawn } from 'node:child_process'
import { createWriteStream, type WriteStream } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'

/**
 * One server process the harness or a test started (a tandem-server or a
 * redis-server), from spawn to exit: a restart is a new ServerProcess. Its
 * output is read line by line for as long as it runs (an unread pipe would
 * fill up and stall the server) and the last lines are kept for error
 * messages. With TANDEM_BENCH_SERVER_LOG_DIR set, every line also goes to
 * DIR/ROLE-PID.log (with TANDEM_BENCH_NODE_ARGS='--trace-gc', that is where
 * each server's garbage collections can be read).
 */
export class ServerProcess {
  readonly proc: ChildProcess
  readonly exited: Promise<void>
  exitCode: number | null = null
  exitSignal: NodeJS.Signals | null = null
  private readonly tail: string[] = []
  private readonly watchers: ((line: string) => void)[] = []
  private readonly copy: WriteStream | null = null

  constructor(
    /** e.g. 'master', 'replica 1' */
    readonly role: string,
    command: string,
    args: string[],
    readonly cwd?: string,
    env?: Record<string, string>,
  ) {
    this.proc = spawn(command, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd,
      env: env && { ...process.env, ...env },
    })
    const logDir = process.env.TANDEM_BENCH_SERVER_LOG_DIR
    if (logDir) {
      this.copy = createWriteStream(join(logDir, `${role.replace(/\W+/g, '-')}-${this.proc.pid}.log`))
      this.copy.on('error', () => {})
    }
    // 'close', not 'exit': 'exit' can come before the last output lines are
    // read, and a test that checks the log after a stop (a shutdown's last
    // line) must see all of them.
    this.exited = new Promise((resolve) => {
      this.proc.once('close', (code, signal) => {
        this.exitCode = code
        this.exitSignal = signal
        this.copy?.end()
        resolve()
      })
      this.proc.once('error', (err) => {
        this.tail.push(String(err))
        this.exitCode = -1
        resolve()
      })
    })
    for (const stream of [this.proc.stdout!, this.proc.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => this.onLine(line))
    }
  }

  get pid(): number | undefined {
    return this.proc.pid
  }

  get running(): boolean {
    return this.exitCode === null && this.exitSignal === null
  }

  lastLines(n = 8): string {
    return this.tail.slice(-n).join('\n')
  }

  /**
   * Resolves with the first output line from now on for which `match`
   * returns a value; rejects if the process exits first or at the deadline,
   * saying what it waited for.
   */
  waitForLine<T>(match: (line: string) => T | undefined, timeoutMs: number, what = 'start'): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        done()
        reject(new Error(`${this.role} did not ${what} within ${timeoutMs} ms:\n${this.lastLines()}`))
      }, timeoutMs)
      const watcher = (line: string) => {
        const found = match(line)
        if (found !== undefined) {
          done()
          resolve(found)
        }
      }
      const done = () => {
        clearTimeout(timer)
        const i = this.watchers.indexOf(watcher)
        if (i >= 0) this.watchers.splice(i, 1)
      }
      this.watchers.push(watcher)
      this.exited.then(() => {
        done()
        reject(
          new Error(
            `${this.role} exited (${this.exitCode ?? this.exitSignal}) before it would ${what}:\n${this.lastLines()}`,
          ),
        )
      })
    })
  }

  /** SIGTERM, then SIGKILL after `graceMs`. Safe to call twice, and on a process paused with SIGSTOP. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.running) return
    this.proc.kill('SIGCONT')
    this.proc.kill('SIGTERM')
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs)
    await this.exited
    clearTimeout(timer)
  }

  /** Calls `listener` with every output line from now on, and the moment it was read; returns the unsubscribe. */
  watch(listener: (line: string, at: number) => void): () => void {
    const w = (line: string) => listener(line, performance.now())
    this.watchers.push(w)
    return () => {
      const i = this.watchers.indexOf(w)
      if (i >= 0) this.watchers.splice(i, 1)
    }
  }

  /** Sends a signal and, unless it pauses or resumes the process (SIGSTOP, SIGCONT), waits for the exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return
    this.proc.kill(signal)
    if (signal !== 'SIGSTOP' && signal !== 'SIGCONT') await this.exited
  }

  private onLine(line: string): void {
    this.copy?.write(`${line}\n`)
    this.tail.push(line)
    if (this.tail.length > 50) this.tail.splice(0, 25)
    for (const w of [...this.watchers]) w(line)
  }
}

/** A TCP port that was free a moment ago (for redis-server, which cannot pick its own). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      srv.close(() => resolve(port))
    })
  })
}
