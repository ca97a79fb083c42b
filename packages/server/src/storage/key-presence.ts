/**
 * Whether recently written keys exist, so that a write's group need not
 * ask LevelDB before it can keep the key count (store.ts, readCurrent).
 * A point read costs the write path more than the rest of a put: without
 * this, every key of every group is looked up first.
 *
 * Exact, never a guess: the Store sets a key here only from a group it has
 * written (the group read or wrote the key's record), groups commit one
 * after another, and whatever replaces the data otherwise (a full sync, a
 * restore, a damaged data dir dropped) clears it. Bounded: past `max` keys
 * the least recently written go, and are read again when next written.
 *
 * Only for data dirs without a conflict policy: there a record that exists
 * is a key. Tombstones (multi-master) need the record itself.
 */
export class KeyPresence {
  /** latin1 of the prefixed key -> whether it exists; Map order is write order. */
  private readonly known = new Map<string, boolean>()

  constructor(private readonly max: number) {}

  get size(): number {
    return this.known.size
  }

  /** Whether the key exists, or undefined when it is not known here. */
  get(name: string): boolean | undefined {
    return this.known.get(name)
  }

  set(name: string, exists: boolean): void {
    if (this.max <= 0) return
    // Deleted first so that it moves to the newest end.
    this.known.delete(name)
    this.known.set(name, exists)
    if (this.known.size > this.max) {
      const oldest = this.known.keys().next()
      if (!oldest.done) this.known.delete(oldest.value)
    }
  }

  clear(): void {
    this.known.clear()
  }
}
