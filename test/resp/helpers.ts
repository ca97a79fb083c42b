import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { freePort, type NodeProcess, waitFor } from '@tandem/bench/fixtures'
import { NodeProcess as Node } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'

/** Whether a Debian tool the RESP tests drive is installed (.ci/run installs them). */
export function has(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** The RESP port a node listens on, from its `listening` log line. */
export function respPortOf(node: NodeProcess): number {
  const line = [...node.logs].reverse().find((l) => l.msg === 'listening')
  const addr = String(line?.respAddress ?? '')
  const port = Number(addr.slice(addr.lastIndexOf(':') + 1))
  if (!port) throw new Error(`node ${node.address} serves no RESP port: ${node.tail()}`)
  return port
}

/** A tandem-server with --resp-port (0 unless given) in a temp dir; stop() removes it all. */
export async function startRespNode(args: string[] = []): Promise<{
  node: NodeProcess
  port: number
  stop(): Promise<void>
}> {
  const dir = tempDir('tandem-resp-')
  const node = new Node(dir.path, args.includes('--resp-port') ? args : ['--resp-port', '0', ...args])
  await node.start()
  return {
    node,
    port: respPortOf(node),
    stop: async () => {
      await node.stop()
      dir.remove()
    },
  }
}

/** A real redis-server on a free port, no persistence; stop() kills it. */
export async function startRedisServer(): Promise<{ port: number; stop(): Promise<void> }> {
  const dir = tempDir('tandem-resp-redis-')
  const port = await freePort()
  const proc: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir.path],
    { stdio: 'ignore' },
  )
  await waitFor(() => cli(port, ['ping']).stdout.trim() === 'PONG', {
    what: 'redis-server to answer',
    timeoutMs: 20_000,
  })
  return {
    port,
    stop: async () => {
      const exited = new Promise((resolve) => proc.once('exit', resolve))
      proc.kill('SIGKILL')
      await exited
      dir.remove()
    },
  }
}

/** Runs redis-cli against 127.0.0.1:port; returns what it printed. */
export function cli(
  port: number,
  args: string[],
  input?: string | Buffer,
): { stdout: string; stderr: string; code: number } {
  try {
    const stdout = execFileSync('redis-cli', ['-p', String(port), ...args], {
      input,
      stdio: ['pipe', 'pipe', 'pipe'],
      maxBuffer: 256 * 1024 * 1024,
      timeout: 120_000,
    })
    return { stdout: (stdout as Buffer).toString('latin1'), stderr: '', code: 0 }
  } catch (err) {
    const e = err as { stdout?: Buffer; stderr?: Buffer; status?: number }
    return { stdout: e.stdout?.toString('latin1') ?? '', stderr: e.stderr?.toString() ?? '', code: e.status ?? -1 }
  }
}
