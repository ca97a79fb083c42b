import { randomBytes } from 'node:crypto'
import { type BatchOp, TandemClient, type Value } from '@tandem/client'

/** One write a load writer sent: its ops, and its seq once acknowledged. */
export interface SentWrite {
  writer: number
  ops: BatchOp[]
  /** Set when the server acknowledged the write. */
  seq?: number
  /** Error code when the write failed (UNCERTAIN, UNAVAILABLE, TIMEOUT, CLOSED...). */
  error?: string
}

/**
 * Many concurrent writers, each on its own SDK connection, each writing in a
 * loop (one awaited write at a time) until stopped or its first failure.
 * Every write is recorded with its outcome, so a test can check afterwards
 * exactly which writes were acknowledged and which were still in flight.
 */
export class WriteLoad {
  readonly writes: SentWrite[] = []
  acked = 0
  private stopping = false
  private clients: TandemClient[] = []
  private running: Promise<void>[] = []

  constructor(
    private readonly address: string,
    private readonly writers: number,
    /** Builds writer w's n-th write. */
    private readonly next: (writer: number, n: number) => BatchOp[] = uniqueKeyWrites(''),
  ) {}

  async start(): Promise<this> {
    this.clients = await Promise.all(
      Array.from({ length: this.writers }, () =>
        TandemClient.connect({ servers: [this.address], timeoutMs: 5000, connectTimeoutMs: 1000 }),
      ),
    )
    this.running = this.clients.map((db, w) => this.run(db, w))
    return this
  }

  private async run(db: TandemClient, writer: number): Promise<void> {
    for (let n = 0; !this.stopping; n++) {
      const ops = this.next(writer, n)
      const write: SentWrite = { writer, ops }
      this.writes.push(write)
      try {
        const result =
          ops.length === 1 && ops[0].type === 'put'
            ? await db.put(ops[0].key, ops[0].value)
            : ops.length === 1
              ? await db.del(ops[0].key)
              : await db.batch(ops)
        write.seq = result.seq
        this.acked++
      } catch (err) {
        write.error = (err as { code?: string }).code ?? String(err)
        return
      }
    }
  }

  /** Writes sent and not (yet) answered either way. */
  get inFlight(): SentWrite[] {
    return this.writes.filter((w) => w.seq === undefined && w.error === undefined)
  }

  get acknowledged(): SentWrite[] {
    return this.writes.filter((w) => w.seq !== undefined)
  }

  get unacknowledged(): SentWrite[] {
    return this.writes.filter((w) => w.seq === undefined)
  }

  /** Stops issuing writes, closes the connections, and resolves once every writer has finished. */
  async stop(): Promise<void> {
    this.stopping = true
    await Promise.all(this.clients.map((c) => c.close()))
    await Promise.all(this.running)
  }

  /** Resolves once every writer has ended by itself (each stops at its first failure). */
  async finished(): Promise<void> {
    await Promise.all(this.running)
    this.stopping = true
    await Promise.all(this.clients.map((c) => c.close()))
  }
}

/** A random value; odd writers write binary, even ones strings, so both types are covered. */
export function randomValue(writer: number): Value {
  return writer % 2 === 0 ? `v-${randomBytes(12).toString('hex')}` : new Uint8Array(randomBytes(16))
}

/**
 * Writes that each touch keys no other write touches (keys start with
 * `prefix`): mostly single puts, every tenth a 3-put batch.
 */
export function uniqueKeyWrites(prefix: string): (writer: number, n: number) => BatchOp[] {
  return (writer, n) => {
    const key = (suffix = '') => `${prefix}w${String(writer).padStart(2, '0')}:${String(n).padStart(6, '0')}${suffix}`
    if (n % 10 === 9) {
      return ['a', 'b', 'c'].map((s) => ({ type: 'put', key: key(s), value: randomValue(writer) }))
    }
    return [{ type: 'put', key: key(), value: randomValue(writer) }]
  }
}

/** Reads `keys` through the SDK in mget chunks; returns key -> value (undefined when missing). */
export async function readAll(db: TandemClient, keys: string[]): Promise<Map<string, Value | undefined>> {
  const out = new Map<string, Value | undefined>()
  for (let i = 0; i < keys.length; i += 1000) {
    const chunk = keys.slice(i, i + 1000)
    const values = await db.mget(chunk)
    for (const [j, k] of chunk.entries()) out.set(k, values[j])
  }
  return out
}
