/**
 * Where a peer's entries spend their time before they are durable on the
 * other node: the servers' `tandem_write_stage_seconds{stage}` histograms
 * (see the README's /metrics list), scraped before and after a scenario
 * and summed over the nodes. The buckets double (250 µs to 4 s), so a
 * percentile is known only to its bucket: what this reports is the upper
 * bound of the bucket that holds it.
 */

type Buckets = Map<string, [number, number][]>

interface StageFigure {
  stage: string
  count: number
  /** Upper bounds of the buckets holding the percentiles, in ms (Infinity: past the last bucket). */
  p50Ms: number
  p99Ms: number
}

/**
 * The order the stages are reported in: the path of a peer's frame (sent by
 * its origin's feed, read, applied, and shown on a watch), then the groups of
 * the node that applies it.
 */
const STAGES = [
  'peer_send',
  'peer_arrive',
  'peer_inbox',
  'remote_queue',
  'remote_commit',
  'peer_lag',
  'watch_send',
  'queue',
  'read',
  'build',
  'write',
]

async function scrape(address: string, authToken?: string): Promise<Buckets> {
  const headers: Record<string, string> = authToken ? { authorization: `Bearer ${authToken}` } : {}
  const res = await fetch(`http://${address}/metrics`, { headers, signal: AbortSignal.timeout(5000) })
  if (!res.ok) throw new Error(`metrics of ${address}: HTTP ${res.status}`)
  const out: Buckets = new Map()
  for (const line of (await res.text()).split('\n')) {
    const m = line.match(/^tandem_write_stage_seconds_bucket\{stage="([^"]+)",le="([^"]+)"\} (\S+)$/)
    if (!m) continue
    const rows = out.get(m[1]) ?? []
    rows.push([m[2] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[2]), Number(m[3])])
    out.set(m[1], rows)
  }
  return out
}

/** Scrapes the nodes' stage histograms now; `since()` then gives the figures of what they observed meanwhile. */
export async function stageWindow(
  addresses: string[],
  authToken?: string,
): Promise<{ since(): Promise<StageFigure[]> }> {
  // A server without the histogram (an older build) reports nothing.
  const read = (a: string) => scrape(a, authToken).catch(() => new Map() as Buckets)
  const before = await Promise.all(addresses.map(read))
  return {
    async since() {
      const after = await Promise.all(addresses.map(read))
      const figures: StageFigure[] = []
      for (const stage of STAGES) {
        let summed: [number, number][] | null = null
        for (let i = 0; i < after.length; i++) {
          const now = after[i].get(stage)
          if (!now) continue
          const then = before[i].get(stage)
          summed ??= now.map(([le]) => [le, 0])
          for (let j = 0; j < now.length; j++) summed[j][1] += now[j][1] - (then?.[j]?.[1] ?? 0)
        }
        if (!summed) continue
        const count = summed[summed.length - 1][1]
        if (count === 0) continue
        const at = (q: number) => (summed.find(([, c]) => c >= q * count)?.[0] ?? Number.POSITIVE_INFINITY) * 1000
        figures.push({ stage, count, p50Ms: at(0.5), p99Ms: at(0.99) })
      }
      return figures
    },
  }
}
