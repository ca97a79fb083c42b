import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { TandemClient } from '@tandem/client'
import { ServerProcess } from './server-process.js'
import type { Topology } from './topology.js'

export const SERVER_BIN = join(
  dirname(fileURLToPath(import.meta.resolve('@tandem/server'))),
  '..',
  'bin',
  'tandem-server.js',
)

export interface TandemTopologyOptions {
  replicas: number
  sync: 'always' | 'periodic' | 'none'
  authToken?: string
  /** A fixed port for the master (default: any free one), so that it can be restarted at the same address. */
  masterPort?: number
}

/**
 * Extra node flags for every server the harness starts, from the
 * environment: TANDEM_BENCH_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof'
 * profiles each server (the profile is written when the server exits on
 * SIGTERM, which the harness sends at the end).
 */
const NODE_ARGS = (process.env.TANDEM_BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean)

/** The JSON log line `listening`'s address, else undefined. */
export function listeningAddress(line: string): string | undefined {
  const entry = parseLogLine(line)
  return entry?.msg === 'listening' ? String(entry.address) : undefined
}

export interface LogEntry {
  time?: string
  msg?: string
  [field: string]: unknown
}

export function parseLogLine(line: string): LogEntry | undefined {
  if (!line.startsWith('{')) return undefined
  try {
    return JSON.parse(line) as LogEntry
  } catch {
    return undefined
  }
}

/** The command line of one tandem-server (without node): it can be spawned again with the same data dir. */
export function tandemArgs(options: {
  port?: number
  dataDir: string
  sync: string
  authToken?: string
  extra?: string[]
}): string[] {
  const args = [...NODE_ARGS, SERVER_BIN, '--host', '127.0.0.1', '--port', String(options.port ?? 0)]
  args.push('--data-dir', options.dataDir, '--sync', options.sync, '--log-format', 'json', ...(options.extra ?? []))
  if (options.authToken) args.push('--auth-token', options.authToken)
  return args
}

/** Spawns one tandem-server and resolves once it listens, with its address. */
export async function spawnTandem(
  role: string,
  args: string[],
  timeoutMs = 120_000,
): Promise<{ proc: ServerProcess; address: string }> {
  const proc = new ServerProcess(role, process.execPath, args)
  try {
    const address = await proc.waitForLine(listeningAddress, timeoutMs)
    return { proc, address }
  } catch (err) {
    await proc.kill()
    throw err
  }
}

/** Starts a tandem master and `replicas` replicas (`--replicaof MASTER`), each in its own temp data dir. */
export async function startTandem(options: TandemTopologyOptions): Promise<Topology> {
  const root = await mkdtemp(join(tmpdir(), 'tandem-bench-'))
  const processes: ServerProcess[] = []
  const close = async () => {
    await Promise.all(processes.map((p) => p.stop()))
    await rm(root, { recursive: true, force: true })
  }
  const start = async (role: string, dir: string, extra: string[], port?: number) => {
    const args = tandemArgs({ port, dataDir: join(root, dir), sync: options.sync, authToken: options.authToken, extra })
    const proc = new ServerProcess(role, process.execPath, args)
    processes.push(proc)
    return proc.waitForLine(listeningAddress, 30_000)
  }
  try {
    const master = await start('master', 'master', [], options.masterPort)
    const replicas: string[] = []
    for (let i = 1; i <= options.replicas; i++) {
      replicas.push(await start(`replica ${i}`, `replica-${i}`, ['--replicaof', master]))
    }
    return {
      target: 'tandem',
      master,
      replicas,
      processes,
      root,
      waitForReplicas: (timeoutMs) => waitForTandemReplicas(master, replicas, options.authToken, timeoutMs),
      close,
    }
  } catch (err) {
    await close()
    throw err
  }
}

/** Uses running servers: the first is the master, the rest its replicas. */
export function useTandem(servers: string[], authToken?: string): Topology {
  const [master, ...replicas] = servers
  return {
    target: 'tandem',
    master,
    replicas,
    processes: [],
    waitForReplicas: (timeoutMs) => waitForTandemReplicas(master, replicas, authToken, timeoutMs),
    close: async () => {},
  }
}

async function waitForTandemReplicas(
  master: string,
  replicas: string[],
  authToken: string | undefined,
  timeoutMs: number,
): Promise<boolean> {
  if (replicas.length === 0) return true
  const deadline = Date.now() + timeoutMs
  const clients = await Promise.all(
    [master, ...replicas].map((s) => TandemClient.connect({ servers: [s], direct: true, readFrom: 'any', authToken })),
  )
  try {
    const target = (await clients[0].status()).seq
    while (Date.now() < deadline) {
      const seqs = await Promise.all(clients.slice(1).map((c) => c.status().then((s) => s.seq)))
      if (seqs.every((s) => s >= target)) return true
      await new Promise((r) => setTimeout(r, 100))
    }
    return false
  } finally {
    await Promise.all(clients.map((c) => c.close()))
  }
}
