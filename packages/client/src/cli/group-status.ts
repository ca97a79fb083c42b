import type { NodeStatus } from '@tandem/protocol'

/** One member of a group as `tandem status --all` shows it. */
interface GroupRow {
  address: string
  nodeId: string | null
  role: string
  epoch: number | null
  seq: number | null
  /**
   * A replica's lag behind its upstream; a multi-master peer's behind the
   * peer it lags most (the most entries it lacks from one peer, the longest
   * it has been behind one): entries and ms.
   */
  lag: { entries: number; ms: number } | null
  /**
   * A replica's link to its upstream (streaming, syncing, ...); a
   * multi-master peer's links to its peers (`streaming` when all stream,
   * else how many do and each other one's state and address); `-` for a
   * master, or why the node could not be asked.
   */
  link: string
  /** A multi-master peer's links, one per --peers entry, as its status gives them. */
  links?: { addr: string; link: string; lagEntries: number; lagMs: number }[]
  error?: { code: string; message: string }
}

/**
 * Every node reachable from a seed, the way `etcdctl endpoint status
 * --cluster` shows a cluster: the seed's status names its fail-over
 * members or multi-master peers, its master or upstream and its replicas; each of those is asked
 * in turn, and what they name too, until no new address turns up.
 */
export async function groupStatus(
  seed: string,
  statusOf: (address: string) => Promise<NodeStatus>,
  maxNodes = 64,
): Promise<GroupRow[]> {
  const rows = new Map<string, GroupRow>()
  let frontier = [seed]
  while (frontier.length > 0 && rows.size < maxNodes) {
    const asked = frontier.filter((a) => !rows.has(a)).slice(0, maxNodes - rows.size)
    for (const a of asked) rows.set(a, unreachable(a, 'not asked yet'))
    const answers = await Promise.allSettled(asked.map((a) => statusOf(a)))
    frontier = []
    answers.forEach((answer, i) => {
      const address = asked[i]
      if (answer.status === 'rejected') {
        const err = answer.reason as { code?: string; message?: string }
        rows.set(address, unreachable(address, err.message ?? String(err), err.code))
        return
      }
      const s = answer.value
      // A node's row goes under the address it advertises, however it was reached.
      rows.set(address, row(typeof s.address === 'string' ? s.address : address, s))
      frontier.push(...namedBy(s).filter((a) => !rows.has(a)))
    })
  }
  // A node reached under two names (a seed given as localhost, a route as 127.0.0.1) is one row.
  const seen = new Set<string>()
  return [...rows.values()]
    .sort((a, b) => a.address.localeCompare(b.address))
    .filter((r) => r.nodeId === null || (!seen.has(r.nodeId) && seen.add(r.nodeId) !== undefined))
}

/** What every row says of its node, whatever its role. */
function identity(address: string, s: NodeStatus) {
  return { address, nodeId: s.nodeId, role: s.role, epoch: s.epoch, seq: s.seq }
}

function row(address: string, s: NodeStatus): GroupRow {
  const link = s.link as { state?: string; lagEntries?: number; lagMs?: number } | null | undefined
  const isReplica = s.role === 'replica'
  const multi = (s as { multi?: { peers?: unknown } | null }).multi
  if (s.role === 'peer' && multi && Array.isArray(multi.peers)) return peerRow(address, s, multi.peers)
  return {
    ...identity(address, s),
    lag: isReplica && link ? { entries: link.lagEntries ?? 0, ms: link.lagMs ?? 0 } : null,
    link: isReplica ? (link?.state ?? 'none') : '-',
  }
}

/** A multi-master peer's row: its lag and links from its status's per-peer links. */
function peerRow(address: string, s: NodeStatus, peers: unknown[]): GroupRow {
  const links = peers.map((p) => {
    const l = p as { addr?: unknown; link?: unknown; lagEntries?: unknown; lagMs?: unknown }
    return {
      addr: typeof l.addr === 'string' ? l.addr : '?',
      link: typeof l.link === 'string' ? l.link : '?',
      lagEntries: typeof l.lagEntries === 'number' ? l.lagEntries : 0,
      lagMs: typeof l.lagMs === 'number' ? l.lagMs : 0,
    }
  })
  const streaming = links.filter((l) => l.link === 'streaming').length
  const others = links.filter((l) => l.link !== 'streaming').map((l) => `${l.link} ${l.addr}`)
  return {
    ...identity(address, s),
    lag:
      links.length === 0
        ? null
        : {
            entries: Math.max(...links.map((l) => l.lagEntries)),
            ms: Math.max(...links.map((l) => l.lagMs)),
          },
    link:
      links.length === 0
        ? 'none'
        : others.length === 0
          ? 'streaming'
          : [...(streaming > 0 ? [`streaming ${streaming}/${links.length}`] : []), ...others].join(', '),
    links,
  }
}

function unreachable(address: string, message: string, code = 'UNAVAILABLE'): GroupRow {
  return {
    address,
    nodeId: null,
    role: '?',
    epoch: null,
    seq: null,
    lag: null,
    link: 'unreachable',
    error: { code, message },
  }
}

/** The addresses a node's status names: fail-over members, multi-master peers, master, upstream, replicas. */
function namedBy(s: NodeStatus): string[] {
  const out: string[] = []
  const failover = s.failover as { members?: { route?: unknown }[] } | undefined
  for (const m of failover?.members ?? []) if (typeof m.route === 'string') out.push(m.route)
  const multi = (s as { multi?: { peers?: { addr?: unknown }[] } | null }).multi
  for (const p of multi?.peers ?? []) if (typeof p.addr === 'string') out.push(p.addr)
  if (typeof s.master === 'string') out.push(s.master)
  if (typeof s.upstream === 'string') out.push(s.upstream)
  for (const r of s.replicas ?? []) if (r.addr) out.push(r.addr)
  return [...new Set(out)]
}

/** The rows as a table, one line per node. */
export function groupTable(rows: GroupRow[]): string[] {
  const cells = rows.map((r) => [
    r.address,
    r.nodeId ?? '-',
    r.role,
    r.epoch === null ? '-' : String(r.epoch),
    r.seq === null ? '-' : String(r.seq),
    r.lag === null ? '-' : `${r.lag.entries}/${r.lag.ms}ms`,
    r.error ? `unreachable (${r.error.code})` : r.link,
  ])
  const header = ['ADDRESS', 'NODE', 'ROLE', 'EPOCH', 'SEQ', 'LAG', 'LINK']
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)))
  return [header, ...cells].map((c) =>
    c
      .map((cell, i) => cell.padEnd(widths[i]))
      .join('  ')
      .trimEnd(),
  )
}
