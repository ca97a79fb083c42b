import type { Value } from '@tandem/protocol'

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
 * of a key with one goes to LevelDB.
 *
 * Keys are named by their UTF-8 bytes as a latin1 string (what the write
 * path names them by, less the data prefix), and only keys of ASCII bytes
 * are kept: for those the name is the key string itself, so a read made
 * with a string needs no encoding to look it up.
 *
 * Bounded by entries and by bytes (key and value lengths plus a fixed
 * overhead per entry); past either, the oldest filled are dropped first.
 */
export class ReadCache {
  private readonly entries = new Map<string, Value>()
  private heldBytes = 0
  /** Data writes handed to LevelDB and not yet done: no fill while any is. */
  private writing = 0
  /** A full sync is replacing the data: no fill until it ends. */
  private held = false
  /** Reads answered from here, and fills made, since start. */
  hits = 0
  fills = 0

  constructor(
    private readonly maxEntries: number,
    private readonly maxBytes: number,
  ) {}

  get size(): number {
    return this.entries.size
  }

  get bytes(): number {
    return this.heldBytes
  }

  /** The value kept for `name`, or undefined (not kept: read LevelDB). */
  get(name: string): Value | undefined {
    if (this.entries.size === 0) return undefined
    const value = this.entries.get(name)
    if (value !== undefined) this.hits++
    return value
  }

  /** Whether a read may use the cache now: it holds something to answer, or may keep what LevelDB answers. */
  get used(): boolean {
    return this.entries.size > 0 || this.fillable
  }

  /** Whether a read of LevelDB made now may be kept (see the class comment). */
  get fillable(): boolean {
    return this.writing === 0 && !this.held && this.maxEntries > 0
  }

  /**
   * Keeps `value`, just read from LevelDB under `name`, when no data write
   * is in flight; the caller checked the record (intact, no TTL).
   */
  fill(name: string, value: Value): void {
    if (!this.fillable) return
    const size = entryBytes(name, value)
    if (size > this.maxBytes) return
    const old = this.entries.get(name)
    if (old !== undefined) {
      this.heldBytes -= entryBytes(name, old)
      this.entries.delete(name)
    }
    while (this.entries.size >= this.maxEntries || this.heldBytes + size > this.maxBytes) {
      const [oldestName, oldest] = this.entries.entries().next().value as [string, Value]
      this.entries.delete(oldestName)
      this.heldBytes -= entryBytes(oldestName, oldest)
    }
    this.entries.set(name, value)
    this.heldBytes += size
    this.fills++
  }

  /**
   * A write of data is being handed to LevelDB: drops each of the keys it
   * writes (named as the write path names them, `skip` characters of data
   * prefix first) and holds fills off until endWrite().
   */
  beginWrite(names: Iterable<string>, skip: number): void {
    this.writing++
    if (this.entries.size === 0) return
    for (const full of names) this.drop(full.slice(skip))
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
    this.entries.clear()
    this.heldBytes = 0
  }

  private drop(name: string): void {
    const value = this.entries.get(name)
    if (value === undefined) return
    this.entries.delete(name)
    this.heldBytes -= entryBytes(name, value)
  }
}

/** Bytes an entry is counted for: a Map slot, the two objects' headers, and the key's and value's own. */
const ENTRY_OVERHEAD = 64

function entryBytes(name: string, value: Value): number {
  return ENTRY_OVERHEAD + name.length + (typeof value === 'string' ? value.length * 2 : value.byteLength)
}

/** Whether every character of `key` is ASCII: the only keys the cache keeps. */
export function isAsciiKey(key: string): boolean {
  for (let i = 0; i < key.length; i++) if (key.charCodeAt(i) > 0x7f) return false
  return true
}

/** The cache's name for a key given as bytes, or null when a byte is not ASCII. */
export function asciiName(key: Uint8Array): string | null {
  for (let i = 0; i < key.length; i++) if (key[i] > 0x7f) return null
  // A RESP key is a Buffer already: no view to make (half the cost of a name).
  const bytes = Buffer.isBuffer(key) ? key : Buffer.from(key.buffer, key.byteOffset, key.byteLength)
  return bytes.toString('latin1')
}
