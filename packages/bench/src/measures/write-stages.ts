/**
 * Where a peer's entries spend their time before they are durable on the
 * other node: the servers' `tandem_write_stage_seconds{stage}` histograms
 * (see the README's /metrics list), scraped before and after a scenario
 * and summed over the nodes. The buckets double (250 µs to 4 s), so a
 * percentile is known only to its bucket: what this reports is the upper
 * bound of the bucket that holds it.
 *
 * The same scrapes give what stalled the nodes' event loops meanwhile:
 * their garbage-collection pauses by kind (`nodejs_gc_duration_seconds`,
 * each pause of the main thread) and the longest event-loop delay
 * (`nodejs_eventloop_lag_max_seconds`: the delay histogram is reset at
 * each scrape, so the second scrape reads the window's own).
 */

type Buckets = Map<string, [number, number][]>

interface GcPauses {
  count: number
  /** Pauses of at most 10 ms (the histogram's bucket). */
  upTo10Ms: number
  seconds: number
}

interface Scrape {
  stages: Buckets
  gc: Map<string, GcPauses>
  /** Longest event-loop delay since the scrape before, in seconds; null when the node does not report it. */
  loopMaxS: number | null
}

export interface GcFigure {
  /** minor (scavenges), major (mark-compact), incremental (marking steps), weakcb. */
  kind: string
  pauses: number
  over10Ms: number
  totalMs: number
}

export interface StageFigure {
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
  'remote_wait',
  'remote_commit',
  'peer_lag',
  'watch_send',
  'queue',
  'read',
  'build',
  'write',
]

async function scrape(address: string, authToken?: string): Promise<Scrape> {
  const headers: Record<string, string> = authToken ? { authorization: `Bearer ${authToken}` } : {}
  const res = await fetch(`http://${address}/metrics`, { headers, signal: AbortSignal.timeout(5000) })
  if (!res.ok) throw new Error(`metrics of ${address}: HTTP ${res.status}`)
  const out: Scrape = { stages: new Map(), gc: new Map(), loopMaxS: null }
  const gcOf = (kind: string) => {
    let g = out.gc.get(kind)
    if (!g) out.gc.set(kind, (g = { count: 0, upTo10Ms: 0, seconds: 0 }))
    return g
  }
  for (const line of (await res.text()).split('\n')) {
    let m = line.match(/^tandem_write_stage_seconds_bucket\{stage="([^"]+)",le="([^"]+)"\} (\S+)$/)
    if (m) {
      const rows = out.stages.get(m[1]) ?? []
      rows.push([m[2] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[2]), Number(m[3])])
      out.stages.set(m[1], rows)
    } else if ((m = line.match(/^nodejs_gc_duration_seconds_(sum|count)\{kind="([^"]+)"\} (\S+)$/))) {
      if (m[1] === 'sum') gcOf(m[2]).seconds = Number(m[3])
      else gcOf(m[2]).count = Number(m[3])
    } else if ((m = line.match(/^nodejs_gc_duration_seconds_bucket\{le="0\.01",kind="([^"]+)"\} (\S+)$/))) {
      gcOf(m[1]).upTo10Ms = Number(m[2])
    } else if ((m = line.match(/^nodejs_eventloop_lag_max_seconds (\S+)$/))) {
      out.loopMaxS = Number(m[1])
    }
  }
  return out
}

/** GC kinds always reported (0 when none ran), then any other kind that paused. */
const GC_KINDS = ['minor', 'major']

/**
 * Scrapes the nodes' stage histograms now; `since()` then gives the figures
 * of what they observed meanwhile: the stages, the GC pauses of both nodes
 * by kind, and the longest event-loop delay of either (null when no node
 * reports it).
 */
export async function stageWindow(
  addresses: string[],
  authToken?: string,
): Promise<{ since(): Promise<{ stages: StageFigure[]; gc: GcFigure[]; loopMaxMs: number | null }> }> {
  // A server without the histogram (an older build) reports nothing.
  const read = (a: string) =>
    scrape(a, authToken).catch((): Scrape => ({ stages: new Map(), gc: new Map(), loopMaxS: null }))
  const before = await Promise.all(addresses.map(read))
  return {
    async since() {
      const after = await Promise.all(addresses.map(read))
      const gc: GcFigure[] = []
      const kinds = new Set([...GC_KINDS, ...after.flatMap((s) => [...s.gc.keys()])])
      for (const kind of kinds) {
        let pauses = 0
        let upTo10Ms = 0
        let seconds = 0
        for (let i = 0; i < after.length; i++) {
          const now = after[i].gc.get(kind)
          const then = before[i].gc.get(kind)
          pauses += (now?.count ?? 0) - (then?.count ?? 0)
          upTo10Ms += (now?.upTo10Ms ?? 0) - (then?.upTo10Ms ?? 0)
          seconds += (now?.seconds ?? 0) - (then?.seconds ?? 0)
        }
        if (pauses > 0 || GC_KINDS.includes(kind)) {
          gc.push({ kind, pauses, over10Ms: pauses - upTo10Ms, totalMs: Math.round(seconds * 10_000) / 10 })
        }
      }
      const loops = after.map((s) => s.loopMaxS).filter((x): x is number => x !== null)
      const loopMaxMs = loops.length === 0 ? null : Math.round(Math.max(...loops) * 10_000) / 10
      const figures: StageFigure[] = []
      for (const stage of STAGES) {
        let summed: [number, number][] | null = null
        for (let i = 0; i < after.length; i++) {
          const now = after[i].stages.get(stage)
          if (!now) continue
          const then = before[i].stages.get(stage)
          summed ??= now.map(([le]) => [le, 0])
          for (let j = 0; j < now.length; j++) summed[j][1] += now[j][1] - (then?.[j]?.[1] ?? 0)
        }
        if (!summed) continue
        const count = summed[summed.length - 1][1]
        if (count === 0) continue
        const at = (q: number) => (summed.find(([, c]) => c >= q * count)?.[0] ?? Number.POSITIVE_INFINITY) * 1000
        figures.push({ stage, count, p50Ms: at(0.5), p99Ms: at(0.99) })
      }
      return { stages: figures, gc, loopMaxMs }
    },
  }
}
