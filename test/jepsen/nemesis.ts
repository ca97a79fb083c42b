import type { CutMode } from '../helpers/fault-proxy.js'
import { setTestClock } from '../helpers/test-clock.js'
import type { Cluster } from './cluster.js'
import type { SmallDisks } from './disks.js'
import type { Timeline } from './timeline.js'

/**
 * The nemesis: real faults on real processes and links.
 *
 * - kill: SIGKILL a node; healed by starting it again on its data dir.
 * - pause: SIGSTOP; healed by SIGCONT.
 * - isolate-master: cut every link between the current master and the
 *   others, while clients still reach it (the partition of issue 13).
 * - isolate: the same for a node picked at random.
 * - split: a random minority against the majority.
 * - one-way: one direction of one link (i no longer reaches j; j still reaches i).
 * - flap: one link cut and healed every 100-400 ms.
 * - delay: 50-300 ms added to every link of a node.
 * - clock: a node's wall clock stepped by up to a minute either way
 *   (its test clock, --test-clock-file; leases run on the monotonic clock).
 * - disk-full: a node's disk (a small tmpfs) filled until ENOSPC; healed
 *   by freeing it (the node takes writes again by itself).
 *
 * Links are cut either by dropping what is connected ('blackhole') or by
 * stalling it ('stall': connections kept, nothing gets through, as when
 * every packet is dropped). Links are counted, so that two faults cutting
 * the same link do not heal each other.
 */
export type FaultKind =
  | 'kill'
  | 'pause'
  | 'isolate-master'
  | 'isolate'
  | 'split'
  | 'one-way'
  | 'flap'
  | 'delay'
  | 'clock'
  | 'disk-full'

export const ALL_FAULTS: FaultKind[] = [
  'kill',
  'pause',
  'isolate-master',
  'isolate',
  'split',
  'one-way',
  'flap',
  'delay',
  'clock',
  'disk-full',
]

export interface FaultEvent {
  /** ms since the run began. */
  time: number
  phase: 'start' | 'end'
  fault: FaultKind
  nodes: number[]
  detail: string
}

interface Active {
  kind: FaultKind
  nodes: number[]
  detail: string
  /** Nodes this fault holds alone (a killed node cannot also be paused). */
  holds: number[]
  undo: () => Promise<void>
}

export interface NemesisOptions {
  kinds: FaultKind[]
  /** Faults active at once, at most. */
  maxActive: number
  /** Clock offset file of each node (for 'clock'). */
  clockFiles: string[]
  /** Small disks (for 'disk-full'), or null when the machine has none. */
  disks: SmallDisks | null
}

export class Nemesis {
  readonly events: FaultEvent[] = []
  readonly counts = new Map<FaultKind, number>()
  private active: Active[] = []
  private readonly cuts: number[][]

  constructor(
    private readonly cluster: Cluster,
    private readonly timeline: Timeline,
    private readonly random: () => number,
    private readonly now: () => number,
    private readonly options: NemesisOptions,
  ) {
    const n = cluster.nodes.length
    this.cuts = Array.from({ length: n }, () => new Array(n).fill(0))
  }

  /** Faults injected so far. */
  get injected(): number {
    let total = 0
    for (const c of this.counts.values()) total += c
    return total
  }

  /** One move: heal a fault, or (with room for one) inject one. */
  async step(): Promise<void> {
    if (this.active.length >= this.options.maxActive || (this.active.length > 0 && this.random() < 0.4)) {
      const [fault] = this.active.splice(Math.floor(this.random() * this.active.length), 1)
      await this.end(fault)
      return
    }
    const kind = this.pick(this.options.kinds.filter((k) => k !== 'disk-full' || this.options.disks !== null))
    const fault = await this.inject(kind)
    if (!fault) return
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1)
    this.active.push(fault)
    this.log('start', fault)
  }

  async healAll(): Promise<void> {
    for (const fault of this.active.splice(0)) await this.end(fault)
  }

  private async end(fault: Active): Promise<void> {
    await fault.undo()
    this.log('end', fault)
  }

  private log(phase: 'start' | 'end', fault: Active): void {
    this.events.push({ time: this.now(), phase, fault: fault.kind, nodes: fault.nodes, detail: fault.detail })
  }

  private pick<T>(xs: T[]): T {
    return xs[Math.floor(this.random() * xs.length)]
  }

  private free(): number[] {
    const held = new Set(this.active.flatMap((a) => a.holds))
    return this.cluster.nodes.map((_, i) => i).filter((i) => !held.has(i))
  }

  private cutMode(): CutMode {
    return this.random() < 0.5 ? 'stall' : 'blackhole'
  }

  /** Cuts the directed link i->j (counted). */
  private cutLink(i: number, j: number, mode: CutMode): void {
    if (this.cuts[i][j]++ === 0) this.cluster.proxies[i][j].cut(mode)
  }

  private healLink(i: number, j: number): void {
    if (--this.cuts[i][j] === 0) this.cluster.proxies[i][j].heal()
  }

  /** Cuts both directions between every node of `a` and every node of `b`. */
  private partition(a: number[], b: number[], mode: CutMode): () => Promise<void> {
    const links: [number, number][] = []
    for (const i of a) for (const j of b) links.push([i, j], [j, i])
    for (const [i, j] of links) this.cutLink(i, j, mode)
    return async () => {
      for (const [i, j] of links) this.healLink(i, j)
    }
  }

  private async inject(kind: FaultKind): Promise<Active | null> {
    const n = this.cluster.nodes.length
    const all = [...Array(n).keys()]
    const others = (i: number) => all.filter((j) => j !== i)
    switch (kind) {
      case 'kill': {
        const free = this.free()
        if (free.length === 0) return null
        const i = this.pick(free)
        const node = this.cluster.nodes[i]
        await node.kill('SIGKILL')
        return { kind, nodes: [i], holds: [i], detail: `SIGKILL n${i}`, undo: () => restart(node) }
      }
      case 'pause': {
        const free = this.free()
        if (free.length === 0) return null
        const i = this.pick(free)
        const node = this.cluster.nodes[i]
        await node.kill('SIGSTOP')
        return { kind, nodes: [i], holds: [i], detail: `SIGSTOP n${i}`, undo: () => node.kill('SIGCONT') }
      }
      case 'isolate-master':
      case 'isolate': {
        const master = this.timeline.master()
        const i = kind === 'isolate-master' && master !== null ? master : this.pick(all)
        const mode = this.cutMode()
        const undo = this.partition([i], others(i), mode)
        const who = kind === 'isolate-master' && master !== null ? `master n${i}` : `n${i}`
        return { kind, nodes: [i], holds: [], detail: `isolate ${who} from the group (${mode})`, undo }
      }
      case 'split': {
        const shuffled = [...all].sort(() => this.random() - 0.5)
        const minority = shuffled.slice(0, Math.floor(n / 2))
        const majority = shuffled.slice(Math.floor(n / 2))
        const mode = this.cutMode()
        const undo = this.partition(minority, majority, mode)
        const names = (xs: number[]) => xs.map((x) => `n${x}`).join(',')
        return {
          kind,
          nodes: minority,
          holds: [],
          detail: `split ${names(minority)} | ${names(majority)} (${mode})`,
          undo,
        }
      }
      case 'one-way': {
        const i = this.pick(all)
        const j = this.pick(others(i))
        const mode = this.cutMode()
        this.cutLink(i, j, mode)
        return {
          kind,
          nodes: [i, j],
          holds: [],
          detail: `n${i} cannot reach n${j}; n${j} still reaches n${i} (${mode})`,
          undo: async () => this.healLink(i, j),
        }
      }
      case 'flap': {
        const i = this.pick(all)
        const j = this.pick(others(i))
        let cut = false
        let timer: NodeJS.Timeout | null = null
        const toggle = () => {
          if (cut) {
            this.healLink(i, j)
            this.healLink(j, i)
          } else {
            this.cutLink(i, j, 'blackhole')
            this.cutLink(j, i, 'blackhole')
          }
          cut = !cut
          timer = setTimeout(toggle, 100 + this.random() * 300)
        }
        toggle()
        return {
          kind,
          nodes: [i, j],
          holds: [],
          detail: `link n${i}-n${j} flapping`,
          undo: async () => {
            if (timer) clearTimeout(timer)
            if (cut) {
              this.healLink(i, j)
              this.healLink(j, i)
            }
          },
        }
      }
      case 'delay': {
        const i = this.pick(all)
        const ms = 50 + Math.floor(this.random() * 250)
        const links = others(i).flatMap((j) => [this.cluster.proxies[i][j], this.cluster.proxies[j][i]])
        for (const p of links) p.delay(ms)
        return {
          kind,
          nodes: [i],
          holds: [],
          detail: `links of n${i} delayed ${ms} ms`,
          undo: async () => {
            for (const p of links) p.delay(0)
          },
        }
      }
      case 'clock': {
        const held = new Set(this.active.filter((a) => a.kind === 'clock').flatMap((a) => a.nodes))
        const candidates = all.filter((i) => !held.has(i))
        if (candidates.length === 0) return null
        const i = this.pick(candidates)
        const offset = Math.round((this.random() < 0.5 ? -1 : 1) * (200 + this.random() * 60_000))
        const file = this.options.clockFiles[i]
        setTestClock(file, offset)
        return {
          kind,
          nodes: [i],
          holds: [],
          detail: `wall clock of n${i} stepped ${offset > 0 ? '+' : ''}${offset} ms`,
          undo: async () => setTestClock(file, 0),
        }
      }
      case 'disk-full': {
        const disks = this.options.disks
        const free = this.free().filter((i) => !this.cluster.isWitness(i))
        if (!disks || free.length === 0) return null
        const i = this.pick(free)
        const bytes = disks.fill(i)
        return {
          kind,
          nodes: [i],
          holds: [i],
          detail: `disk of n${i} full (${(bytes / 1048576).toFixed(1)} MiB of filler)`,
          undo: async () => disks.free(i),
        }
      }
    }
  }
}

/** Starts a killed node again (a few tries: its port may be briefly taken). */
async function restart(node: Cluster['nodes'][number]): Promise<void> {
  if (node.running) return
  for (let attempt = 1; ; attempt++) {
    try {
      await node.start()
      return
    } catch (err) {
      if (attempt >= 5) throw err
      await new Promise((r) => setTimeout(r, 200 * attempt))
    }
  }
}
