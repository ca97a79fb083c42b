import { LATIN1, NAME_BYTES_PER_KEY, PresenceTable } from './key-presence.js'
import { hashName, NOT_KEPT } from './name-hash.js'
import { getU32 } from './record.js'

/**
 * What a last-writer-wins node needs of a recently written key's record to
 * resolve the next write to it and keep the convergence digest, without
 * reading the record from LevelDB (store.ts, readCurrent): its version
 * (HLC, counter, origin), whether it is a tombstone, and its term of the
 * digest (H(key, state), see convergence.ts). A write's group read every
 * key's whole record before (getSync, 2-3 us a put) only for these.
 *
 * A key known here is handed to the group as a stub: a record with the
 * real one's header (tag, flags, version) and, for a value, the digest
 * term as its body, so that what reads a record's header (recordHlc,
 * recordVersion, isLiveRecord, isTombstoneRecord) answers as for the real
 * record, and the digest takes the term it holds (stubTerm). A stub is
 * never written: a group's `current` may hold it as the record a write
 * replaces, and the read cache keeps no value from it.
 *
 * Exact, never a guess: set from the records a group writes, as it builds
 * them; the Store forgets everything when a group is not written (so a
 * group built on it reads LevelDB) and whatever replaces the data
 * otherwise (a full sync, a restore, a damaged data dir dropped), as it
 * does the presence table. Only records of the one shape the write path
 * makes are kept (sealed, VERSION, a value or a tombstone, no expiry, no
 * modification seq); any other leaves the key unknown. Bounded as
 * KeyPresence is: two generations of at most max / 2 keys each, names and
 * fields in typed arrays (no object a key).
 *
 * Complete, while the data dir was empty when it began and it has dropped
 * nothing since (no generation swapped out, no clear, no record written
 * past it): then it holds every key that has a record, and a key it does
 * not hold has none. A new group's nodes write mostly keys they have never
 * seen, and each such write read LevelDB to find nothing there.
 */
export class LwwHeads {
  private current: HeadTable
  private previous: HeadTable
  private readonly half: number
  /** Origins by number (a node's group has a handful); a key of a 65,536th origin is not kept. */
  private readonly origins: Buffer[] = []
  private readonly originIds = new Map<string, number>()
  hits = 0
  misses = 0
  /** Whether every key with a record is held (see above): set by the Store, lost for good by anything that drops one. */
  private complete = false
  private lastOrigin = -1
  /** Changes whenever an entry may have moved (a swap, a clear): a ticket taken before names nothing after. */
  private swaps = 0
  /**
   * The last lookup()'s ticket: the entry of the current generation that
   * holds the key, with the stamp it was taken at (0: none). A client put
   * hands it to setValue(), which then writes that entry in place, without
   * a second hash of the name and probe of the table.
   */
  lastTicket = NO_HEAD_TICKET
  /** The origin setValue() was last given as a string, and its number. */
  private lastOriginName: string | null = null
  private lastOriginNameId = -1

  constructor(private readonly max: number) {
    this.half = Math.max(1, max >> 1)
    this.current = new HeadTable(this.half)
    this.previous = new HeadTable(this.half)
  }

  get size(): number {
    return this.current.table.count + this.previous.table.count
  }

  /**
   * The record `name` (latin1 of the data key) holds, as a stub: undefined
   * when it holds none, UNKNOWN when this does not know it (read it).
   */
  lookup(name: string): Buffer | undefined | typeof UNKNOWN {
    this.lastTicket = NO_HEAD_TICKET
    if (this.max <= 0) return UNKNOWN
    const hash = hashName(name, 0, LATIN1)
    if (hash === NOT_KEPT) return UNKNOWN
    let head = this.current
    let entry = head.table.find(name, hash)
    if (entry >= 0 && entry < TICKET_ENTRIES - 1)
      this.lastTicket = (this.swaps % TICKET_STAMPS) * TICKET_ENTRIES + entry + 1
    if (entry < 0) {
      head = this.previous
      entry = head.table.find(name, hash)
    }
    if (entry < 0 && this.complete) {
      this.hits++
      return undefined
    }
    if (entry < 0 || head.kind[entry] === KIND_UNKNOWN) {
      this.misses++
      return UNKNOWN
    }
    this.hits++
    const kind = head.kind[entry]
    if (kind === KIND_ABSENT) return undefined
    return this.stub(head, entry, kind)
  }

  /**
   * `name` holds `record` now (undefined: none), whose digest term is
   * (high, low) (see convergence.ts; 0, 0 for a tombstone). `ticket` is
   * the lastTicket of the key's lookup (NO_HEAD_TICKET: none), as for
   * setValue (a peer's entry applied here).
   */
  set(name: string, record: Buffer | undefined, high: number, low: number, ticket = NO_HEAD_TICKET): void {
    if (this.max <= 0) return
    const entry = this.entryFor(name, ticket)
    if (entry < 0) return
    this.current.fill(entry, record, high, low, this)
    this.swapWhenFull()
  }

  /**
   * set() of the record versionPutRecord builds for the version (hlc,
   * counter, origin): a sealed value holding only VERSION, its fields
   * taken as given instead of read back from the record (a client's put
   * on this node, the origin nearly always this node's). `ticket` is the
   * lastTicket of the key's lookup (NO_HEAD_TICKET: none).
   */
  setValue(
    name: string,
    ticket: number,
    hlc: number,
    counter: number,
    origin: string,
    high: number,
    low: number,
  ): void {
    if (this.max <= 0) return
    const head = this.current
    const entry = this.entryFor(name, ticket)
    if (entry < 0) return
    const id = origin === this.lastOriginName ? this.lastOriginNameId : this.originNumber(origin)
    if (id < 0) head.kind[entry] = KIND_UNKNOWN
    else {
      head.hlc[entry] = hlc
      head.counter[entry] = counter
      head.origin[entry] = id
      head.high[entry] = high
      head.low[entry] = low
      head.kind[entry] = KIND_VALUE
    }
    this.swapWhenFull()
  }

  /**
   * The current generation's entry for `name`, set there: the one `ticket`
   * names while nothing moved since its lookup (no second hash of the name
   * and probe of the table), else found or added by name; -1 for a name
   * not kept (the set is then lost, and this no longer knows every key).
   */
  private entryFor(name: string, ticket: number): number {
    if (ticket !== NO_HEAD_TICKET && Math.floor(ticket / TICKET_ENTRIES) === this.swaps % TICKET_STAMPS) {
      // Looked up in this generation, nothing moved since: the entry still holds the name.
      return (ticket % TICKET_ENTRIES) - 1
    }
    const hash = hashName(name, 0, LATIN1)
    if (hash === NOT_KEPT) {
      this.complete = false
      return -1
    }
    return this.current.table.set(name, hash, true)
  }

  /** The older generation is emptied and the current one takes its place once it holds its share. */
  private swapWhenFull(): void {
    const table = this.current.table
    if (table.count < this.half && !table.full) return
    const emptied = this.previous
    // The older generation's keys are dropped (the first swap drops none): one not held may have a record now.
    if (emptied.table.count > 0) this.complete = false
    emptied.table.clear()
    this.previous = this.current
    this.current = emptied
    this.swaps++
  }

  /** originId() of an origin given as its string (its UTF-8 bytes, as a record holds them), remembered for the next. */
  private originNumber(origin: string): number {
    const bytes = Buffer.from(origin, 'utf8')
    const id = bytes.length > 255 ? -1 : this.originId(bytes, 0, bytes.length)
    this.lastOriginName = origin
    this.lastOriginNameId = id
    return id
  }

  clear(): void {
    this.current.table.clear()
    this.previous.table.clear()
    this.complete = false
    this.swaps++
  }

  /** The data holds no record (a data dir found empty as this began): every key written from now on is held, until one is dropped. */
  beginComplete(): void {
    if (this.max > 0 && this.size === 0) this.complete = true
  }

  /** A record was written without being set here (a write path that does not keep heads): keys not held may have one. */
  incomplete(): void {
    this.complete = false
  }

  /** The origin's number, or -1 when no more can be numbered. */
  originId(record: Buffer, at: number, length: number): number {
    // Most writes of a stretch are of one origin: its bytes are compared before a name is made.
    const last = this.lastOrigin
    if (last >= 0 && sameBytes(this.origins[last], record, at, length)) return last
    const name = record.toString('latin1', at, at + length)
    const known = this.originIds.get(name)
    if (known !== undefined) {
      this.lastOrigin = known
      return known
    }
    if (this.origins.length >= 0x10000) return -1
    const id = this.origins.length
    this.origins.push(Buffer.from(record.subarray(at, at + length)))
    this.originIds.set(name, id)
    this.lastOrigin = id
    return id
  }

  private stub(head: HeadTable, entry: number, kind: number): Buffer {
    const origin = this.origins[head.origin[entry]]
    const bodyAt = VERSION_AT + 17 + origin.length
    const length = kind === KIND_VALUE ? bodyAt + 9 : bodyAt
    if (this.slabUsed + length > SLAB_BYTES) {
      this.slab = new ArrayBuffer(SLAB_BYTES)
      this.slabBytes = new Uint8Array(this.slab)
      this.slabUsed = 0
      slabs.add(this.slab)
    }
    const at = this.slabUsed
    this.slabUsed += length
    const b = this.slabBytes
    b[at] = TAG_META
    b[at + 1] = kind === KIND_VALUE ? VALUE_FLAGS : TOMBSTONE_FLAGS
    b[at + 2] = b[at + 3] = b[at + 4] = b[at + 5] = 0
    writeU64(b, at + VERSION_AT, head.hlc[entry])
    writeU64(b, at + VERSION_AT + 8, head.counter[entry])
    b[at + VERSION_AT + 16] = origin.length
    b.set(origin, at + VERSION_AT + 17)
    if (kind === KIND_VALUE) {
      b[at + bodyAt] = TAG_BINARY
      writeU32(b, at + bodyAt + 1, head.high[entry])
      writeU32(b, at + bodyAt + 5, head.low[entry])
    }
    return Buffer.from(this.slab, at, length)
  }

  /**
   * Where stubs are cut from: ArrayBuffers of their own (in `slabs`), so
   * that a record is known for a stub by its memory alone. A slab is
   * let go with the last stub cut from it.
   */
  private slab = new ArrayBuffer(0)
  private slabBytes = new Uint8Array(0)
  private slabUsed = SLAB_BYTES
}

/** A ticket naming no entry (see LwwHeads.lastTicket). */
export const NO_HEAD_TICKET = 0
/** A ticket is stamp * TICKET_ENTRIES + entry + 1: entries of a generation past 2^24 take none; stamps wrap. */
const TICKET_ENTRIES = 2 ** 24
const TICKET_STAMPS = 2 ** 28

/** lookup()'s answer for a key not known here. */
export const UNKNOWN: unique symbol = Symbol('unknown')

/**
 * Whether a record is a stub (see LwwHeads): not the stored bytes, only its
 * header and digest term. A stub's checksum field is 0: a record whose
 * field is not (nearly every sealed record) is told apart by its bytes,
 * without its ArrayBuffer (which V8 makes an object for on request) and a
 * lookup of it; the memory decides for the rest.
 */
export function isStub(record: Buffer): boolean {
  if (record.length < VERSION_AT || record[2] !== 0 || record[3] !== 0 || record[4] !== 0 || record[5] !== 0) {
    return false
  }
  return slabs.has(record.buffer)
}

/** A value stub's digest term, high half at 0 and low at 1 of `out`. */
export function stubTerm(stub: Buffer, out: Uint32Array, at: number): void {
  out[at] = getU32(stub, stub.length - 8)
  out[at + 1] = getU32(stub, stub.length - 4)
}

/** Every slab stubs are cut from, and nothing else. */
const slabs = new WeakSet<ArrayBufferLike>()
const SLAB_BYTES = 64 * 1024

// The record layout's bytes a stub copies (record.ts): a sealed record
// holding only VERSION, its version at a fixed offset.
const TAG_META = 0x10
const TAG_BINARY = 0x01
const F_VERSION = 0x04
const F_CHECKSUM = 0x08
const VALUE_FLAGS = F_VERSION | F_CHECKSUM
const TOMBSTONE_FLAGS = F_VERSION | F_CHECKSUM | 0x40
const VERSION_AT = 6

const KIND_UNKNOWN = 0
const KIND_ABSENT = 1
const KIND_VALUE = 2
const KIND_TOMBSTONE = 3

function writeU64(out: Uint8Array, at: number, n: number): void {
  writeU32(out, at, Math.floor(n / 0x1_0000_0000))
  writeU32(out, at + 4, n >>> 0)
}

function writeU32(out: Uint8Array, at: number, n: number): void {
  out[at] = n >>> 24
  out[at + 1] = n >>> 16
  out[at + 2] = n >>> 8
  out[at + 3] = n
}

function sameBytes(a: Buffer, b: Buffer, at: number, length: number): boolean {
  if (a.length !== length) return false
  for (let i = 0; i < length; i++) if (a[i] !== b[at + i]) return false
  return true
}

function readU64(record: Buffer, at: number): number {
  return getU32(record, at) * 0x1_0000_0000 + getU32(record, at + 4)
}

/** One generation: the names (a PresenceTable) and each entry's fields, by entry. */
class HeadTable {
  readonly table: PresenceTable
  readonly kind: Uint8Array
  readonly hlc: Float64Array
  readonly counter: Float64Array
  readonly origin: Uint16Array
  readonly high: Uint32Array
  readonly low: Uint32Array

  constructor(capacity: number) {
    this.table = new PresenceTable(capacity, capacity * NAME_BYTES_PER_KEY)
    this.kind = new Uint8Array(capacity)
    this.hlc = new Float64Array(capacity)
    this.counter = new Float64Array(capacity)
    this.origin = new Uint16Array(capacity)
    this.high = new Uint32Array(capacity)
    this.low = new Uint32Array(capacity)
  }

  fill(entry: number, record: Buffer | undefined, high: number, low: number, heads: LwwHeads): void {
    if (record === undefined) {
      this.kind[entry] = KIND_ABSENT
      return
    }
    this.kind[entry] = KIND_UNKNOWN
    const flags = record[1]
    if (record[0] !== TAG_META || (flags !== VALUE_FLAGS && flags !== TOMBSTONE_FLAGS)) return
    if (record.length < VERSION_AT + 17) return
    const originLength = record[VERSION_AT + 16]
    const bodyAt = VERSION_AT + 17 + originLength
    if (flags === VALUE_FLAGS ? record.length <= bodyAt : record.length !== bodyAt) return
    const origin = heads.originId(record, VERSION_AT + 17, originLength)
    if (origin < 0) return
    this.hlc[entry] = readU64(record, VERSION_AT)
    this.counter[entry] = readU64(record, VERSION_AT + 8)
    this.origin[entry] = origin
    this.high[entry] = high
    this.low[entry] = low
    this.kind[entry] = flags === VALUE_FLAGS ? KIND_VALUE : KIND_TOMBSTONE
  }
}
