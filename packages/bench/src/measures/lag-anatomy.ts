import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * Where each peer-lag marker's time went, marker by marker: the probe's
 * times (MarkerLagProbe with a traceDir: each marker's acknowledgement on
 * its writer, each watch event) joined with the nodes' key traces
 * (TANDEM_KEY_TRACE_DIR / TANDEM_KEY_TRACE_PREFIX, see the server's
 * util/key-trace.ts) by marker number. A marker's lag, acknowledgement to
 * the event on the other node's watch, is cut into consecutive segments
 * that sum to it:
 *
 * - arrive: acknowledgement to its frame read off the reader's socket (the
 *   origin's send, the trip, the reader's event loop; negative when the
 *   frame came before the acknowledgement);
 * - inbox: read to queued to the reader's committer;
 * - wait: queued to its group handed to LevelDB (the group being written
 *   then, and its own group's build);
 * - write: its group's LevelDB write (with --sync always, the fsync);
 * - watch: written to the watch event sent;
 * - deliver: sent to seen by the probe.
 *
 * The figures are per marker, so the slowest markers' segments can be read
 * together: what makes the 99th percentile, not only each stage's own.
 * All times are wall-clock ms of one machine (performance.timeOrigin).
 *
 * Where the origin's trace tells (its group's seqs, the frames its feeds
 * sent), arrive is cut once more: `sent`, acknowledgement to the frame
 * holding the marker's group sent by the origin (negative when the origin
 * sent it before the probe saw the acknowledgement), and the rest of
 * arrive, the frame's way to the reader and the wait of the reader's event
 * loop before it read it.
 */

export const SEGMENTS = ['arrive', 'inbox', 'wait', 'write', 'watch', 'deliver'] as const
type Segment = (typeof SEGMENTS)[number]

interface MarkerTimeline {
  marker: number
  lagMs: number
  segments: Record<Segment, number>
  /** Acknowledgement to the origin's frame holding it sent, when the origin's trace tells (part of arrive). */
  sentMs?: number
}

interface SegmentFigure {
  segment: Segment
  /** Mean over the markers at or above the lag p99 (the top 1%), ms. */
  topMeanMs: number
  /** Mean over the markers from the 40th to the 60th percentile of lag, ms. */
  midMeanMs: number
  /** The segment's own p99 over every marker, ms. */
  p99Ms: number
}

interface LagAnatomy {
  /** Markers acknowledged, and how many of them were found in every trace. */
  markers: number
  traced: number
  /** Lines the nodes dropped (a trace over its bound). */
  dropped: number
  /** The traced markers' lag p99 (both directions together), ms. */
  lagP99Ms: number
  /** How many markers are at or above it (the "top" of SegmentFigure). */
  top: number
  segments: SegmentFigure[]
  /** arrive's first part, acknowledgement to the origin's frame sent (see the file's comment); null when no origin told. */
  sent: { topMeanMs: number; midMeanMs: number; traced: number } | null
}

interface Received {
  received: number
  queued: number
  handed: number
  written: number
}

/** Reads a trace directory's files (probe-*.txt and keys-*.txt) into per-marker timelines. */
export function readTimelines(dir: string): { timelines: MarkerTimeline[]; markers: number; dropped: number } {
  const files = readdirSync(dir)
  const texts = (prefix: string) =>
    files.filter((f) => f.startsWith(prefix) && f.endsWith('.txt')).map((f) => readFileSync(join(dir, f), 'utf8'))
  return timelinesOf(texts('probe-'), texts('keys-'))
}

/** Joins the probe's lines with the nodes' key-trace lines (see readTimelines). */
export function timelinesOf(
  probeTexts: string[],
  nodeTexts: string[],
): { timelines: MarkerTimeline[]; markers: number; dropped: number } {
  const acked = new Map<number, { writer: string; at: number }>()
  const events = new Map<number, { reader: string; at: number }[]>()
  for (const text of probeTexts) {
    for (const line of text.split('\n')) {
      const p = line.split(' ')
      if (p[0] === 'P' && p.length === 4) acked.set(Number(p[2]), { writer: p[1], at: Number(p[3]) })
      else if (p[0] === 'E' && p.length === 4) {
        const n = Number(p[2])
        const seen = events.get(n) ?? []
        seen.push({ reader: p[1], at: Number(p[3]) })
        events.set(n, seen)
      }
    }
  }
  // A node's lines, by marker: the group that brought it from a peer, and its watch event.
  const received = new Map<number, Received>()
  const watched = new Map<number, number>()
  // The origin's side: when the first frame holding the last entry of a marker's group was sent.
  const framed = new Map<number, number>()
  let dropped = 0
  for (const text of nodeTexts) {
    const mine = new Map<number, Received>()
    const sent = new Map<number, number>()
    const groups: { last: number; markers: number[] }[] = []
    const frames: { at: number; from: number; to: number }[] = []
    for (const line of text.split('\n')) {
      const p = line.split(' ')
      if (p[0] === 'G' && p.length >= 4) {
        const handed = Number(p[2])
        const written = Number(p[3])
        let local: number[] | null = null
        let last = -1
        for (let i = 4; i < p.length; i++) {
          const tag = p[i][0]
          if (tag === 'L') (local ??= []).push(Number(p[i].slice(1)))
          else if (tag === 'Q') last = Number(p[i].slice(1).split(':')[1])
          else if (tag === 'R') {
            const [n, at, queued] = p[i].slice(1).split(':')
            mine.set(Number(n), { received: Number(at), queued: Number(queued), handed, written })
          }
        }
        if (local !== null && last >= 0) groups.push({ last, markers: local })
      } else if (p[0] === 'F' && p.length === 4) {
        frames.push({ at: Number(p[1]), from: Number(p[2]), to: Number(p[3]) })
      } else if (p[0] === 'W' && p.length === 3) {
        const n = Number(p[2])
        if (!sent.has(n)) sent.set(n, Number(p[1]))
      } else if (p[0] === 'D' && p.length === 2) dropped += Number(p[1])
    }
    frames.sort((a, b) => a.at - b.at)
    for (const g of groups) {
      const frame = frames.find((f) => f.from <= g.last && g.last <= f.to)
      if (frame !== undefined) for (const n of g.markers) framed.set(n, frame.at)
    }
    // Only the node that received a marker from a peer both holds its R and shows it to the probe's other watch.
    for (const [n, r] of mine) {
      received.set(n, r)
      const at = sent.get(n)
      if (at !== undefined) watched.set(n, at)
    }
  }
  const timelines: MarkerTimeline[] = []
  for (const [n, ack] of acked) {
    const event = events.get(n)?.find((e) => e.reader !== ack.writer)
    const r = received.get(n)
    const sentAt = watched.get(n)
    if (event === undefined || r === undefined || sentAt === undefined) continue
    const frameAt = framed.get(n)
    timelines.push({
      marker: n,
      lagMs: event.at - ack.at,
      ...(frameAt === undefined ? {} : { sentMs: frameAt - ack.at }),
      segments: {
        arrive: r.received - ack.at,
        inbox: r.queued - r.received,
        wait: r.handed - r.queued,
        write: r.written - r.handed,
        watch: sentAt - r.written,
        deliver: event.at - sentAt,
      },
    })
  }
  return { timelines, markers: acked.size, dropped }
}

const round2 = (x: number) => Math.round(x * 100) / 100

/** The anatomy of the lag's tail (see LagAnatomy); null when no marker was traced. */
export function lagAnatomy(found: {
  timelines: MarkerTimeline[]
  markers: number
  dropped: number
}): LagAnatomy | null {
  const sorted = [...found.timelines].sort((a, b) => a.lagMs - b.lagMs)
  const count = sorted.length
  if (count === 0) return null
  const p99At = Math.min(count - 1, Math.floor(count * 0.99))
  const top = sorted.slice(p99At)
  const mid = sorted.slice(Math.floor(count * 0.4), Math.max(Math.floor(count * 0.4) + 1, Math.floor(count * 0.6)))
  const mean = (rows: MarkerTimeline[], s: Segment) => rows.reduce((sum, r) => sum + r.segments[s], 0) / rows.length
  const segments = SEGMENTS.map((segment): SegmentFigure => {
    const own = sorted.map((r) => r.segments[segment]).sort((a, b) => a - b)
    return {
      segment,
      topMeanMs: round2(mean(top, segment)),
      midMeanMs: round2(mean(mid, segment)),
      p99Ms: round2(own[p99At]),
    }
  })
  const told = (rows: MarkerTimeline[]) => rows.filter((r) => r.sentMs !== undefined)
  const meanSent = (rows: MarkerTimeline[]) =>
    rows.length === 0 ? Number.NaN : round2(rows.reduce((sum, r) => sum + (r.sentMs ?? 0), 0) / rows.length)
  const traced = told(sorted).length
  return {
    markers: found.markers,
    traced: count,
    dropped: found.dropped,
    lagP99Ms: round2(sorted[p99At].lagMs),
    top: top.length,
    segments,
    sent: traced === 0 ? null : { topMeanMs: meanSent(told(top)), midMeanMs: meanSent(told(mid)), traced },
  }
}
