import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { TandemClient } from '@tandem/client'
import { holdsWithin, waitFor } from '../wait.js'
import { NodeProcess } from './node-process.js'
import { statusOf } from './node-state.js'
import { freePort } from './server-process.js'
import type { Topology } from './topology.js'

interface TandemTopologyOptions {
  replicas: number
  /** Members of a `--cluster --failover auto` group to start instead (0: a master and replicas). */
  cluster?: number
  sync: 'always' | 'periodic' | 'none'
  authToken?: string
  /** A fixed port for the master (default: any free one), so that it can be restarted at the same address. */
  masterPort?: number
  /** Start the master with --resp-port (a free one), for redis-benchmark. */
  resp?: boolean
  /** Environment variables every node is started with, beside the harness's own (e.g. the key trace's). */
  env?: Record<string, string>
}

/** A topology the harness started: its nodes, master first. */
type TandemTopology = Topology & { nodes: NodeProcess[] }

/** Starts a tandem master and `replicas` replicas (`--replicaof MASTER`), each in its own temp data dir. */
export async function startTandem(options: TandemTopologyOptions): Promise<TandemTopology> {
  const root = await mkdtemp(join(tmpdir(), 'tandem-bench-'))
  const nodes: NodeProcess[] = []
  const close = async () => {
    await Promise.all(nodes.map((n) => n.stop()))
    await rm(root, { recursive: true, force: true })
  }
  const start = async (role: string, dir: string, extra: string[], port = 0) => {
    const auth = options.authToken ? ['--auth-token', options.authToken] : []
    const node = new NodeProcess(join(root, dir), ['--sync', options.sync, ...auth, ...extra], options.env ?? {}, role)
    node.port = port
    nodes.push(node)
    await node.start(30_000)
    return node.address
  }
  try {
    if (options.cluster) {
      const ports = await Promise.all(Array.from({ length: options.cluster }, () => freePort()))
      const members = ports.map((p) => `127.0.0.1:${p}`)
      const cluster = ['--cluster', members.join(','), '--failover', 'auto']
      for (let i = 0; i < members.length; i++) await start(`member ${i + 1}`, `member-${i + 1}`, cluster, ports[i])
      const elected = await waitFor(
        async () => {
          const statuses = await Promise.all(
            nodes.map((n) => statusOf(n, { authToken: options.authToken }).catch(() => null)),
          )
          const i = statuses.findIndex((s) => s?.role === 'master' && s.readOnly === false)
          return i < 0 ? null : nodes[i]
        },
        { what: 'the fail-over group to elect a master', timeoutMs: 30_000, intervalMs: 100 },
      )
      // Master first, as for a master and its replicas.
      const ordered = [elected, ...nodes.filter((n) => n !== elected)]
      const master = elected.address
      const replicas = ordered.slice(1).map((n) => n.address)
      return {
        target: 'tandem',
        master,
        replicas,
        processes: ordered,
        nodes: ordered,
        root,
        waitForReplicas: (timeoutMs) => waitForTandemReplicas(master, replicas, options.authToken, timeoutMs),
        close,
      }
    }
    const master = await start('master', 'master', options.resp ? ['--resp-port', '0'] : [], options.masterPort)
    const listening = nodes[0].logs.find((l) => l.msg === 'listening')
    const respAddress = options.resp ? String(listening?.respAddress ?? '') || undefined : undefined
    const replicas: string[] = []
    for (let i = 1; i <= options.replicas; i++) {
      replicas.push(await start(`replica ${i}`, `replica-${i}`, ['--replicaof', master]))
    }
    return {
      target: 'tandem',
      master,
      replicas,
      respAddress,
      processes: nodes,
      nodes,
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
  const clients = await Promise.all(
    [master, ...replicas].map((s) => TandemClient.connect({ servers: [s], direct: true, readFrom: 'any', authToken })),
  )
  try {
    const target = (await clients[0].status()).seq
    return await holdsWithin(
      async () => (await Promise.all(clients.slice(1).map((c) => c.status()))).every((s) => s.seq >= target),
      timeoutMs,
      100,
    )
  } finally {
    await Promise.all(clients.map((c) => c.close()))
  }
}
