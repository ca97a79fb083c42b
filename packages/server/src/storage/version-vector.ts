/**
 * A version vector: for each origin, the highest counter of its writes that
 * this node has applied. Origins number their writes densely (1, 2, 3, ...)
 * and a node applies each origin's writes in that order, so the vector says
 * exactly which writes the node holds: all of origin o's up to vv[o], none
 * after. That is what peers resume from and what writes are deduplicated
 * against.
 *
 * Kept as a plain object (origin -> counter): there are as many origins as
 * nodes that ever took writes, and it is written with every group commit.
 */
export type VersionVectorObject = Record<string, number>

export class VersionVector {
  private counters: Map<string, number>

  constructor(from: VersionVectorObject = {}) {
    this.counters = new Map(Object.entries(from))
  }

  get(origin: string): number {
    return this.counters.get(origin) ?? 0
  }

  set(origin: string, counter: number): void {
    this.counters.set(origin, counter)
  }

  /** Raises origin's counter to `counter` (never lowers it). */
  advance(origin: string, counter: number): void {
    if (counter > (this.counters.get(origin) ?? 0)) this.counters.set(origin, counter)
  }

  /** Raises every counter to at least `other`'s. */
  join(other: VersionVectorObject): void {
    for (const origin in other) this.advance(origin, other[origin])
  }

  /** True when this vector holds everything `other` does. */
  covers(other: VersionVectorObject): boolean {
    for (const origin in other) if (other[origin] > this.get(origin)) return false
    return true
  }

  /** Sum of the counters: how many writes the vector says are held. */
  get total(): number {
    let n = 0
    for (const c of this.counters.values()) n += c
    return n
  }

  origins(): IterableIterator<string> {
    return this.counters.keys()
  }

  toObject(): VersionVectorObject {
    const out: VersionVectorObject = {}
    for (const [origin, counter] of [...this.counters].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
      out[origin] = counter
    }
    return out
  }

  clear(): void {
    this.counters.clear()
  }
}

/** True when `a` holds everything `b` does. */
export function vvCovers(a: VersionVectorObject, b: VersionVectorObject): boolean {
  for (const origin in b) if (b[origin] > (a[origin] ?? 0)) return false
  return true
}
