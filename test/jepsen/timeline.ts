import type { Cluster } from './cluster.js'
import { tryStatus } from './cluster.js'

/** What one node said about itself at `time` (ms since the run began), or that it did not answer. */
export interface NodeSample {
  time: number
  node: number
  up: boolean
  role?: string
  epoch?: number
  seq?: number
  lease?: boolean
  readOnly?: boolean
}

/**
 * Polls every node's /status through the run and keeps the samples where
 * something a report would name changed (answering or not, role, epoch,
 * lease, read-only), so that a violation can be shown beside each node's
 * role and epoch at the time.
 */
export class Timeline {
  readonly samples: NodeSample[] = []
  private readonly last = new Map<number, NodeSample>()
  private timer: NodeJS.Timeout | null = null
  private polling = false

  constructor(
    private readonly cluster: Cluster,
    private readonly now: () => number,
    private readonly intervalMs = 250,
  ) {}

  start(): this {
    this.timer = setInterval(() => void this.poll(), this.intervalMs)
    return this
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
  }

  private async poll(): Promise<void> {
    if (this.polling) return
    this.polling = true
    try {
      await Promise.all(
        this.cluster.nodes.map(async (node, i) => {
          // A node that answers late is busy, not down: on a loaded machine a status can take a few
          // hundred ms, and a sample taken as down would hide the master from master().
          const s = await tryStatus(node, Math.max(1000, this.intervalMs * 2))
          const failover = s?.failover as { lease?: { held?: boolean } } | null | undefined
          const sample: NodeSample = s
            ? {
                time: this.now(),
                node: i,
                up: true,
                role: s.role,
                epoch: s.epoch,
                seq: s.seq,
                lease: failover?.lease?.held,
                readOnly: s.readOnly,
              }
            : { time: this.now(), node: i, up: false }
          const prev = this.last.get(i)
          this.last.set(i, sample)
          if (
            !prev ||
            prev.up !== sample.up ||
            prev.role !== sample.role ||
            prev.epoch !== sample.epoch ||
            prev.lease !== sample.lease ||
            prev.readOnly !== sample.readOnly
          ) {
            this.samples.push(sample)
          }
        }),
      )
    } finally {
      this.polling = false
    }
  }

  /** The node that last said it is a master taking writes, if exactly one did. */
  master(): number | null {
    const masters = [...this.last.values()].filter((s) => s.up && s.role === 'master' && s.readOnly === false)
    return masters.length === 1 ? masters[0].node : null
  }

  /** Node i as last sampled at or before `time`. */
  at(node: number, time: number): NodeSample | undefined {
    let found: NodeSample | undefined
    for (const s of this.samples) {
      if (s.node === node && s.time <= time && (!found || s.time >= found.time)) found = s
    }
    return found
  }

  /** Changes between `from` and `to`. */
  between(from: number, to: number): NodeSample[] {
    return this.samples.filter((s) => s.time >= from && s.time <= to)
  }
}

export function describeSample(s: NodeSample | undefined): string {
  if (!s) return 'not sampled yet'
  if (!s.up) return 'no answer (down, paused or busy)'
  const lease = s.lease === undefined ? '' : s.lease ? ', lease held' : ', no lease'
  return `${s.role} epoch ${s.epoch} seq ${s.seq}${lease}${s.readOnly ? ', read-only' : ''}`
}
