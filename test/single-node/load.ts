import { randomBytes } from 'node:crypto'
import { type BatchOp, TandemClient, type Value } from '@tandem/client'
import { type WriteAttempt, WriteLoops } from '../helpers/write-loops.js'

/** One write a load writer sent: its ops, and its seq once acknowledged or its error code. */
export type SentWrite = WriteAttempt

/**
 * Many concurrent writers, each on its own SDK connection, each writing in a
 * loop (one awaited write at a time) until stopped or its first failure.
 * Every write is recorded with its outcome, so a test can check afterwards
 * exactly which writes were acknowledged and which were still in flight.
 */
export class WriteLoad {
  readonly writes: SentWrite[] = []
  acked = 0
  private clients: TandemClient[] = []
  private loops: WriteLoops | null = null

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
    this.loops = new WriteLoops(this.clients, {
      next: this.next,
      onError: 'stop',
      onSent: (write) => this.writes.push(write),
      onAnswered: (write) => {
        if (write.seq !== undefined) this.acked++
      },
    }).start()
    return this
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
    const stopped = this.loops?.stop()
    await Promise.all(this.clients.map((c) => c.close()))
    await stopped
  }

  /** Resolves once every writer has ended by itself (each stops at its first failure). */
  async finished(): Promise<void> {
    await this.loops?.done()
    await this.loops?.stop()
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
