import type { Value } from '@tandem/protocol'
import { hashBytes, hashName, NOT_KEPT } from './name-hash.js'

/** What the cache answers for a key it knows LevelDB holds no record of. */
export const ABSENT: unique symbol = Symbol('absent')
/** An entry's value while a write of its key is in flight: not kept (a read goes to LevelDB). */
const WRITING: unique symbol = Symbol('writing')
/** A value kept, or ABSENT: a key with no record. */
type Kept = Value | typeof ABSENT

/** A buffer of the cache's own holding written values (addWritten), counted whole while any of them is kept. */
class WrittenChunk {
  /** Entries that hold a value in it. */
  live = 0
  /** Bytes of it handed out. */
  used = 0
  readonly data: Buffer
  constructor(readonly bytes: number) {
    this.data = Buffer.allocUnsafeSlow(bytes)
  }
}

/**
 * What a write leaves for keepWritten, gathered before it is handed over
 * (ReadCache.addWritten): the keys as the write path names them, and where
 * each value's bytes were copied (a chunk, the offset and type as a code,
 * the length); the string or the view a get answers is made on its first
 * hit, so a value never read costs no object.
 */
export class WrittenValues {
  /** Each value's key's place in the names beginWrite was given (to find the entry it left there). */
  readonly places: number[] = []
  readonly names: string[] = []
  readonly codes: number[] = []
  readonly lengths: number[] = []
  readonly chunks: WrittenChunk[] = []
}

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
 *   key is filled again until the write is done (endWrite); when what it
 *   leaves is to be kept, a key kept keeps its entry, its value dropped
 *   (WRITING: read as not kept), so that the new value can take its place
 *   there, and keepWritten removes the entries it does not fill;
 * - the values a group wrote are kept once LevelDB has applied it
 *   (keepWritten), when no other write was in flight from its hand-off to
 *   its end and nothing replaced the data meanwhile: LevelDB then holds
 *   them as committed, and a first read of a key just written needs no
 *   LevelDB lookup either. They are kept only where there is room: a write
 *   never pushes out what is kept (a write-heavy load does not empty the
 *   cache of what reads keep reading, nor pay for evictions);
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
 * oldest filled are dropped first. Written values are copied into chunks of
 * the cache's own (WrittenChunk; not the records' memory, which may be a
 * slice of a pool shared with anything), each counted whole while any value
 * in it is kept; a written string is counted besides, at most what it will take.
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
  /** The chunk addWritten copies small values into. */
  private chunk: WrittenChunk | null = null
  /** The entry of each name the last beginWrite was given (NONE: not kept), for keepWritten to fill in place. */
  private writeEntries = new Int32Array(0)
  private writeEntryCount = 0
  /** beginWrite's scratch: the names it was given, and their hashes. */
  private readonly writeNames: string[] = []
  private writeHashes = new Int32Array(0)
  /** Bytes of a shared chunk: a small fraction of maxBytes, so that chunks kept partly never take much of it. */
  private readonly chunkBytes: number
  /** A sum of what answerEach's touch of the candidates read: kept so that the reads are made, meaning nothing else. */
  touched = 0
  /** Reads answered from here, and fills made, since start. */
  hits = 0
  fills = 0

  constructor(
    private readonly maxEntries: number,
    private readonly maxBytes: number,
  ) {
    this.chunkBytes = Math.max(MIN_CHUNK, Math.min(MAX_CHUNK, Math.floor(maxBytes / 64)))
  }

  get size(): number {
    return this.table.count
  }

  /** The bytes counted against maxBytes: the entries' (and their chunks'), the table's, and a chunk being filled. */
  get bytes(): number {
    this.settle()
    const filling = this.chunk !== null && this.chunk.live === 0 ? this.chunk.bytes : 0
    return this.heldBytes + this.table.bytes + filling
  }

  /** The value kept for `name`, ABSENT, or undefined (not kept: read LevelDB). */
  get(name: string): Kept | undefined {
    const table = this.table
    if (table.count === 0) return undefined
    const hash = hashName(name, 0, ASCII)
    if (hash === NOT_KEPT) return undefined
    const entry = table.find(name, 0, hash)
    if (entry < 0) return undefined
    const value = table.valueAt(entry)
    if (value === WRITING) return undefined
    this.hits++
    return value
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
    // The candidates' names and values in memory before they are compared, one key after another.
    this.touched = table.touch(entries, n)
    let hits = 0
    for (let i = 0; i < n; i++) {
      let entry = entries[i]
      if (entry === NONE) {
        answered[i] = 0
        continue
      }
      const key = keys[i]
      // Another name of the same hash: look on past it, comparing names.
      if (!table.namedBy(entry, key)) entry = table.findBytes(key, this.keyHashes[i])
      if (entry === NONE) {
        answered[i] = 0
        continue
      }
      const value = table.valueAt(entry)
      if (value === WRITING) {
        answered[i] = 0
        continue
      }
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
    if (hash !== NOT_KEPT) this.keep(name, 0, hash, value, entryBytes(name, value), null, 0, true)
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
    if (name !== null) this.keep(name, 0, hashName(name, 0, ASCII), value, entryBytes(name, value), null, 0, true)
  }

  /**
   * A write of data is being handed to LevelDB: drops each of the keys it
   * writes (named as the write path names them, `skip` characters of data
   * prefix first) and holds fills off until endWrite(). Returns a ticket
   * for keepWritten, NO_TICKET when what it writes could not be kept (a
   * write already in flight, a hold). With `keeping` (and a ticket), what
   * it leaves is to be kept: a key kept keeps its entry for it, and
   * keepWritten must follow endWrite whether the write succeeded or not.
   */
  beginWrite(names: Iterable<string>, skip: number, keeping = false): number {
    const ticket = this.fillable ? this.generation + 1 : NO_TICKET
    this.writing++
    this.generation++
    const table = this.table
    this.writeEntryCount = 0
    if (table.count === 0) return ticket
    if (!keeping || ticket === NO_TICKET) {
      for (const full of names) {
        const hash = hashName(full, skip, ASCII)
        if (hash === NOT_KEPT) continue
        const entry = table.find(full, skip, hash)
        if (entry >= 0) this.heldBytes -= table.remove(entry)
      }
      return ticket
    }
    // Two passes, as answerEach looks keys up: every key's slot first (their memory reads overlap), then
    // each candidate's name.
    const written = this.writeNames
    written.length = 0
    for (const full of names) written.push(full)
    const n = written.length
    if (this.writeEntries.length < n) {
      this.writeEntries = new Int32Array(Math.max(64, n * 2))
      this.writeHashes = new Int32Array(Math.max(64, n * 2))
    }
    const entries = this.writeEntries
    const hashes = this.writeHashes
    for (let i = 0; i < n; i++) {
      const hash = hashName(written[i], skip, ASCII)
      hashes[i] = hash
      entries[i] = hash === NOT_KEPT ? NONE : table.firstWithHash(hash)
    }
    for (let i = 0; i < n; i++) {
      let entry = entries[i]
      if (entry === NONE) continue
      const full = written[i]
      if (!table.namedFrom(entry, full, skip)) entry = table.find(full, skip, hashes[i])
      if (entry >= 0) this.heldBytes -= table.dropValue(entry)
      entries[i] = entry
    }
    written.length = 0
    this.writeEntryCount = n
    return ticket
  }

  /**
   * Whether the key at `place` of the names the last beginWrite was given
   * has an entry here, which what the write leaves would take in place
   * (with no room needed for another entry; see roomForWrites).
   */
  heldAt(place: number): boolean {
    return place < this.writeEntryCount && this.writeEntries[place] !== NONE
  }

  /** Whether a written value might be kept now without pushing out another (keepWritten keeps none that would). */
  get roomForWrites(): boolean {
    const table = this.table
    if (table.count >= this.maxEntries) return false
    // Room for a chunk more besides what is kept (the one they would be copied into may not be counted yet),
    // and for an entry in the table, or for the larger table keep() would move to.
    const spare = this.maxBytes - this.bytes - this.chunkBytes
    if (table.count < table.capacity) return spare > 0
    return tableBytes(Math.min(this.maxEntries, Math.max(FIRST_ENTRIES, table.capacity * 2))) - table.bytes < spare
  }

  /**
   * Adds to `into` a value a write leaves under `name` (as the write path
   * names it): its bytes src[from, end), a string's UTF-8 or binary,
   * copied into memory of the cache's own. Small values share a chunk
   * (filled one after another), a large one has its own.
   */
  addWritten(
    into: WrittenValues,
    place: number,
    name: string,
    src: Buffer,
    from: number,
    end: number,
    binary: boolean,
  ): void {
    const length = end - from
    let chunk = this.chunk
    let at = 0
    if (length * 4 > this.chunkBytes) {
      chunk = new WrittenChunk(length)
    } else {
      if (chunk === null || chunk.used + length > chunk.bytes) {
        chunk = new WrittenChunk(this.chunkBytes)
        this.chunk = chunk
      }
      at = chunk.used
    }
    src.copy(chunk.data, at, from, end)
    chunk.used = at + length
    into.places.push(place)
    into.names.push(name)
    into.codes.push(at * 2 + (binary ? 1 : 0))
    into.lengths.push(length)
    into.chunks.push(chunk)
  }

  /**
   * Keeps what a write begun with `ticket` (beginWrite, keeping) left (its
   * names `skip` characters of data prefix first), called once LevelDB
   * applied it and endWrite() was: only when no other write was handed
   * over and nothing replaced the data since its hand-off, and none was in
   * flight then, so that LevelDB holds exactly these values as committed;
   * and only where there is room (no entry is pushed out for one). Called
   * with null (nothing to keep, or the write failed), and after it, the
   * entries beginWrite kept for the write's keys and no value took are
   * removed.
   */
  keepWritten(ticket: number, skip: number, written: WrittenValues | null): void {
    if (!this.ticketCurrent(ticket)) return
    const recorded = this.writeEntryCount
    this.writeEntryCount = 0
    if (written !== null) this.keepEach(skip, written, recorded)
    const table = this.table
    const entries = this.writeEntries
    for (let i = 0; i < recorded; i++) {
      const entry = entries[i]
      if (entry !== NONE && table.isWriting(entry)) this.heldBytes -= table.remove(entry)
    }
  }

  private keepEach(skip: number, written: WrittenValues, recorded: number): void {
    const { places, names, codes, lengths, chunks } = written
    const table = this.table
    // Nothing changed the table since beginWrite (no fill, keep, clear or other write while the ticket holds).
    const entries = this.writeEntries
    let room = true
    for (let i = 0; i < names.length; i++) {
      const code = codes[i]
      const place = places[i]
      const entry = place < recorded ? entries[place] : NONE
      if (entry !== NONE) {
        // A key kept before: its value in place of the one dropped at hand-off, when it fits.
        const size = ENTRY_OVERHEAD + table.nameLength(entry) + (code & 1 ? 0 : lengths[i] * 2)
        if (!this.over(size - table.sizeOf(entry), chunks[i], table.bytes)) {
          this.heldBytes += table.setValue(entry, code, size, chunks[i], lengths[i])
          this.fills++
        }
        continue
      }
      if (!room) continue
      const name = names[i]
      const hash = hashName(name, skip, ASCII)
      if (hash === NOT_KEPT) continue
      // A string is counted at two bytes a UTF-8 byte (at least what it takes made) until made, then as fill()
      // counts one; meanwhile its UTF-8 is in the chunk.
      const size = ENTRY_OVERHEAD + name.length + (code & 1 ? 0 : lengths[i] * 2)
      room = this.keep(name, skip, hash, code, size, chunks[i], lengths[i], false)
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

  /** Takes the chunks' bytes the table's entries let go of (EntryTable.make) off the count. */
  private settle(): void {
    const table = this.table
    if (table.freed === 0) return
    this.heldBytes -= table.freed
    table.freed = 0
  }

  clear(): void {
    this.generation++
    if (this.table.capacity > 0) this.table = new EntryTable(0)
    this.heldBytes = 0
    this.chunk = null
  }

  /**
   * Whether an entry of `size` in `chunk` would take the cache past
   * maxBytes beside a table of `table` bytes: the chunk counts when none of
   * it is kept yet, the chunk being filled whether the entry is in it or not.
   */
  private over(size: number, chunk: WrittenChunk | null, table: number): boolean {
    this.settle()
    let total = this.heldBytes + table + size
    const filling = this.chunk
    if (filling !== null && filling.live === 0) total += filling.bytes
    if (chunk !== null && chunk.live === 0 && chunk !== filling) total += chunk.bytes
    return total > this.maxBytes
  }

  /**
   * Keeps an entry named by `name` from `skip` on, counted for `size` bytes
   * (and its chunk, once while any of the chunk is kept), pushing out the
   * oldest when it does not fit (unless !evict: then it is not kept).
   * Returns whether it is kept. `value` is a code (see EntryTable) when the
   * value is in `chunk`.
   */
  private keep(
    name: string,
    skip: number,
    hash: number,
    value: Kept | number,
    size: number,
    chunk: WrittenChunk | null,
    length: number,
    evict: boolean,
  ): boolean {
    this.settle()
    let table = this.table
    // Too large to keep beside the table it would be in, at its smallest: what is kept stays.
    const least = table.capacity > 0 ? table.bytes : tableBytes(Math.min(this.maxEntries, FIRST_ENTRIES))
    if (size + (chunk === null ? 0 : chunk.bytes) + least > this.maxBytes) return false
    const old = table.find(name, skip, hash)
    if (old >= 0) this.heldBytes -= table.remove(old)
    if (table.count === table.capacity) {
      // A larger table only while it fits beside what is kept; else the new entry takes the oldest's place.
      const larger = Math.min(this.maxEntries, Math.max(FIRST_ENTRIES, table.capacity * 2))
      if (larger > table.capacity && !this.over(size, chunk, tableBytes(larger))) {
        table = new EntryTable(larger, table)
        this.table = table
      }
    }
    while (table.count > 0 && (table.count === table.capacity || this.over(size, chunk, table.bytes))) {
      if (!evict) return false
      this.heldBytes -= table.remove(table.oldest)
    }
    // A cache with no table yet whose first one does not fit beside this entry (see `least`), or a chunk
    // being filled that leaves no room for it.
    if (table.count === table.capacity || this.over(size, chunk, table.bytes)) return false
    this.heldBytes += table.add(name, skip, hash, value, size, chunk, length)
    this.fills++
    return true
  }
}

/** Bytes an entry is counted for besides its table's arrays: the two objects' headers, and the key's and value's own. */
const ENTRY_OVERHEAD = 64
/** Bounds of a shared WrittenChunk's bytes (1/64 of readCacheBytes between them). */
const MIN_CHUNK = 1024
const MAX_CHUNK = 16 * 1024
/** Entries a table makes room for at first; it doubles from there up to maxEntries. */
const FIRST_ENTRIES = 256
/** The highest character a kept name has: only ASCII names are kept (see the class comment). */
const ASCII = 0x7f
const NONE = -1
/** readTicket's (and beginWrite's) answer when nothing read (written) now may be kept: never a generation. */
export const NO_TICKET = -1

/**
 * The bytes of an EntryTable's arrays for `capacity` entries: per slot two
 * Int32, per entry three references (8 bytes each) and six Int32.
 */
function tableBytes(capacity: number): number {
  return slotCount(capacity) * 8 + capacity * 48
}

/** Slots for `capacity` entries: a power of two at least twice it (at most half full). */
function slotCount(capacity: number): number {
  let size = 1
  while (size < capacity * 2) size *= 2
  return size
}

function entryBytes(name: string, value: Kept): number {
  if (value === ABSENT) return ENTRY_OVERHEAD + name.length
  return ENTRY_OVERHEAD + name.length + (typeof value === 'string' ? stringBytes(value) : value.byteLength)
}

/**
 * The bytes a string's characters take in V8: one a character when every
 * one is below 0x100 (a one-byte string, as a value of ASCII or Latin-1
 * text is), else two (UTF-16).
 */
function stringBytes(text: string): number {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0xff) return text.length * 2
  return text.length
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
  /** Bytes entries made let go of since the cache last took them off its count (ReadCache.settle). */
  freed = 0
  readonly capacity: number
  /** Its arrays' bytes (tableBytes); an empty table of capacity 0 counts none. */
  readonly bytes: number
  /** The entry filled longest ago (next to evict), or NONE. */
  oldest = NONE
  private newest = NONE
  /** Per slot, two Int32: the entry's index + 1 (0: empty slot), and its name's hash. */
  private readonly slots: Int32Array
  private readonly mask: number
  /**
   * Per entry, its name then its value side by side (one memory read brings
   * both). A value in a chunk not yet made is a code: its offset in the
   * chunk times two, plus 1 for binary (a Buffer view) or 0 for a string.
   */
  private readonly kept: (string | Kept | number | typeof WRITING | undefined)[]
  /** Per entry, the characters of data prefix its name starts with (a write's names have them). */
  private readonly skips: Int32Array
  /** Per entry, the chunk its value is in (keepWritten's), or null; and the value's length in it. */
  private readonly chunks: (WrittenChunk | null)[]
  private readonly lengths: Int32Array
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
    this.skips = new Int32Array(this.capacity)
    this.chunks = new Array(this.capacity).fill(null)
    this.lengths = new Int32Array(this.capacity)
    this.hashes = new Int32Array(this.capacity)
    this.sizes = new Int32Array(this.capacity)
    this.older = new Int32Array(this.capacity)
    this.newer = new Int32Array(this.capacity)
    // Oldest first, so the fill order carries over.
    if (from) {
      for (let e = from.oldest; e !== NONE; e = from.newer[e]) {
        const name = from.kept[e * 2] as string
        const value = from.kept[e * 2 + 1] as Kept | number | typeof WRITING
        this.place(name, from.skips[e], from.hashes[e], value, from.sizes[e], from.chunks[e], from.lengths[e])
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
        const from = this.skips[held - 1]
        if (other.length - from === length && sameFrom(other, from, name, skip)) return held - 1
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
      if (slots[slot * 2 + 1] === hash && this.namedBy(held - 1, key)) return held - 1
      slot = (slot + 1) & this.mask
    }
  }

  /**
   * Drops an entry's value, keeping the entry (WRITING: read as not kept);
   * returns the bytes that frees (its value's, its chunk's when it was the
   * chunk's last kept).
   */
  dropValue(entry: number): number {
    const before = this.sizes[entry]
    const size = ENTRY_OVERHEAD + (this.kept[entry * 2] as string).length
    this.kept[entry * 2 + 1] = WRITING
    this.sizes[entry] = size
    const chunk = this.chunks[entry]
    if (chunk === null) return before - size
    this.chunks[entry] = null
    return --chunk.live === 0 ? before - size + chunk.bytes : before - size
  }

  /** Sets a dropped entry's value (a code into `chunk`, see kept); returns the bytes that adds. */
  setValue(entry: number, code: number, size: number, chunk: WrittenChunk, length: number): number {
    const added = size - this.sizes[entry]
    this.kept[entry * 2 + 1] = code
    this.sizes[entry] = size
    this.chunks[entry] = chunk
    this.lengths[entry] = length
    return chunk.live++ === 0 ? added + chunk.bytes : added
  }

  isWriting(entry: number): boolean {
    return this.kept[entry * 2 + 1] === WRITING
  }

  /** The length of the entry's name as kept (a written key's with its data prefix). */
  nameLength(entry: number): number {
    return (this.kept[entry * 2] as string).length
  }

  sizeOf(entry: number): number {
    return this.sizes[entry]
  }

  /** The first entry whose name's hash is `hash` (NONE: none), its name not compared. */
  firstWithHash(hash: number): number {
    const slots = this.slots
    const mask = this.mask
    for (let slot = hash & mask; slots[slot * 2] !== 0; slot = (slot + 1) & mask) {
      if (slots[slot * 2 + 1] === hash) return slots[slot * 2] - 1
    }
    return NONE
  }

  /** Whether the entry is named by `name` from `skip` on. */
  namedFrom(entry: number, name: string, skip: number): boolean {
    const other = this.kept[entry * 2] as string
    const from = this.skips[entry]
    return other.length - from === name.length - skip && sameFrom(other, from, name, skip)
  }

  /** Whether the entry is named by these bytes. */
  namedBy(entry: number, key: Uint8Array): boolean {
    const name = this.kept[entry * 2] as string
    const from = this.skips[entry]
    return name.length - from === key.length && sameBytes(name, from, key)
  }

  valueAt(entry: number): Kept | typeof WRITING {
    const value = this.kept[entry * 2 + 1]
    return typeof value === 'number' ? this.make(entry, value) : (value as Kept | typeof WRITING)
  }

  /**
   * The value of an entry whose value is a code (see kept), made now from
   * its chunk and kept made. A string no longer needs the chunk (its entry
   * counts it as fill() counts one): the entry lets go of it, and what it
   * no longer counts (the chunk's bytes once no entry holds it) is added to
   * `freed`.
   */
  private make(entry: number, code: number): Value {
    const chunk = this.chunks[entry] as WrittenChunk
    const at = code >>> 1
    const end = at + this.lengths[entry]
    if (code & 1) {
      const view = chunk.data.subarray(at, end)
      this.kept[entry * 2 + 1] = view
      return view
    }
    const text = chunk.data.toString('utf8', at, end)
    this.kept[entry * 2 + 1] = text
    this.chunks[entry] = null
    // Counted at two bytes for each of its UTF-8 bytes (at most its UTF-16 size) until made; now as it is.
    const counted = this.sizes[entry]
    const size = counted - 2 * (end - at) + stringBytes(text)
    this.sizes[entry] = size
    this.freed += counted - size
    if (--chunk.live === 0) this.freed += chunk.bytes
    return text
  }

  /**
   * Reads the first `n` entries' names and values (NONE skipped) and what
   * they point to, with nothing waiting on the entry before: the memory
   * reads of different entries overlap, where comparing each name in turn
   * would wait for each in turn. Returns a sum of what it read.
   */
  touch(entries: Int32Array, n: number): number {
    const kept = this.kept
    const skips = this.skips
    let sum = 0
    for (let i = 0; i < n; i++) {
      const entry = entries[i]
      if (entry === NONE) continue
      const name = kept[entry * 2] as string
      const value = kept[entry * 2 + 1]
      sum += name.length + skips[entry] + (typeof value === 'string' ? value.length : 0)
    }
    return sum
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
    const n = keys.length
    // Every hash first: a probe loop of a few instructions a key lets the processor have many keys' slot
    // reads in flight at once, where a key's hashing between two probes would leave room for one or two.
    for (let i = 0; i < n; i++) hashes[i] = hashBytes(keys[i], ASCII)
    for (let i = 0; i < n; i++) {
      const hash = hashes[i]
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

  /**
   * Adds an entry not held (the caller found none, and count < capacity) as
   * the newest; returns the bytes it adds (its size, and its chunk's bytes
   * when it is the chunk's first entry kept).
   */
  add(
    name: string,
    skip: number,
    hash: number,
    value: Kept | number,
    size: number,
    chunk: WrittenChunk | null,
    length: number,
  ): number {
    this.place(name, skip, hash, value, size, chunk, length)
    if (chunk === null) return size
    return chunk.live++ === 0 ? size + chunk.bytes : size
  }

  /** add() with no counting of the chunk (a larger table taking an entry over). */
  private place(
    name: string,
    skip: number,
    hash: number,
    value: Kept | number | typeof WRITING,
    size: number,
    chunk: WrittenChunk | null,
    length: number,
  ): void {
    let entry = this.free
    if (entry !== NONE) this.free = this.older[entry]
    else entry = this.taken++
    this.kept[entry * 2] = name
    this.kept[entry * 2 + 1] = value
    this.skips[entry] = skip
    this.chunks[entry] = chunk
    this.lengths[entry] = length
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

  /** Removes an entry held; returns the bytes it was counted for (and its chunk's, when it was the chunk's last kept). */
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
    const chunk = this.chunks[entry]
    if (chunk === null) return this.sizes[entry]
    this.chunks[entry] = null
    return --chunk.live === 0 ? this.sizes[entry] + chunk.bytes : this.sizes[entry]
  }
}

/** Whether `name` from `from` on is `full` from `skip` on (the caller compared their lengths). */
function sameFrom(name: string, from: number, full: string, skip: number): boolean {
  for (let i = from, j = skip; i < name.length; i++, j++) if (name.charCodeAt(i) !== full.charCodeAt(j)) return false
  return true
}

function sameBytes(name: string, from: number, key: Uint8Array): boolean {
  for (let i = from, j = 0; i < name.length; i++, j++) if (name.charCodeAt(i) !== key[j]) return false
  return true
}

/** The cache's name for a key given as bytes, or null when a byte is not ASCII. */
export function asciiName(key: Uint8Array): string | null {
  for (let i = 0; i < key.length; i++) if (key[i] > 0x7f) return null
  // A RESP key is a Buffer already: no view to make (half the cost of a name).
  const bytes = Buffer.isBuffer(key) ? key : Buffer.from(key.buffer, key.byteOffset, key.byteLength)
  return bytes.toString('latin1')
}
