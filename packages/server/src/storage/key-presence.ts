import { hashName, NOT_KEPT } from './name-hash.js'

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
 * `max` keys, and names of NAME_BYTES_PER_KEY bytes a key on average,
 * dropping the older half at a time; a dropped key is read again when next
 * written.
 *
 * Only for data dirs without a conflict policy: there a record that exists
 * is a key. Tombstones (multi-master) need the record itself.
 *
 * Complete (markComplete): when the store opened a data dir that holds no
 * record, every key that comes to exist is set here by the group that
 * writes it, so a key not held here does not exist: it is known absent,
 * with no read (a store filling with new keys otherwise reads each one
 * first, a point read of LevelDB that finds nothing). Only until a key is
 * dropped: a swap that empties a generation holding keys, a clear, a name
 * too long to keep; it is not restored until the store finds its data
 * empty again.
 */
export class KeyPresence {
  /**
   * Two generations, keyed by the latin1 name of the prefixed key: new
   * writes go to `current`; when it holds half of `max`, it becomes
   * `previous` and the older one is emptied for reuse. A key is looked up
   * in `current` first, which holds its latest state if it was written
   * since; else `previous` holds the state it had then, which nothing has
   * changed since. (Evicting one oldest key at a time costs a walk past
   * every key deleted before it: quadratic under steady inserts.)
   */
  private current: PresenceTable
  private previous: PresenceTable
  private readonly half: number
  /** Swaps and clears so far (see stamp). */
  private swaps = 0
  /** Every key that exists is held (see above). */
  private complete = false

  constructor(private readonly max: number) {
    this.half = Math.max(1, max >> 1)
    this.current = new PresenceTable(this.half, this.half * NAME_BYTES_PER_KEY)
    this.previous = new PresenceTable(this.half, this.half * NAME_BYTES_PER_KEY)
  }

  /** The data holds no key now (the store found it empty): from here every key that exists is set here. */
  markComplete(): void {
    this.complete = this.max > 0 && this.size === 0
  }

  /** Whether a key not held here is known not to exist (see above). */
  get isComplete(): boolean {
    return this.complete
  }

  get size(): number {
    return this.current.count + this.previous.count
  }

  /** Bytes of the tables' arrays (the memory this holds, less a few objects). */
  get bytes(): number {
    return this.current.bytes + this.previous.bytes
  }

  /**
   * Changes whenever an entry may have moved (a swap, a clear): a ticket
   * taken before points nowhere certain after.
   */
  get stamp(): number {
    return this.swaps
  }

  /** Whether the key exists, or undefined when it is not known here. */
  get(name: string): boolean | undefined {
    if (this.max <= 0) return undefined
    const hash = hashName(name, 0, LATIN1)
    if (hash === NOT_KEPT) return undefined
    return this.current.get(name, hash) ?? this.previous.get(name, hash) ?? (this.complete ? false : undefined)
  }

  /**
   * Whether the key exists, as a ticket for keep(): UNKNOWN, or KNOWN with
   * EXISTS when it does, and the entry holding it when `current` does. A
   * write looks its key up before it is built and records its state after
   * it is written: with the ticket, a key held in `current` costs one
   * store into its entry, instead of a second hash and probe (a cache miss
   * into each array and into the names).
   */
  lookup(name: string): number {
    if (this.max <= 0) return UNKNOWN
    const hash = hashName(name, 0, LATIN1)
    if (hash === NOT_KEPT) return UNKNOWN
    const entry = this.current.find(name, hash)
    if (entry >= 0) return (entry + 1) * HELD + KNOWN + (this.current.existsAt(entry) ? EXISTS : 0)
    const known = this.previous.get(name, hash)
    if (known === undefined) return this.complete ? KNOWN : UNKNOWN
    return KNOWN + (known ? EXISTS : 0)
  }

  /**
   * Records that `name`, looked up as `ticket` while the stamp was `stamp`,
   * now exists or not: in place when the ticket names an entry of
   * `current` and nothing moved since, else as set() does.
   */
  keep(ticket: number, stamp: number, name: string, exists: boolean): void {
    if (ticket >= HELD && stamp === this.swaps) {
      this.current.setAt(Math.floor(ticket / HELD) - 1, exists)
      return
    }
    this.set(name, exists)
  }

  set(name: string, exists: boolean): void {
    if (this.max <= 0) return
    const hash = hashName(name, 0, LATIN1)
    if (hash === NOT_KEPT) {
      // Not kept: if it exists, this no longer holds every key that does.
      if (exists) this.complete = false
      return
    }
    this.current.set(name, hash, exists)
    if (this.current.count >= this.half || this.current.full) {
      const emptied = this.previous
      // The keys it held are dropped (the first swap drops none).
      if (emptied.count > 0) this.complete = false
      emptied.clear()
      this.previous = this.current
      this.current = emptied
      this.swaps++
    }
  }

  clear(): void {
    this.current.clear()
    this.previous.clear()
    this.complete = false
    this.swaps++
  }
}

/**
 * A lookup's ticket (see KeyPresence.lookup): a number, its low bits KNOWN
 * and EXISTS, and above them, in multiples of HELD, the entry of `current`
 * holding the key plus one (0: not held there).
 */
const UNKNOWN = 0
const KNOWN = 1
const EXISTS = 2
const HELD = 4

/** Whether a lookup knew the key (else it must be read). */
export function ticketKnown(ticket: number): boolean {
  return ticket % 2 === KNOWN
}

/** Whether a known key existed when it was looked up. */
export function ticketExists(ticket: number): boolean {
  return ticket % HELD >= EXISTS
}

/** The highest character a kept name has: names are latin1 (a byte a character in the arena). */
export const LATIN1 = 0xff
/**
 * The names' bytes a generation holds, per key it may hold, before it is
 * swapped out. Keys may be up to --max-key-bytes long: with no byte bound,
 * a run of long keys made the arenas hold `max` times that (1.6 GB at 8 KiB
 * keys), kept after the keys were dropped. Keys longer than this on average
 * leave fewer of them remembered, never a wrong answer.
 */
export const NAME_BYTES_PER_KEY = 64
/** Entries a table makes room for at first; it doubles from there up to its capacity. */
const FIRST_ENTRIES = 256

/**
 * One generation: an open-addressing hash table of names to a flag, in
 * typed arrays, the names' characters (latin1: a byte each) laid end to end
 * in one byte arena. No JavaScript object per key, so about 21 bytes a key
 * besides the key's own bytes (a Map of strings holds a string and a map
 * entry for each, several times that) and nothing for the garbage collector
 * to walk. Grows by doubling up to `capacity` entries, so a store that
 * writes few keys holds little.
 */
export class PresenceTable {
  count = 0
  /** Per slot: the entry's index + 1, or 0 when the slot is empty. At most half full. */
  private slots = new Int32Array(0)
  private hashes = new Int32Array(0)
  private starts = new Int32Array(0)
  private lengths = new Int32Array(0)
  private exists = new Uint8Array(0)
  private arena = new Uint8Array(0)
  private used = 0

  constructor(
    private readonly capacity: number,
    /** The names' bytes it holds before its owner swaps it out (see full). */
    private readonly nameBytes: number,
  ) {}

  /** Its names take their share of bytes: the owner swaps it out. */
  get full(): boolean {
    return this.used >= this.nameBytes
  }

  get bytes(): number {
    return (
      this.slots.byteLength +
      this.hashes.byteLength +
      this.starts.byteLength +
      this.lengths.byteLength +
      this.exists.byteLength +
      this.arena.byteLength
    )
  }

  get(name: string, hash: number): boolean | undefined {
    if (this.count === 0) return undefined
    const entry = this.slots[this.slotOf(name, hash)]
    return entry === 0 ? undefined : this.exists[entry - 1] === 1
  }

  /** The entry holding `name`, or -1. Entries keep their index until clear(). */
  find(name: string, hash: number): number {
    if (this.count === 0) return -1
    return this.slots[this.slotOf(name, hash)] - 1
  }

  existsAt(entry: number): boolean {
    return this.exists[entry] === 1
  }

  setAt(entry: number, exists: boolean): void {
    this.exists[entry] = exists ? 1 : 0
  }

  /** Sets the name's flag; returns the entry holding it (kept until clear()). */
  set(name: string, hash: number, exists: boolean): number {
    let slot = -1
    if (this.count > 0) {
      slot = this.slotOf(name, hash)
      const found = this.slots[slot]
      if (found !== 0) {
        this.exists[found - 1] = exists ? 1 : 0
        return found - 1
      }
    }
    if (this.count === this.hashes.length) {
      // KeyPresence swaps a table out once it holds its capacity.
      if (this.count >= this.capacity) throw new Error('presence table is full')
      this.grow()
      slot = this.slotOf(name, hash)
    }
    if (slot < 0) slot = this.slotOf(name, hash)
    const entry = this.count++
    if (this.used + name.length > this.arena.length) this.growArena(name.length)
    const start = this.used
    for (let i = 0; i < name.length; i++) this.arena[start + i] = name.charCodeAt(i)
    this.used += name.length
    this.hashes[entry] = hash
    this.starts[entry] = start
    this.lengths[entry] = name.length
    this.exists[entry] = exists ? 1 : 0
    this.slots[slot] = entry + 1
    return entry
  }

  /** Empties the table, keeping its arrays for the next generation. */
  clear(): void {
    if (this.count === 0) return
    this.slots.fill(0)
    this.count = 0
    this.used = 0
  }

  /** The slot holding `name`, or the empty slot where it would go (linear probing). */
  private slotOf(name: string, hash: number): number {
    const slots = this.slots
    const mask = slots.length - 1
    let slot = hash & mask
    for (;;) {
      const entry = slots[slot]
      if (entry === 0 || (this.hashes[entry - 1] === hash && this.holds(entry - 1, name))) return slot
      slot = (slot + 1) & mask
    }
  }

  private holds(entry: number, name: string): boolean {
    if (this.lengths[entry] !== name.length) return false
    const arena = this.arena
    const start = this.starts[entry]
    for (let i = 0; i < name.length; i++) if (arena[start + i] !== name.charCodeAt(i)) return false
    return true
  }

  /** Doubles the entries (up to capacity; the owner swaps tables before a full one takes more) and rehashes. */
  private grow(): void {
    const entries = Math.min(this.capacity, Math.max(FIRST_ENTRIES, this.hashes.length * 2))
    const copy = <A extends Int32Array | Uint8Array>(from: A, to: A): A => {
      to.set(from.subarray(0, this.count))
      return to
    }
    this.hashes = copy(this.hashes, new Int32Array(entries))
    this.starts = copy(this.starts, new Int32Array(entries))
    this.lengths = copy(this.lengths, new Int32Array(entries))
    this.exists = copy(this.exists, new Uint8Array(entries))
    let size = 1
    while (size < entries * 2) size *= 2
    const slots = new Int32Array(size)
    const mask = size - 1
    for (let entry = 0; entry < this.count; entry++) {
      let slot = this.hashes[entry] & mask
      while (slots[slot] !== 0) slot = (slot + 1) & mask
      slots[slot] = entry + 1
    }
    this.slots = slots
  }

  private growArena(needed: number): void {
    // Up to the names' share (the owner swaps the table once it is reached), or one name past it.
    const size = Math.min(Math.max(this.arena.length * 2, FIRST_ENTRIES * 16), this.nameBytes)
    const arena = new Uint8Array(Math.max(size, this.used + needed))
    arena.set(this.arena.subarray(0, this.used))
    this.arena = arena
  }
}
