import type { Value } from '@tandem/protocol'
import { hashBytes, hashName, NOT_KEPT } from './name-hash.js'

/** What the cache answers for a key it knows LevelDB holds no record of. */
export const ABSENT: unique symbol = Symbol('absent')
/** A value kept, or ABSENT: a key with no record. */
type Kept = Value | typeof ABSENT

/**
 * Values of recently read keys, kept in memory so that a read of one is
 * answered without a LevelDB lookup (Store.getNow, Store.getEachNow).
 *
 * What a read may return from here: it must never be older than what a
 * read before it returned, nor than a write acknowledged before it began.
 * The cache holds that by holding only what LevelDB holds as committed:
 * - a value is filled only from a read of LevelDB made while no write of
 *   data is in flight (`writing` is 0: between a group's hand-off to
 *   LevelDB and its completion, LevelDB may show the old value or the new
 *   one, and a read of the old one must not outlive the write);
 * - every key a group writes is dropped from here when the group is handed
 *   to LevelDB (beginWrite), before any read can see its new value, and no
 *   key is filled again until the write is done (endWrite);
 * - what replaces data outside a group (a full sync, a restore, a reopen
 *   of LevelDB, a discarded data dir) clears it whole, and a full sync
 *   holds fills off from its start to its end (hold / release).
 * Only values with no TTL are kept, so an expiry is never missed; a read
 * of a key with one goes to LevelDB. A key with no record at all is kept
 * as ABSENT, under the same rules (a write that makes it is dropped at
 * hand-off like any other); a tombstone or an expired record is not kept.
 *
 * Keys are named by their UTF-8 bytes as a latin1 string (what the write
 * path names them by, less the data prefix), and only keys of ASCII bytes
 * are kept: for those the name is the key string itself, so a read made
 * with a string needs no encoding to look it up, and a read made with the
 * key's bytes (a RESP GET) is looked up by them, with no string made.
 *
 * Bounded by entries and by bytes: the key and value lengths plus a fixed
 * overhead per entry, and the table's arrays (see EntryTable.bytes), which
 * grow only while they fit beside what is kept; past either bound, the
 * oldest filled are dropped first.
 */
export class ReadCache {
  private table = new EntryTable(0)
  private heldBytes = 0
  /** Data writes handed to LevelDB and not yet done: no fill while any is. */
  private writing = 0
  /** A full sync is replacing the data: no fill until it ends. */
  private held = false
  /** Moves on whenever LevelDB's data may change under a read: a write handed over, a hold, a clear (see readTicket). */
  private generation = 0
  /** answerEach's flags and its scratch, per key of the largest batch yet. */
  private answered = new Uint8Array(0)
  private keyHashes = new Int32Array(0)
  private keyEntries = new Int32Array(0)
  /** Reads answered from here, and fills made, since start. */
  hits = 0
  fills = 0

  constructor(
    private readonly maxEntries: number,
    private readonly maxBytes: number,
  ) {}

  get size(): number {
    return this.table.count
  }

  /** The bytes counted against maxBytes: the entries' and the table's. */
  get bytes(): number {
    return this.heldBytes + this.table.bytes
  }

  /** The value kept for `name`, ABSENT, or undefined (not kept: read LevelDB). */
  get(name: string): Kept | undefined {
    const table = this.table
    if (table.count === 0) return undefined
    const hash = hashName(name, 0, ASCII)
    if (hash === NOT_KEPT) return undefined
    const entry = table.find(name, 0, hash)
    if (entry < 0) return undefined
    this.hits++
    return table.valueAt(entry)
  }

  /**
   * Looks up a batch of keys (UTF-8 bytes) at once: a kept key's answer
   * goes into out[i] (undefined for ABSENT) and the flag answered back for
   * it is 1; the others are 0, for the caller to read from LevelDB. The
   * batch is walked twice, slots first and names and values then, so that
   * the memory reads of different keys overlap rather than each waiting
   * for the one before (a large table is mostly cache misses). The flags
   * are the cache's own, good until its next call.
   */
  answerEach(keys: readonly Uint8Array[], out: unknown[]): Uint8Array {
    const n = keys.length
    if (this.answered.length < n) {
      const size = Math.max(n, this.answered.length * 2)
      this.answered = new Uint8Array(size)
      this.keyHashes = new Int32Array(size)
      this.keyEntries = new Int32Array(size)
    }
    const answered = this.answered
    const table = this.table
    if (table.count === 0) {
      answered.fill(0, 0, n)
      return answered
    }
    const entries = this.keyEntries
    table.candidates(keys, this.keyHashes, entries)
    let hits = 0
    for (let i = 0; i < n; i++) {
      let entry = entries[i]
      if (entry === NONE) {
        answered[i] = 0
        continue
      }
      const key = keys[i]
      const name = table.nameOf(entry)
      // Another name of the same hash: look on past it, comparing names.
      if (name.length !== key.length || !sameBytes(name, key)) entry = table.findBytes(key, this.keyHashes[i])
      if (entry === NONE) {
        answered[i] = 0
        continue
      }
      const value = table.valueAt(entry)
      out[i] = value === ABSENT ? undefined : value
      answered[i] = 1
      hits++
    }
    this.hits += hits
    return answered
  }

  /** Whether a read of LevelDB made now may be kept (see the class comment). */
  get fillable(): boolean {
    return this.writing === 0 && !this.held && this.maxEntries > 0
  }

  /**
   * Keeps `value`, just read from LevelDB under `name`, when no data write
   * is in flight and the name is ASCII; the caller checked the record
   * (intact, no TTL).
   */
  fill(name: string, value: Kept): void {
    if (!this.fillable) return
    const hash = hashName(name, 0, ASCII)
    if (hash !== NOT_KEPT) this.keep(name, hash, value)
  }

  /**
   * A ticket for a read of LevelDB about to begin, for fillAfter; NO_TICKET
   * when what it reads could not be kept now.
   */
  readTicket(): number {
    return this.fillable ? this.generation : NO_TICKET
  }

  /**
   * fill() for a read begun with `ticket` that may have taken a while (on
   * LevelDB's threads): kept only when no data write was handed to
   * LevelDB, and nothing replaced the data, since it began. No write was
   * in flight when it began (readTicket), and none began since, so what it
   * read is what LevelDB still holds as committed.
   */
  fillAfter(ticket: number, name: string, value: Kept): void {
    if (ticket === this.generation) this.fill(name, value)
  }

  /** Whether fillAfter(ticket, ...) would keep an ASCII name now (so a value need be made for it). */
  ticketCurrent(ticket: number): boolean {
    return ticket === this.generation && this.fillable
  }

  /** fill() for a key given as its UTF-8 bytes. */
  fillBytes(key: Uint8Array, value: Kept): void {
    if (!this.fillable) return
    const name = asciiName(key)
    if (name !== null) this.keep(name, hashName(name, 0, ASCII), value)
  }

  /**
   * A write of data is being handed to LevelDB: drops each of the keys it
   * writes (named as the write path names them, `skip` characters of data
   * prefix first) and holds fills off until endWrite().
   */
  beginWrite(names: Iterable<string>, skip: number): void {
    this.writing++
    this.generation++
    const table = this.table
    if (table.count === 0) return
    for (const full of names) {
      const hash = hashName(full, skip, ASCII)
      if (hash === NOT_KEPT) continue
      const entry = table.find(full, skip, hash)
      if (entry >= 0) this.heldBytes -= table.remove(entry)
    }
  }

  /** A write begun with beginWrite is done (applied or failed). */
  endWrite(): void {
    this.writing--
  }

  /** The data is being replaced whole: drops everything and fills nothing until release(). */
  hold(): void {
    this.held = true
    this.clear()
  }

  /** The data replaced since hold() is in place: drops what may have been filled meanwhile, fills again. */
  release(): void {
    this.clear()
    this.held = false
  }

  clear(): void {
    this.generation++
    if (this.table.capacity > 0) this.table = new EntryTable(0)
    this.heldBytes = 0
  }

  private keep(name: string, hash: number, value: Kept): void {
    const size = entryBytes(name, value)
    let table = this.table
    // Too large to keep beside the table it would be in, at its smallest: what is kept stays.
    const least = table.capacity > 0 ? table.bytes : tableBytes(Math.min(this.maxEntries, FIRST_ENTRIES))
    if (size + least > this.maxBytes) return
    const old = table.find(name, 0, hash)
    if (old >= 0) this.heldBytes -= table.remove(old)
    if (table.count === table.capacity) {
      // A larger table only while it fits beside what is kept; else the new entry takes the oldest's place.
      const larger = Math.min(this.maxEntries, Math.max(FIRST_ENTRIES, table.capacity * 2))
      if (larger > table.capacity && tableBytes(larger) + this.heldBytes + size <= this.maxBytes) {
        table = new EntryTable(larger, table)
        this.table = table
      }
    }
    while (table.count > 0 && (table.count === table.capacity || table.bytes + this.heldBytes + size > this.maxBytes)) {
      this.heldBytes -= table.remove(table.oldest)
    }
    // A cache with no table yet whose first one does not fit beside this entry (see `least`).
    if (table.count === table.capacity) return
    table.add(name, hash, value, size)
    this.heldBytes += size
    this.fills++
  }
}

/** Bytes an entry is counted for besides its table's arrays: the two objects' headers, and the key's and value's own. */
const ENTRY_OVERHEAD = 64
/** Entries a table makes room for at first; it doubles from there up to maxEntries. */
const FIRST_ENTRIES = 256
/** The highest character a kept name has: only ASCII names are kept (see the class comment). */
const ASCII = 0x7f
const NONE = -1
/** readTicket's answer when nothing read now may be kept: never a generation. */
const NO_TICKET = -1

/**
 * The bytes of an EntryTable's arrays for `capacity` entries: per slot two
 * Int32, per entry two references (8 bytes each) and four Int32.
 */
function tableBytes(capacity: number): number {
  return slotCount(capacity) * 8 + capacity * 32
}

/** Slots for `capacity` entries: a power of two at least twice it (at most half full). */
function slotCount(capacity: number): number {
  let size = 1
  while (size < capacity * 2) size *= 2
  return size
}

function entryBytes(name: string, value: Kept): number {
  if (value === ABSENT) return ENTRY_OVERHEAD + name.length
  return ENTRY_OVERHEAD + name.length + (typeof value === 'string' ? value.length * 2 : value.byteLength)
}

/**
 * The entries: an open-addressing hash table (linear probing, at most half
 * full) whose slots hold an entry's index and its name's hash side by side,
 * so a probe reads one place and compares a name (exactly, character by
 * character) only where the hash matches; and the entries in arrays by
 * index, linked oldest to newest in fill order. A JavaScript Map would need
 * a string made and hashed for every lookup by bytes. Fixed capacity: the
 * cache moves to a table twice the size when one is full (and the larger
 * fits in its bytes).
 */
class EntryTable {
  count = 0
  readonly capacity: number
  /** Its arrays' bytes (tableBytes); an empty table of capacity 0 counts none. */
  readonly bytes: number
  /** The entry filled longest ago (next to evict), or NONE. */
  oldest = NONE
  private newest = NONE
  /** Per slot, two Int32: the entry's index + 1 (0: empty slot), and its name's hash. */
  private readonly slots: Int32Array
  private readonly mask: number
  /** Per entry, its name then its value side by side (one memory read brings both). */
  private readonly kept: (string | Kept | undefined)[]
  private readonly hashes: Int32Array
  private readonly sizes: Int32Array
  /** Fill order: the entry filled just before / after each (NONE at the ends); older links the free entries. */
  private readonly older: Int32Array
  private readonly newer: Int32Array
  private free = NONE
  /** Entries ever taken from the arrays; past it they are unused. */
  private taken = 0

  constructor(capacity: number, from?: EntryTable) {
    // Capacity 0: the table a cache starts and clears to, holding nothing until its first fill.
    this.capacity = capacity
    this.bytes = capacity === 0 ? 0 : tableBytes(capacity)
    const size = slotCount(capacity)
    this.slots = new Int32Array(size * 2)
    this.mask = size - 1
    this.kept = new Array(this.capacity * 2).fill(undefined)
    this.hashes = new Int32Array(this.capacity)
    this.sizes = new Int32Array(this.capacity)
    this.older = new Int32Array(this.capacity)
    this.newer = new Int32Array(this.capacity)
    // Oldest first, so the fill order carries over.
    if (from) {
      for (let e = from.oldest; e !== NONE; e = from.newer[e]) {
        this.add(from.nameOf(e), from.hashes[e], from.valueAt(e), from.sizes[e])
      }
    }
  }

  /** The entry named by `name` from `skip` on, or NONE. */
  find(name: string, skip: number, hash: number): number {
    const slots = this.slots
    const length = name.length - skip
    let slot = hash & this.mask
    for (;;) {
      const held = slots[slot * 2]
      if (held === 0) return NONE
      if (slots[slot * 2 + 1] === hash) {
        const other = this.kept[(held - 1) * 2] as string
        if (other.length === length && sameFrom(other, name, skip)) return held - 1
      }
      slot = (slot + 1) & this.mask
    }
  }

  /** The entry named by these bytes, or NONE. */
  findBytes(key: Uint8Array, hash: number): number {
    const slots = this.slots
    let slot = hash & this.mask
    for (;;) {
      const held = slots[slot * 2]
      if (held === 0) return NONE
      if (slots[slot * 2 + 1] === hash) {
        const other = this.kept[(held - 1) * 2] as string
        if (other.length === key.length && sameBytes(other, key)) return held - 1
      }
      slot = (slot + 1) & this.mask
    }
  }

  nameOf(entry: number): string {
    return this.kept[entry * 2] as string
  }

  valueAt(entry: number): Kept {
    return this.kept[entry * 2 + 1] as Kept
  }

  /**
   * For each key of `keys` (UTF-8 bytes), its hash into `hashes` and into
   * `entries` the first entry whose hash is the key's (NONE: none, or not
   * ASCII), its name not yet compared. Reads only the slots, one key after
   * another with nothing waiting on the key before: their memory reads overlap.
   */
  candidates(keys: readonly Uint8Array[], hashes: Int32Array, entries: Int32Array): void {
    const slots = this.slots
    const mask = this.mask
    for (let i = 0; i < keys.length; i++) {
      const hash = hashBytes(keys[i], ASCII)
      hashes[i] = hash
      let entry = NONE
      if (hash !== NOT_KEPT) {
        for (let slot = hash & mask; slots[slot * 2] !== 0; slot = (slot + 1) & mask) {
          if (slots[slot * 2 + 1] === hash) {
            entry = slots[slot * 2] - 1
            break
          }
        }
      }
      entries[i] = entry
    }
  }

  /** Adds an entry not held (the caller found none, and count < capacity) as the newest. */
  add(name: string, hash: number, value: Kept, size: number): void {
    let entry = this.free
    if (entry !== NONE) this.free = this.older[entry]
    else entry = this.taken++
    this.kept[entry * 2] = name
    this.kept[entry * 2 + 1] = value
    this.hashes[entry] = hash
    this.sizes[entry] = size
    this.older[entry] = this.newest
    this.newer[entry] = NONE
    if (this.newest === NONE) this.oldest = entry
    else this.newer[this.newest] = entry
    this.newest = entry
    const slots = this.slots
    let slot = hash & this.mask
    while (slots[slot * 2] !== 0) slot = (slot + 1) & this.mask
    slots[slot * 2] = entry + 1
    slots[slot * 2 + 1] = hash
    this.count++
  }

  /** Removes an entry held; returns the bytes it was counted for. */
  remove(entry: number): number {
    const slots = this.slots
    const mask = this.mask
    let slot = this.hashes[entry] & mask
    while (slots[slot * 2] !== entry + 1) slot = (slot + 1) & mask
    // Backward-shift deletion: each entry after the hole in its run moves into it unless its home slot lies
    // after the hole (cyclically), so every entry stays reachable from its home without tombstones.
    let hole = slot
    for (let s = (hole + 1) & mask; slots[s * 2] !== 0; s = (s + 1) & mask) {
      const home = slots[s * 2 + 1] & mask
      const stays = hole <= s ? hole < home && home <= s : hole < home || home <= s
      if (stays) continue
      slots[hole * 2] = slots[s * 2]
      slots[hole * 2 + 1] = slots[s * 2 + 1]
      hole = s
    }
    slots[hole * 2] = 0
    slots[hole * 2 + 1] = 0
    const before = this.older[entry]
    const after = this.newer[entry]
    if (before === NONE) this.oldest = after
    else this.newer[before] = after
    if (after === NONE) this.newest = before
    else this.older[after] = before
    this.kept[entry * 2] = undefined
    this.kept[entry * 2 + 1] = undefined
    this.older[entry] = this.free
    this.free = entry
    this.count--
    return this.sizes[entry]
  }
}

function sameFrom(name: string, full: string, skip: number): boolean {
  for (let i = 0; i < name.length; i++) if (name.charCodeAt(i) !== full.charCodeAt(skip + i)) return false
  return true
}

function sameBytes(name: string, key: Uint8Array): boolean {
  for (let i = 0; i < name.length; i++) if (name.charCodeAt(i) !== key[i]) return false
  return true
}

/** The cache's name for a key given as bytes, or null when a byte is not ASCII. */
export function asciiName(key: Uint8Array): string | null {
  for (let i = 0; i < key.length; i++) if (key[i] > 0x7f) return null
  // A RESP key is a Buffer already: no view to make (half the cost of a name).
  const bytes = Buffer.isBuffer(key) ? key : Buffer.from(key.buffer, key.byteOffset, key.byteLength)
  return bytes.toString('latin1')
}
