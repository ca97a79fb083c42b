import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { holdsWithin } from '../wait.js'
import { LinkProxy } from './link-proxy.js'
import { NodeProcess } from './node-process.js'
import type { Topology } from './topology.js'

interface PeersOptions {
  masters: number
  conflict: 'lww' | 'vclock'
  sync: 'always' | 'periodic' | 'none'
  authToken?: string
  /** Route every peer link through a LinkProxy (to cut, heal and delay links). */
  proxies?: boolean
  args?: string[]
  /** Added to each node's environment. */
  env?: Record<string, string>
}

/** A multi-master group the harness started: every node a master, each pulling from all the others. */
export interface PeersTopology extends Topology {
  nodes: NodeProcess[]
  /** proxies[i][j]: node i's link to node j (with `proxies`). */
  proxies: (LinkProxy | undefined)[][]
  /** Resolves true once every running node reports the same version vector and digest, false on timeout. */
  waitConverged(timeoutMs: number): Promise<boolean>
  /** Each resolves once every proxy has carried it out. */
  setDelay(ms: number): Promise<void>
  cutAll(): Promise<void>
  healAll(): Promise<void>
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : 0
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** Starts `masters` tandem-servers with --mode multi, each peering with all the others, on fixed ports. */
export async function startPeers(options: PeersOptions): Promise<PeersTopology> {
  const n = options.masters
  const root = await mkdtemp(join(tmpdir(), 'tandem-bench-mm-'))
  const nodes: NodeProcess[] = []
  const proxies: (LinkProxy | undefined)[][] = []
  const close = async () => {
    await Promise.all(nodes.map((node) => node.stop()))
    for (const row of proxies) for (const p of row) await p?.close()
    await rm(root, { recursive: true, force: true })
  }
  try {
    const ports = await Promise.all([...Array(n).keys()].map(() => freePort()))
    for (let i = 0; i < n; i++) {
      proxies[i] = []
      if (!options.proxies) continue
      for (let j = 0; j < n; j++) if (j !== i) proxies[i][j] = await new LinkProxy('127.0.0.1', ports[j]).start()
    }
    await Promise.all(
      [...Array(n).keys()].map(async (i) => {
        const peers = [...Array(n).keys()]
          .filter((j) => j !== i)
          .map((j) => proxies[i][j]?.address ?? `127.0.0.1:${ports[j]}`)
        const auth = options.authToken ? ['--auth-token', options.authToken] : []
        const args = ['--sync', options.sync, '--mode', 'multi', '--conflict', options.conflict, ...auth]
        if (peers.length > 0) args.push('--peers', peers.join(','))
        const node = new NodeProcess(
          join(root, `peer-${i + 1}`),
          [...args, ...(options.args ?? [])],
          options.env ?? {},
          `peer ${i + 1}`,
        )
        node.port = ports[i]
        nodes[i] = node
        await node.start(30_000)
      }),
    )
    const addresses = nodes.map((node) => node.address)
    const topology: PeersTopology = {
      target: 'tandem',
      master: addresses[0],
      replicas: addresses.slice(1),
      processes: nodes,
      nodes,
      proxies,
      root,
      waitForReplicas: (timeoutMs) => topology.waitConverged(timeoutMs),
      waitConverged: (timeoutMs) => waitConverged(nodes, options.authToken, timeoutMs),
      setDelay: async (ms) => {
        await Promise.all(proxies.flat().map((p) => p?.setDelay(ms)))
      },
      cutAll: async () => {
        await Promise.all(proxies.flat().map((p) => p?.cut()))
      },
      healAll: async () => {
        await Promise.all(proxies.flat().map((p) => p?.heal()))
      },
      close,
    }
    // Every node takes writes once it has heard a peer.
    await holdsWithin(
      async () => (await Promise.all(addresses.map((a) => statusOf(a, options.authToken)))).every((s) => !s.readOnly),
      30_000,
      100,
    )
    return topology
  } catch (err) {
    await close()
    throw err
  }
}

export interface PeerStatus {
  readOnly: boolean
  seq: number
  vv: Record<string, number>
  digest: string | null
  multi: {
    origin: string
    lwwLost: number
    siblings: { keys: number }
    /** applyHolds, joinedFrames and pulling's counts: absent on versions that do not count them. */
    peers: {
      lagEntries: number
      applyHolds?: { count: number; ms: number }
      joinedFrames?: number
      pulling: { frames?: number; heldBack?: number } | null
    }[]
    /** Absent on versions that do not count them. */
    received?: number
    duplicates?: number
  } | null
  commit: { writes: number }
}

/** A node's status over HTTP (cheap enough to poll every few ms while waiting for convergence). */
export async function statusOf(address: string, authToken?: string): Promise<PeerStatus> {
  const headers: Record<string, string> = authToken ? { authorization: `Bearer ${authToken}` } : {}
  const res = await fetch(`http://${address}/status`, { headers, signal: AbortSignal.timeout(5000) })
  if (!res.ok) throw new Error(`status of ${address}: HTTP ${res.status}`)
  return (await res.json()) as PeerStatus
}

const nonZero = (vv: Record<string, number>) =>
  JSON.stringify(
    Object.keys(vv)
      .sort()
      .filter((k) => vv[k] > 0)
      .map((k) => [k, vv[k]]),
  )

/** What a node says of its convergence (GET /convergence). */
interface Convergence {
  vv: Record<string, number>
  digest: string | null
  /** Entries its peers hold that it lacks, as far as it knows. */
  lagEntries: number
}

/**
 * A node's convergence figures. GET /convergence answers them without the
 * rest of the status (the data dir walk, every peer's row, ...): polled
 * every 20 ms on each node while a heal is timed, the full status cost the
 * nodes being timed a few percent of their CPU.
 */
async function convergenceOf(address: string, authToken?: string): Promise<Convergence> {
  const headers: Record<string, string> = authToken ? { authorization: `Bearer ${authToken}` } : {}
  const res = await fetch(`http://${address}/convergence`, { headers, signal: AbortSignal.timeout(5000) })
  if (!res.ok) throw new Error(`convergence of ${address}: HTTP ${res.status}`)
  return (await res.json()) as Convergence
}

/** Every running node at the same version vector and digest, nothing left to pull. */
async function converged(nodes: NodeProcess[], authToken?: string): Promise<boolean> {
  const views = await Promise.all(nodes.filter((n) => n.running).map((n) => convergenceOf(n.address, authToken)))
  if (views.length === 0) return false
  const vv = nonZero(views[0].vv)
  return views.every((s) => nonZero(s.vv) === vv && s.digest === views[0].digest && s.lagEntries === 0)
}

function waitConverged(nodes: NodeProcess[], authToken: string | undefined, timeoutMs: number): Promise<boolean> {
  return holdsWithin(() => converged(nodes, authToken).catch(() => false), timeoutMs, 20)
}
