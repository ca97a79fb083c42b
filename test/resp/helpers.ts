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

/**
 * A real redis-server on a free port, no persistence; stop() kills it. A
 * port found free can be taken by a test running beside this one before
 * redis-server binds it: redis-server then exits, and another port is tried.
 */
export async function startRedisServer(): Promise<{ port: number; stop(): Promise<void> }> {
  const dir = tempDir('tandem-resp-redis-')
  let started: { port: number; proc: ChildProcess } | null = null
  for (let attempt = 1; !started; attempt++) {
    started = await spawnRedis(await freePort(), dir.path)
    if (!started && attempt >= 5) throw new Error('redis-server could not listen on any of 5 free ports')
  }
  const { port, proc } = started
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

/** redis-server on `port`, once it answers there as itself; null when it exited first (the port was taken). */
async function spawnRedis(port: number, dir: string): Promise<{ port: number; proc: ChildProcess } | null> {
  const proc = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' },
  )
  let exited = false
  proc.once('exit', () => {
    exited = true
  })
  // Its own process id in INFO: not another server that holds the port.
  await waitFor(() => exited || cli(port, ['info', 'server']).stdout.includes(`process_id:${proc.pid}\r\n`), {
    what: 'redis-server to answer',
    timeoutMs: 20_000,
  })
  return exited ? null : { port, proc }
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

/**
 * A fail-over group of real tandem-servers (--cluster, --failover auto),
 * each with a RESP port fixed at the start (HAProxy's config names them),
 * kept across a restart.
 */
export class RespGroup {
  readonly nodes: NodeProcess[] = []
  readonly respPorts: number[] = []
  private readonly dirs: { path: string; remove(): void }[] = []

  async start(size: number, extra: string[] = []): Promise<this> {
    for (let attempt = 1; ; attempt++) {
      const ports = await Promise.all(Array.from({ length: size }, () => freePort()))
      const resp = await Promise.all(Array.from({ length: size }, () => freePort()))
      const cluster = ports.map((p) => `127.0.0.1:${p}`).join(',')
      for (let i = 0; i < size; i++) {
        const dir = this.dirs[i] ?? tempDir('tandem-resp-group-')
        this.dirs[i] = dir
        const args = ['--cluster', cluster, '--failover', 'auto', '--resp-port', String(resp[i]), ...extra]
        const node = new Node(dir.path, args)
        node.port = ports[i]
        this.nodes[i] = node
        this.respPorts[i] = resp[i]
      }
      try {
        await Promise.all(this.nodes.map((n) => n.start()))
        return this
      } catch (err) {
        await Promise.all(this.nodes.map((n) => n.stop().catch(() => {})))
        if (attempt >= 3 || !String(err).includes('EADDRINUSE')) throw err
      }
    }
  }

  /** Index of the one node whose RESP port answers ROLE master, once there is exactly one. */
  async master(among: number[] = this.nodes.map((_, i) => i), timeoutMs = 30_000): Promise<number> {
    return waitFor(
      () => {
        const masters = among.filter((i) => {
          if (!this.nodes[i].running) return false
          const info = cli(this.respPorts[i], ['info', 'replication']).stdout
          return info.includes('role:master')
        })
        // An object: waitFor takes a falsy result (index 0) for "not yet".
        return masters.length === 1 ? { index: masters[0] } : undefined
      },
      { what: 'one master', timeoutMs, intervalMs: 100 },
    ).then(
      (found) => found.index,
      (err) => {
        const roles = among.map((i) => {
          const role = this.nodes[i].running ? JSON.stringify(cli(this.respPorts[i], ['info', 'replication'])) : 'dead'
          return `node ${i}: ${role}\n  ${this.nodes[i].tail(8).replaceAll('\n', '\n  ')}`
        })
        throw new Error(`${(err as Error).message}\n${roles.join('\n')}`)
      },
    )
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop().catch(() => {})))
    for (const d of this.dirs) d.remove()
  }
}
