import type { ChildProcess } from 'node:child_process'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { ServerProcess } from './server-process.js'

export const SERVER_BIN = join(
  dirname(fileURLToPath(import.meta.resolve('@tandem/server'))),
  '..',
  'bin',
  'tandem-server.js',
)

/**
 * Extra node flags for every server the harness starts, from the
 * environment: TANDEM_BENCH_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof'
 * profiles each server (the profile is written when the server exits on
 * SIGTERM, which the harness sends at the end).
 */
const NODE_ARGS = (process.env.TANDEM_BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean)

/** One line of a tandem-server's JSON log (`level` 'raw' for a line that is not JSON). */
export interface LogLine {
  level: string
  msg: string
  [field: string]: unknown
}

/** A JSON log line, parsed; undefined for anything else (a stack trace, a V8 flag's output). */
function parseLogLine(text: string): LogLine | undefined {
  if (!text.startsWith('{')) return undefined
  try {
    return JSON.parse(text) as LogLine
  } catch {
    return undefined
  }
}

/** The address in a `listening` line, else undefined. */
function listeningAddress(text: string): string | undefined {
  const line = parseLogLine(text)
  return line?.msg === 'listening' ? String(line.address) : undefined
}

/** Log lines kept per node: enough for a test's assertions, bounded for a long run. */
const KEPT_LINES = 5000

/**
 * A real tandem-server on 127.0.0.1 with its own data dir, for the tests and
 * the benchmark suites alike. The port is chosen by the OS at the first
 * start and kept across restarts (start() again after a kill), so members
 * and clients find it at the same address. Each run is a ServerProcess; the
 * JSON log lines of every run are kept in `logs` for assertions.
 */
export class NodeProcess {
  port = 0
  readonly logs: LogLine[] = []
  private current: ServerProcess | null = null
  /** Listeners of every log line (waitForLog calls among them); they outlive a restart. */
  private readonly listeners = new Set<(line: LogLine, at: number) => void>()

  constructor(
    readonly dataDir: string,
    /** Flags after --host, --port, --data-dir and --log-format json. */
    readonly args: string[] = [],
    readonly env: Record<string, string> = {},
    /** How error messages and server log files name it, e.g. 'master'. */
    readonly role = 'tandem-server',
  ) {}

  get address(): string {
    return `127.0.0.1:${this.port}`
  }

  /** The process of the current run (null before the first start). */
  get server(): ServerProcess | null {
    return this.current
  }

  /** The child process of the current run, to signal it without waiting. */
  get proc(): ChildProcess {
    if (!this.current) throw new Error(`${this.role} was never started`)
    return this.current.proc
  }

  get pid(): number | undefined {
    return this.current?.pid
  }

  get running(): boolean {
    return this.current?.running ?? false
  }

  get exitCode(): number | null {
    return this.current?.exitCode ?? null
  }

  get exitSignal(): NodeJS.Signals | null {
    return this.current?.exitSignal ?? null
  }

  /** Starts the server (again, after it exited) and resolves once it listens. */
  async start(timeoutMs = 20_000): Promise<this> {
    const args = [...NODE_ARGS, SERVER_BIN, '--host', '127.0.0.1', '--port', String(this.port)]
    args.push('--data-dir', this.dataDir, '--log-format', 'json', ...this.args)
    const run = new ServerProcess(this.role, process.execPath, args, undefined, this.env)
    this.current = run
    run.watch((text) => this.onLine(text))
    try {
      const address = await run.waitForLine(listeningAddress, timeoutMs, 'listen')
      this.port = Number(address.split(':').pop())
    } catch (err) {
      if (!run.running) {
        throw new Error(`${this.role} exited (${run.exitCode ?? run.exitSignal}) before listening: ${this.tail()}`)
      }
      await run.kill()
      throw err
    }
    return this
  }

  private onLine(text: string): void {
    const line = parseLogLine(text) ?? { level: 'raw', msg: text }
    this.logs.push(line)
    if (this.logs.length > KEPT_LINES) this.logs.splice(0, KEPT_LINES / 5)
    const at = performance.now()
    for (const listener of [...this.listeners]) listener(line, at)
  }

  /** Calls `listener` with every log line from now on (of this run and later ones) and when it was read; returns the unsubscribe. */
  watch(listener: (line: LogLine, at: number) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /**
   * Resolves with the first log line, already seen or still to come (from
   * this run or a later one), that matches; rejects after timeoutMs.
   */
  waitForLog(match: (l: LogLine) => boolean, timeoutMs = 20_000): Promise<LogLine> {
    const seen = this.logs.find(match)
    if (seen) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const unwatch = this.watch((line) => {
        if (!match(line)) return
        unwatch()
        clearTimeout(timer)
        resolve(line)
      })
      const timer = setTimeout(() => {
        unwatch()
        reject(new Error(`no matching log line from ${this.role} within ${timeoutMs} ms: ${this.tail()}`))
      }, timeoutMs)
    })
  }

  /** The last `n` log lines, for failure messages. */
  tail(n = 5): string {
    return this.logs
      .slice(-n)
      .map((l) => JSON.stringify(l))
      .join('\n')
  }

  /** Sends a signal and, unless it is SIGSTOP or SIGCONT, waits for the process to exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.current?.kill(signal)
  }

  /** SIGTERM (after SIGCONT, should it be paused) and wait; SIGKILL if it has not exited within timeoutMs. */
  async stop(timeoutMs = 15_000): Promise<void> {
    await this.current?.stop(timeoutMs)
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
