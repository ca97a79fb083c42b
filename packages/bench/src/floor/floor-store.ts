import { randomBytes } from 'node:crypto'
import { open, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Level } from 'level'

/**
 * The storage of the floor server (floor-server.ts): what tandem's design
 * asks of a put, done the cheapest way a plain `level` program can. Every
 * write that arrives while no batch is being written joins one group; the
 * group is ONE LevelDB batch holding a data record per put (a type byte and
 * the value, under the key's data prefix), ONE log record for the whole
 * group (every entry with its key, value, epoch, origin and clock, under
 * the group's first seq) and the last seq; replies wait for that batch's
 * callback. One batch is written at a time; what arrives meanwhile is the
 * next group. With --sync periodic no batch is fsynced: once a second the
 * LevelDB log files are fdatasynced beside LevelDB, as tandem does; with
 * always each batch is; none never. No tandem server code is used.
 *
 * A put is copied twice and held by nothing: its data key and record go
 * into the native batch at once (LevelDB copies them), its log entry into
 * the group's log block, which is also where a read looks for a write that
 * is not applied yet.
 */

/** Type of a stored value: bytes or a string (the SDK gets back what it stored). */
export const VALUE_BYTES = 0
export const VALUE_STRING = 1

const DATA_PREFIX = 0x64 // 'd'
const LOG_PREFIX = 0x6c // 'l'
const LAST_SEQ_KEY = Buffer.from('m!lastSeq')
/** Log entry header: u32 length, u8 op, u8 type, u32 epoch, f64 clock, 8-byte origin, u16 key length. */
const ENTRY_HEADER = 28
const OP_PUT = 1
const MAX_KEY_BYTES = 0xffff
const SYNC_INTERVAL_MS = 1000

/** The private put of abstract-level's chained batch (classic-level: a copy into the native batch). */
interface PrivatePut {
  _put(key: Uint8Array, value: Uint8Array, options: object): void
}
const NO_OPTIONS = {}

/** Whoever waits for a group: told once it is written (or failed). */
export interface GroupWaiter {
  /** Set by the store: the group whose write this waiter's replies wait for. */
  waitGroup: number
  groupDone(group: number, err: Error | null): void
}

class Group {
  readonly waiters: GroupWaiter[] = []
  batch: ReturnType<Level<Uint8Array, Uint8Array>['batch']> | null = null
  firstSeq = 0
  puts = 0
  /** Log block: the entries of this group, back to back. */
  block: Buffer
  blockBytes = 0

  constructor(
    readonly id: number,
    block: Buffer,
  ) {
    this.block = block
  }
}

export class FloorStore {
  private db: Level<Uint8Array, Uint8Array> | null = null
  private readonly origin = randomBytes(8)
  private readonly epoch = 1
  private nextSeq = 1
  private nextGroupId = 1
  private open: Group | null = null
  private writing: Group | null = null
  private scheduled = false
  private scratch = Buffer.allocUnsafe(64 * 1024)
  /** Log blocks of written groups, reused. */
  private spare: Buffer[] = []
  private syncTimer: NodeJS.Timeout | null = null
  private syncing: Promise<void> | null = null
  private idle: (() => void) | null = null
  groups = 0
  puts = 0

  constructor(
    readonly dir: string,
    /** always: each batch fsynced before its replies; periodic: the log files fdatasynced once a second; none. */
    private readonly sync: 'always' | 'periodic' | 'none' = 'periodic',
  ) {}

  async start(): Promise<void> {
    const { writeBufferBytes, tableCompression } = leveldbOptions()
    this.db = new Level<Uint8Array, Uint8Array>(this.dir, {
      keyEncoding: 'view',
      valueEncoding: 'view',
      writeBufferSize: writeBufferBytes,
      compression: tableCompression === 1,
      ...floorOnlyOptions(),
    })
    await this.db.open()
    const last = await this.db.get(LAST_SEQ_KEY)
    if (last !== undefined) this.nextSeq = Number(Buffer.from(last).toString()) + 1
    if (this.sync === 'periodic') {
      this.syncTimer = setInterval(() => {
        this.syncing ??= this.syncLogFiles().finally(() => (this.syncing = null))
      }, SYNC_INTERVAL_MS)
      this.syncTimer.unref()
    }
  }

  /** The seq of the newest write accepted. */
  get seq(): number {
    return this.nextSeq - 1
  }

  /** Takes a put into the group being gathered; `waiter` is answered once that group is written. Returns its seq. */
  put(waiter: GroupWaiter, key: Buffer | string, value: Buffer | string, type: number): number {
    const db = this.db
    if (db === null) throw new Error('store not open')
    const group = this.gathering(db)
    const scratch = this.room(1 + (typeof key === 'string' ? key.length * 3 : key.length) + 1 + valueBytesMax(value))
    // Data key: prefix + key.
    scratch[0] = DATA_PREFIX
    const keyBytes = typeof key === 'string' ? scratch.write(key, 1, 'utf8') : key.copy(scratch, 1)
    if (keyBytes > MAX_KEY_BYTES) throw new RangeError(`key of ${keyBytes} bytes (at most ${MAX_KEY_BYTES})`)
    const recordAt = 1 + keyBytes
    scratch[recordAt] = type
    const valueBytes =
      typeof value === 'string' ? scratch.write(value, recordAt + 1, 'utf8') : value.copy(scratch, recordAt + 1)
    const dataKey = scratch.subarray(0, recordAt)
    const record = scratch.subarray(recordAt, recordAt + 1 + valueBytes)
    // The first put goes through put(), which counts it (write() skips an
    // empty batch); the rest straight to classic-level's copy into its
    // native batch, without abstract-level's checks and operation object.
    if (group.puts === 0) group.batch!.put(dataKey, record)
    else (group.batch as unknown as PrivatePut)._put(dataKey, record, NO_OPTIONS)
    // Log entry: header, key, value.
    const entryBytes = ENTRY_HEADER + keyBytes + valueBytes
    if (group.blockBytes + entryBytes > group.block.length) {
      const grown = Buffer.allocUnsafe(Math.max(group.block.length * 2, group.blockBytes + entryBytes))
      group.block.copy(grown, 0, 0, group.blockBytes)
      group.block = grown
    }
    const b = group.block
    let at = group.blockBytes
    b.writeUInt32LE(entryBytes, at)
    b[at + 4] = OP_PUT
    b[at + 5] = type
    b.writeUInt32LE(this.epoch, at + 6)
    b.writeDoubleLE(Date.now(), at + 10)
    this.origin.copy(b, at + 18)
    b.writeUInt16LE(keyBytes, at + 26)
    at += ENTRY_HEADER
    scratch.copy(b, at, 1, 1 + keyBytes)
    scratch.copy(b, at + keyBytes, recordAt + 1, recordAt + 1 + valueBytes)
    group.blockBytes = at + keyBytes + valueBytes
    group.puts++
    this.wait(waiter, group)
    return this.nextSeq++
  }

  /**
   * The value of `key` as a reader that comes after every write accepted
   * so far sees it: the newest one not yet applied (the log blocks of the
   * groups gathered and in flight), else LevelDB's. Undefined when missing.
   */
  get(key: Buffer | string): { type: number; value: Buffer } | undefined {
    const db = this.db
    if (db === null) throw new Error('store not open')
    const keyBuffer = typeof key === 'string' ? Buffer.from(key, 'utf8') : key
    const pending = findInBlock(this.open, keyBuffer) ?? findInBlock(this.writing, keyBuffer)
    if (pending) return pending
    const scratch = this.room(1 + keyBuffer.length)
    scratch[0] = DATA_PREFIX
    keyBuffer.copy(scratch, 1)
    const record = db.getSync(scratch.subarray(0, 1 + keyBuffer.length))
    if (record === undefined) return undefined
    const bytes = Buffer.from(record.buffer, record.byteOffset, record.byteLength)
    return { type: bytes[0], value: bytes.subarray(1) }
  }

  /** Whether any write is gathered or being written. */
  get busy(): boolean {
    return this.open !== null || this.writing !== null
  }

  /** Data records in LevelDB (a test's check that the puts are there). */
  async countDataKeys(): Promise<number> {
    const db = this.db
    if (db === null) throw new Error('store not open')
    let n = 0
    for await (const _ of db.keys({ gte: Buffer.from([DATA_PREFIX]), lt: Buffer.from([DATA_PREFIX + 1]) })) n++
    return n
  }

  /** Waits for the writes accepted so far, then closes LevelDB. */
  async close(): Promise<void> {
    if (this.syncTimer) clearInterval(this.syncTimer)
    if (this.busy) await new Promise<void>((resolve) => (this.idle = resolve))
    await this.syncing
    await this.db?.close()
    this.db = null
  }

  private gathering(db: Level<Uint8Array, Uint8Array>): Group {
    let group = this.open
    if (group === null) {
      group = new Group(this.nextGroupId++, this.spare.pop() ?? Buffer.allocUnsafe(64 * 1024))
      group.batch = db.batch()
      group.firstSeq = this.nextSeq
      this.open = group
    }
    if (!this.scheduled && this.writing === null) {
      this.scheduled = true
      // After every socket read of this turn: one group holds them all.
      setImmediate(this.writeOpen)
    }
    return group
  }

  private wait(waiter: GroupWaiter, group: Group): void {
    if (waiter.waitGroup !== group.id) {
      waiter.waitGroup = group.id
      group.waiters.push(waiter)
    }
  }

  /** A read that must be answered after the group being gathered (see floor-server.ts). */
  holdFor(waiter: GroupWaiter): void {
    const group = this.open ?? this.writing
    if (group) this.wait(waiter, group)
  }

  private readonly writeOpen = (): void => {
    this.scheduled = false
    const group = this.open
    if (group === null || this.writing !== null) return
    this.open = null
    this.writing = group
    const batch = group.batch!
    group.batch = null
    const lastSeq = group.firstSeq + group.puts - 1
    const logKey = Buffer.allocUnsafe(9)
    logKey[0] = LOG_PREFIX
    logKey.writeBigUInt64BE(BigInt(group.firstSeq), 1)
    batch.put(logKey, group.block.subarray(0, group.blockBytes))
    batch.put(LAST_SEQ_KEY, Buffer.from(String(lastSeq)))
    batch.write({ sync: this.sync === 'always' }).then(
      () => this.written(group, null),
      (err: Error) => this.written(group, err),
    )
  }

  private written(group: Group, err: Error | null): void {
    this.writing = null
    this.groups++
    this.puts += group.puts
    if (this.spare.length < 4) this.spare.push(group.block)
    if (this.open !== null) this.writeOpen()
    for (const w of group.waiters) w.groupDone(group.id, err)
    if (!this.busy && this.idle) {
      this.idle()
      this.idle = null
    }
  }

  private room(bytes: number): Buffer {
    if (this.scratch.length < bytes) this.scratch = Buffer.allocUnsafe(Math.max(bytes, this.scratch.length * 2))
    return this.scratch
  }

  /** fdatasync of LevelDB's write-ahead log files, beside LevelDB (as --sync periodic does). */
  private async syncLogFiles(): Promise<void> {
    const names = (await readdir(this.dir)).filter((n) => n.endsWith('.log'))
    await Promise.all(
      names.map(async (name) => {
        try {
          const handle = await open(join(this.dir, name), 'r')
          try {
            await handle.datasync()
          } finally {
            await handle.close()
          }
        } catch {
          // Retired since it was listed: LevelDB synced its table.
        }
      }),
    )
  }
}

/**
 * LevelDB's options as tandem's store opens it by default (a 16 MB write
 * buffer, tables compressed), or as TANDEM_TUNE sets them for tandem too
 * (writeBufferBytes, tableCompression), so that one A/B moves both alike.
 */
function leveldbOptions(): { writeBufferBytes: number; tableCompression: number } {
  const out = { writeBufferBytes: 16 * 1024 * 1024, tableCompression: 1 }
  for (const part of (process.env.TANDEM_TUNE ?? '').split(',')) {
    const [name, value] = part.trim().split('=')
    if ((name === 'writeBufferBytes' || name === 'tableCompression') && Number.isInteger(Number(value)))
      out[name] = Number(value)
  }
  return out
}

/**
 * LevelDB open options tandem does not expose, for A/B runs of the floor
 * alone: TANDEM_FLOOR_LEVELDB=blockSize=N,maxFileSize=N,blockRestartInterval=N
 * (classic-level's names; tandem's TANDEM_TUNE would refuse them).
 */
function floorOnlyOptions(): Record<string, number> {
  const out: Record<string, number> = {}
  for (const part of (process.env.TANDEM_FLOOR_LEVELDB ?? '').split(',')) {
    const [name, value] = part.trim().split('=')
    if (
      (name === 'blockSize' || name === 'maxFileSize' || name === 'blockRestartInterval') &&
      Number.isInteger(Number(value)) &&
      Number(value) > 0
    )
      out[name] = Number(value)
  }
  return out
}

function valueBytesMax(value: Buffer | string): number {
  return typeof value === 'string' ? value.length * 3 : value.length
}

/** The newest entry for `key` in a group's log block, if any. */
function findInBlock(group: Group | null, key: Buffer): { type: number; value: Buffer } | undefined {
  if (group === null) return undefined
  const b = group.block
  let found: { type: number; value: Buffer } | undefined
  for (let at = 0; at < group.blockBytes; ) {
    const bytes = b.readUInt32LE(at)
    const keyBytes = b.readUInt16LE(at + 26)
    const keyAt = at + ENTRY_HEADER
    if (keyBytes === key.length && b.compare(key, 0, keyBytes, keyAt, keyAt + keyBytes) === 0) {
      // A copy: the block is reused once the group is written.
      found = { type: b[at + 5], value: Buffer.from(b.subarray(keyAt + keyBytes, at + bytes)) }
    }
    at += bytes
  }
  return found
}
