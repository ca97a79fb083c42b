/**
 * Which keys carry a TTL and when each expires: what the master's expirer
 * (expirer.ts) needs to find the keys due now without scanning the data,
 * and what `status` counts. Every data node keeps one (a replica may be
 * promoted), in memory, updated as groups commit, and rebuilt from the
 * records when the node starts or takes a full sync.
 *
 * A map (key -> expiry time) is the truth; a binary min-heap of (time, key)
 * finds the earliest. A key written again or deleted leaves its old heap
 * entry behind, skipped when it surfaces (its time no longer matches the
 * map's); the heap is rebuilt from the map when such stale entries
 * outnumber the live ones, so it stays within twice the keys with a TTL.
 */
export class ExpiryIndex {
  private readonly at = new Map<string, number>()
  private heap: [number, string][] = []

  /** Keys that carry a TTL. */
  get size(): number {
    return this.at.size
  }

  set(key: string, expiresAt: number): void {
    if (this.at.get(key) === expiresAt) return
    this.at.set(key, expiresAt)
    this.push([expiresAt, key])
    this.compact()
  }

  delete(key: string): void {
    if (this.at.delete(key)) this.compact()
  }

  clear(): void {
    this.at.clear()
    this.heap = []
  }

  /**
   * Up to `max` keys due at `now` (earliest first), taken off the heap;
   * their map entries stay until their deletes commit. Give back with
   * requeue() those whose deletes did not commit.
   */
  takeDue(now: number, max: number): [string, number][] {
    const due: [string, number][] = []
    while (due.length < max && this.heap.length > 0 && this.heap[0][0] <= now) {
      const [expiresAt, key] = this.pop()
      if (this.at.get(key) === expiresAt) due.push([key, expiresAt])
    }
    return due
  }

  /** Puts back keys from takeDue() whose deletes failed, unless they changed meanwhile. */
  requeue(keys: [string, number][]): void {
    for (const [key, expiresAt] of keys) if (this.at.get(key) === expiresAt) this.push([expiresAt, key])
  }

  /** The earliest expiry time in the heap (possibly of a stale entry), or undefined when none. */
  next(): number | undefined {
    return this.heap[0]?.[0]
  }

  private compact(): void {
    if (this.heap.length <= 2 * this.at.size + 1024) return
    this.heap = [...this.at].map(([key, at]): [number, string] => [at, key])
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.down(i)
  }

  private push(item: [number, string]): void {
    const heap = this.heap
    heap.push(item)
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (heap[parent][0] <= item[0]) break
      heap[i] = heap[parent]
      i = parent
    }
    heap[i] = item
  }

  private pop(): [number, string] {
    const heap = this.heap
    const top = heap[0]
    const last = heap.pop() as [number, string]
    if (heap.length > 0) {
      heap[0] = last
      this.down(0)
    }
    return top
  }

  private down(start: number): void {
    const heap = this.heap
    const item = heap[start]
    let i = start
    for (;;) {
      let child = 2 * i + 1
      if (child >= heap.length) break
      if (child + 1 < heap.length && heap[child + 1][0] < heap[child][0]) child++
      if (heap[child][0] >= item[0]) break
      heap[i] = heap[child]
      i = child
    }
    heap[i] = item
  }
}
