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
}

/** Starts a tandem master and `replicas` replicas (`--replicaof MASTER`), each in its own temp data dir. */
export async function startTandem(options: TandemTopologyOptions): Promise<Topology> {
  const root = await mkdtemp(join(tmpdir(), 'tandem-bench-'))
  const processes: ServerProcess[] = []
  const close = async () => {
    await Promise.all(processes.map((p) => p.stop()))
    await rm(root, { recursive: true, force: true })
  }
  const start = async (role: string, dir: string, extra: string[]) => {
    const args = [SERVER_BIN, '--host', '127.0.0.1', '--port', '0', '--data-dir', join(root, dir)]
    args.push('--sync', options.sync, '--log-format', 'json', ...extra)
    if (options.authToken) args.push('--auth-token', options.authToken)
    const proc = new ServerProcess(role, process.execPath, args)
    processes.push(proc)
    return proc.waitForLine((line) => {
      if (!line.startsWith('{')) return undefined
      try {
        const entry = JSON.parse(line) as { msg?: string; address?: string }
        return entry.msg === 'listening' ? String(entry.address) : undefined
      } catch {
        return undefined
      }
    }, 30_000)
  }
  try {
    const master = await start('master', 'master', [])
    const replicas: string[] = []
    for (let i = 1; i <= options.replicas; i++) {
      replicas.push(await start(`replica ${i}`, `replica-${i}`, ['--replicaof', master]))
    }
    return {
      target: 'tandem',
      master,
      replicas,
      processes,
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
