import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const SERVER_BIN = join(REPO_ROOT, 'packages/server/bin/tandem-server.js')
export const CLI_BIN = join(REPO_ROOT, 'packages/client/bin/tandem.js')

export interface LogLine {
  level: string
  msg: string
  [field: string]: unknown
}

/**
 * A real tandem-server process on 127.0.0.1 with a port chosen by the OS.
 * The harness reads its JSON log lines from stderr; `logs` keeps them all so
 * tests can assert on what the node said.
 */
export class NodeProcess {
  proc!: ChildProcess
  port = 0
  logs: LogLine[] = []
  exitCode: number | null = null
  exitSignal: NodeJS.Signals | null = null
  private exited!: Promise<void>
  private lineWaiters: { match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = []

  constructor(
    readonly dataDir: string,
    readonly args: string[] = [],
    readonly env: Record<string, string> = {},
  ) {}

  get address(): string {
    return `127.0.0.1:${this.port}`
  }

  get running(): boolean {
    return this.exitCode === null && this.exitSignal === null && this.proc !== undefined
  }

  /** Starts the process (again, after a kill) and resolves once it listens. Keeps the port across restarts. */
  async start(timeoutMs = 20_000): Promise<this> {
    const args = [
      SERVER_BIN,
      '--host',
      '127.0.0.1',
      '--port',
      String(this.port),
      '--data-dir',
      this.dataDir,
      ...this.args,
    ]
    this.exitCode = null
    this.exitSignal = null
    this.proc = spawn(process.execPath, args, {
      env: { ...process.env, ...this.env },
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
        this.exitCode = code
        this.exitSignal = signal
        resolve()
      })
    })
    createInterface({ input: this.proc.stderr! }).on('line', (text) => this.onLine(text))
    const listening = this.waitForLog((l) => l.msg === 'listening', timeoutMs)
    const died = this.exited.then(() => {
      throw new Error(`tandem-server exited (${this.exitCode ?? this.exitSignal}) before listening: ${this.tail()}`)
    })
    const line = await Promise.race([listening, died])
    this.port = Number(String(line.address).split(':').pop())
    return this
  }

  private onLine(text: string): void {
    let line: LogLine
    try {
      line = JSON.parse(text)
    } catch {
      line = { level: 'raw', msg: text }
    }
    this.logs.push(line)
    if (this.logs.length > 5000) this.logs.splice(0, 1000)
    for (const w of [...this.lineWaiters]) {
      if (w.match(line)) {
        this.lineWaiters.splice(this.lineWaiters.indexOf(w), 1)
        w.resolve(line)
      }
    }
  }

  /** Resolves with the first log line (already seen or future) that matches. */
  waitForLog(match: (l: LogLine) => boolean, timeoutMs = 20_000): Promise<LogLine> {
    const seen = this.logs.find(match)
    if (seen) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.lineWaiters = this.lineWaiters.filter((w) => w.resolve !== done)
        reject(new Error(`no matching log line within ${timeoutMs} ms: ${this.tail()}`))
      }, timeoutMs)
      const done = (l: LogLine) => {
        clearTimeout(timer)
        resolve(l)
      }
      this.lineWaiters.push({ match, resolve: done })
    })
  }

  tail(n = 5): string {
    return this.logs
      .slice(-n)
      .map((l) => JSON.stringify(l))
      .join('\n')
  }

  /** Sends a signal and, for KILL/TERM/INT, waits for the process to exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return
    this.proc.kill(signal)
    if (signal === 'SIGSTOP' || signal === 'SIGCONT') return
    await this.exited
  }

  /** SIGTERM and wait; SIGKILL if it has not exited within timeoutMs. */
  async stop(timeoutMs = 15_000): Promise<void> {
    if (!this.running) return
    this.proc.kill('SIGCONT')
    this.proc.kill('SIGTERM')
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs)
    await this.exited
    clearTimeout(timer)
  }

  /** Resident set size in bytes, from /proc. */
  async rss(): Promise<number> {
    const { readFile } = await import('node:fs/promises')
    const status = await readFile(`/proc/${this.proc.pid}/status`, 'utf8')
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
    return kb * 1024
  }
}

/** Starts a node in `dataDir` with extra flags; resolves once it listens. */
export function startNode(
  dataDir: string,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<NodeProcess> {
  return new NodeProcess(dataDir, args, env).start()
}
