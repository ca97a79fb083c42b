import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { splitHostPort } from '../drivers/redis.js'
import { holdsWithin } from '../wait.js'
import { freePort, ServerProcess } from './server-process.js'
import { TargetUnavailable, type Topology } from './topology.js'

const exec = promisify(execFile)

/** redis-server's version, or undefined when it is not on the PATH. */
export async function redisServerVersion(): Promise<string | undefined> {
  try {
    const { stdout } = await exec('redis-server', ['--version'])
    return /v=(\S+)/.exec(stdout)?.[1] ?? stdout.trim()
  } catch {
    return undefined
  }
}

export const REDIS_MISSING =
  'redis-server is not on the PATH: install it (Debian/Ubuntu: apt-get install redis-server) ' +
  'or point --redis HOST:PORT at a running Redis'

/**
 * Starts a Redis master with the durability a tandem user would compare
 * against (appendonly yes, the given appendfsync, no RDB snapshots) and
 * `replicas` replicas of it, each in its own temp dir.
 */
export async function startRedis(options: {
  replicas: number
  authToken?: string
  appendfsync: 'always' | 'everysec' | 'no'
}): Promise<Topology> {
  const version = await redisServerVersion()
  if (!version) throw new TargetUnavailable(REDIS_MISSING)
  const root = await mkdtemp(join(tmpdir(), 'tandem-bench-redis-'))
  const processes: ServerProcess[] = []
  const close = async () => {
    // Replicas first: one left running would dial its master's port again,
    // which another server may take next.
    for (const p of [...processes].reverse()) await p.stop()
    await rm(root, { recursive: true, force: true })
  }
  const start = async (role: string, dir: string, extra: string[]) => {
    const server = await startRedisServer(
      root,
      role,
      dir,
      [...['--appendonly', 'yes', '--appendfsync', options.appendfsync, '--save', ''], ...extra],
      options.authToken,
    )
    processes.push(server.process)
    return server.address
  }
  try {
    const master = await start('master', 'master', [])
    const replicas: string[] = []
    for (let i = 1; i <= options.replicas; i++) {
      replicas.push(await start(`replica ${i}`, `replica-${i}`, ['--replicaof', ...master.split(':')]))
    }
    return {
      target: 'redis',
      master,
      replicas,
      processes,
      version,
      waitForReplicas: (timeoutMs) => waitForRedisReplicas(master, replicas, options.authToken, timeoutMs),
      close,
    }
  } catch (err) {
    await close()
    throw err
  }
}

/**
 * Starts one redis-server on a free port, its files in root/dir, with
 * `args` after the common ones (address, dir, no protected mode, auth).
 * Resolves once it accepts connections; the caller stops the process.
 */
export async function startRedisServer(
  root: string,
  role: string,
  dir: string,
  args: string[],
  authToken?: string,
): Promise<{ process: ServerProcess; address: string }> {
  const port = await freePort()
  const path = join(root, dir)
  await mkdir(path)
  const all = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    path,
    '--daemonize',
    'no',
    '--protected-mode',
    'no',
  ]
  if (authToken) all.push('--requirepass', authToken, '--masterauth', authToken)
  all.push(...args)
  const proc = new ServerProcess(role, 'redis-server', all, path)
  try {
    await proc.waitForLine((line) => (/Ready to accept connections/.test(line) ? true : undefined), 30_000)
  } catch (err) {
    await proc.stop()
    throw err
  }
  return { process: proc, address: `127.0.0.1:${port}` }
}

/** Uses a running Redis master; its replicas are found through INFO replication. */
export async function useRedis(master: string, authToken?: string): Promise<Topology> {
  const redis = connect(master, authToken)
  try {
    const info = await redis.info()
    const version = /redis_version:(\S+)/.exec(info)?.[1]
    const replicas = [...info.matchAll(/slave\d+:ip=([^,]+),port=(\d+)/g)].map((m) => `${m[1]}:${m[2]}`)
    return {
      target: 'redis',
      master,
      replicas,
      processes: [],
      version,
      waitForReplicas: (timeoutMs) => waitForRedisReplicas(master, replicas, authToken, timeoutMs),
      close: async () => {},
    }
  } catch (err) {
    throw new TargetUnavailable(`cannot reach Redis at ${master}: ${(err as Error).message}`)
  } finally {
    redis.disconnect()
  }
}

export function connect(addr: string, authToken?: string): Redis {
  const [host, port] = splitHostPort(addr)
  return new Redis({ host, port, password: authToken, maxRetriesPerRequest: 1, connectTimeout: 5000 })
}

async function waitForRedisReplicas(
  master: string,
  replicas: string[],
  authToken: string | undefined,
  timeoutMs: number,
): Promise<boolean> {
  if (replicas.length === 0) return true
  const m = connect(master, authToken)
  const rs = replicas.map((r) => connect(r, authToken))
  try {
    const target = Number(/master_repl_offset:(\d+)/.exec(await m.info('replication'))?.[1] ?? 0)
    const caughtUp = (info: string) =>
      /master_link_status:up/.test(info) && Number(/slave_repl_offset:(\d+)/.exec(info)?.[1] ?? -1) >= target
    return await holdsWithin(
      async () => (await Promise.all(rs.map((r) => r.info('replication')))).every(caughtUp),
      timeoutMs,
      100,
    )
  } finally {
    m.disconnect()
    for (const r of rs) r.disconnect()
  }
}
