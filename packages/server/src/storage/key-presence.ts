/**
 * Whether recently written keys exist, so that a write's group need not
 * ask LevelDB before it can keep the key count (store.ts, readCurrent).
 * A point read costs the write path more than the rest of a put: without
 * this, every key of every group is looked up first.
 *
 * Exact, never a guess: the Store sets a key here only from a group it has
 * written (the group read or wrote the key's record), groups commit one
 * after another, and whatever replaces the data otherwise (a full sync, a
 * restore, a damaged data dir dropped) clears it. Bounded: it holds at most
 * `max` keys, dropping the older half at a time; a dropped key is read again
 * when next written.
 *
 * Only for data dirs without a conflict policy: there a record that exists
 * is a key. Tombstones (multi-master) need the record itself.
 */
export class KeyPresence {
  /**
   * Two generations, latin1 of the prefixed key -> whether it exists: new
   * writes go to `current`; when it holds half of `max`, it becomes
   * `previous` and the older one goes whole. A key is looked up in `current`
   * first, which holds its latest state if it was written since; else
   * `previous` holds the state it had then, which nothing has changed since.
   * (Evicting one oldest key at a time from a Map costs a walk past every
   * key deleted before it: quadratic under steady inserts.)
   */
  private current = new Map<string, boolean>()
  private previous = new Map<string, boolean>()

  constructor(private readonly max: number) {}

  get size(): number {
    return this.current.size + this.previous.size
  }

  /** Whether the key exists, or undefined when it is not known here. */
  get(name: string): boolean | undefined {
    return this.current.get(name) ?? this.previous.get(name)
  }

  set(name: string, exists: boolean): void {
    if (this.max <= 0) return
    this.current.set(name, exists)
    if (this.current.size >= Math.max(1, this.max >> 1)) {
      this.previous = this.current
      this.current = new Map()
    }
  }

  clear(): void {
    this.current.clear()
    this.previous.clear()
  }
}
