import { TandemClient, type Value } from '@tandem/client'
import { bearerHeaders, type NodeStatus } from '@tandem/protocol'

/**
 * What a running node says about itself (/status and /metrics over HTTP)
 * and what it holds (a full scan through the SDK, talking to that node
 * alone), read the same way by the tests and the benchmark suites.
 */

/** The /status fields beyond the documented minimum that tests and suites read. */
export type FullStatus = NodeStatus & {
  address: string
  /** Oldest seq still in the node's log. */
  logStart: number
  history: { epoch: number; startSeq: number; by: string }[]
  /** The link to the upstream; null on a master. */
  link: { state: string; lagEntries: number; lagMs: number; refusal: string | null } | null
  sync: { fullSyncs: number; partialSyncs: number; servedFull: number; servedPartial: number }
  rollbacks: { files: number; entries: number }
  commit: { groups: number; writes: number; avgGroupSize: number; largestGroup: number }
  /** The fail-over group as this node sees it; null outside a group. */
  failover: {
    members: { nodeId: string | null; route: string; connected: boolean; lastReplyMsAgo: number | null }[]
    lease: { held: boolean; remainingMs: number }
    master: { nodeId: string | null; addr: string | null; lastHeardMsAgo: number | null }
    knownEpoch: number
    elections: { started: number; won: number; preVotesLost: number }
  } | null
}

/** A node by its address, or anything that has one (a NodeProcess). */
type Addressed = string | { address: string }
const addressOf = (node: Addressed) => (typeof node === 'string' ? node : node.address)

async function httpGet(node: Addressed, path: string, timeoutMs: number, authToken?: string): Promise<Response> {
  const res = await fetch(`http://${addressOf(node)}${path}`, {
    signal: AbortSignal.timeout(timeoutMs),
    headers: bearerHeaders(authToken),
  })
  if (!res.ok) throw new Error(`${path} of ${addressOf(node)}: HTTP ${res.status}`)
  return res
}

/**
 * The node's /status. (Options come as an object, so that
 * `nodes.map(statusOf)` passes no index for a timeout.)
 */
export async function statusOf(
  node: Addressed,
  { timeoutMs = 5000, authToken }: { timeoutMs?: number; authToken?: string } = {},
): Promise<FullStatus> {
  return (await (await httpGet(node, '/status', timeoutMs, authToken)).json()) as FullStatus
}

/**
 * A /metrics sample: the sum of the series named `name` whose labels
 * contain `labels` (e.g. 'op="get"'), 0 when there is none (a counter
 * appears once it first counts).
 */
export async function metricSum(node: Addressed, name: string, labels = '', authToken?: string): Promise<number> {
  const text = await (await httpGet(node, '/metrics', 5000, authToken)).text()
  let sum = 0
  for (const line of text.split('\n')) {
    if ((line.startsWith(`${name} `) || line.startsWith(`${name}{`)) && line.includes(labels)) {
      sum += Number(line.split(' ').pop())
    }
  }
  return sum
}

/** Every key and value on one node, in key order, read from that node alone whatever its role. */
export async function scanAll(
  node: Addressed,
  { authToken }: { authToken?: string } = {},
): Promise<Map<string, Value>> {
  const db = await TandemClient.connect({
    servers: [addressOf(node)],
    direct: true,
    authToken,
    connectTimeoutMs: 2000,
    timeoutMs: 30_000,
  })
  try {
    const out = new Map<string, Value>()
    // This node's own data, whatever its role or lease (a master's default would be linearizable).
    for await (const [key, value] of db.scan({ consistency: 'local' })) out.set(key, value)
    return out
  } finally {
    await db.close()
  }
}

/** A value as comparable text that keeps its type: a string and the same bytes as binary differ. */
export function typed(value: Value): string
export function typed(value: Value | undefined): string | undefined
export function typed(value: Value | undefined): string | undefined {
  if (value === undefined) return undefined
  return typeof value === 'string' ? `str:${value}` : `bin:${Buffer.from(value).toString('hex')}`
}

/** The first difference between two scans, in key order, for a readable failure; null when they are equal. */
export function firstDifference(a: Map<string, Value>, b: Map<string, Value>): string | null {
  const x = [...a]
  const y = [...b]
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if (x[i]?.[0] !== y[i]?.[0] || typed(x[i]?.[1]) !== typed(y[i]?.[1])) {
      const show = (e: [string, Value] | undefined) => (e ? JSON.stringify([e[0], typed(e[1])]) : 'nothing')
      return `at #${i}: ${show(x[i])} vs ${show(y[i])} (sizes ${x.length}, ${y.length})`
    }
  }
  return null
}
