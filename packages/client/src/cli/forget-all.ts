import type { MultiStatus, NodeStatus } from '@tandem/protocol'

/** What `tandem forget ORIGIN --all` did on one node. */
interface ForgetRow {
  address: string
  nodeId: string | null
  /** forgotten; skipped (the node is that origin); or failed (unreachable, refused). */
  outcome: 'forgotten' | 'skipped' | 'failed'
  closedLinks?: number
  error?: { code: string; message: string }
}

interface ForgetTarget {
  status(): Promise<NodeStatus>
  forget(origin: string, options: { force?: boolean }): Promise<{ closedLinks: number }>
  close(): Promise<void>
}

/**
 * Runs `forget` on every multi-master node reachable from the seeds: each
 * node's status names its --peers, which are asked in turn, until no new
 * address turns up (at most `maxNodes`). A node reached under two addresses
 * is forgotten on once; the node that is the forgotten origin itself (back
 * on its old data dir) is skipped. An address that does not answer is
 * reported, not retried: the dead peer's own address is one.
 */
export async function forgetAll(
  seeds: string[],
  origin: string,
  force: boolean,
  connect: (address: string) => Promise<ForgetTarget>,
  maxNodes = 64,
): Promise<ForgetRow[]> {
  const rows: ForgetRow[] = []
  const asked = new Set<string>()
  const done = new Set<string>()
  let frontier = [...seeds]
  while (frontier.length > 0 && asked.size < maxNodes) {
    const next: string[] = []
    for (const address of frontier) {
      if (asked.has(address) || asked.size >= maxNodes) continue
      asked.add(address)
      let client: ForgetTarget | null = null
      let nodeId: string | null = null
      try {
        client = await connect(address)
        const status = await client.status()
        nodeId = status.nodeId
        const multi = status.multi as MultiStatus | null | undefined
        for (const p of multi?.peers ?? []) if (!asked.has(p.addr)) next.push(p.addr)
        if (done.has(status.nodeId)) continue
        done.add(status.nodeId)
        if (multi?.origin === origin) {
          rows.push({ address, nodeId: status.nodeId, outcome: 'skipped' })
          continue
        }
        const result = await client.forget(origin, { force })
        rows.push({ address, nodeId: status.nodeId, outcome: 'forgotten', closedLinks: result.closedLinks })
      } catch (err) {
        const e = err as { code?: string; message?: string }
        const error = { code: e.code ?? 'UNAVAILABLE', message: e.message ?? String(err) }
        rows.push({ address, nodeId, outcome: 'failed', error })
      } finally {
        await client?.close()
      }
    }
    frontier = next
  }
  return rows
}
