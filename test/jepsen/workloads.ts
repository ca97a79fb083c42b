import type { Consistency, TandemClient, WriteConcern } from '@tandem/client'
import type { HistoryRecorder, Op } from './checker/history.js'

/**
 * Errors that say the operation certainly did not happen: the node refused
 * it before doing anything (not the master, no quorum of replicas, a bad
 * or oversized request, a full queue, a full disk: the README says a write
 * that got NOSPACE was refused before reaching the disk, and the checks hold
 * it to that; the one that met the full disk gets UNCERTAIN).
 * Anything else after a write was sent (TIMEOUT, UNCERTAIN, a lost
 * connection, a node shutting down, an internal error) leaves its outcome
 * unknown.
 */
const REFUSED = new Set([
  'READONLY',
  'NOMASTER',
  'FENCED',
  'NOREPLICAS',
  'INVALID',
  'TOOLARGE',
  'BUSY',
  'UNAUTHORIZED',
  'NOSPACE',
])

function codeOf(err: unknown): string {
  return (err as { code?: string })?.code ?? 'ERROR'
}

export interface WorkloadOptions {
  /** Write concern of each client's writes ('mixed': even clients 'majority', odd ones 0). */
  w: WriteConcern | 'mixed'
  /** Read consistency (undefined: the SDK's default). */
  consistency: Consistency | undefined
  /** Timeout of each call, and of each write's wait for replicas. */
  timeoutMs: number
  random: () => number
}

abstract class Workload {
  private stopped = false
  private loops: Promise<void>[] = []
  readonly errors = new Map<string, number>()

  constructor(
    protected readonly clients: TandemClient[],
    protected readonly history: HistoryRecorder,
    protected readonly options: WorkloadOptions,
  ) {}

  start(): this {
    this.loops = this.clients.map((db, c) => this.loop(db, c))
    return this
  }

  /** Stops issuing ops; resolves once every op in flight has settled. */
  async stop(): Promise<void> {
    this.stopped = true
    await Promise.all(this.loops)
  }

  private async loop(db: TandemClient, client: number): Promise<void> {
    for (let n = 0; !this.stopped; n++) {
      const refused = await this.one(db, client, n)
      // A refusal comes back at once (no master yet): pace the retries.
      if (refused) await new Promise((r) => setTimeout(r, 10 + this.options.random() * 40))
    }
  }

  /** Issues one op; true when it was refused. */
  protected abstract one(db: TandemClient, client: number, n: number): Promise<boolean>

  protected w(client: number): WriteConcern | undefined {
    const w = this.options.w === 'mixed' ? (client % 2 === 0 ? 'majority' : 0) : this.options.w
    return w === 0 ? undefined : w
  }

  protected async write(op: Op, run: () => Promise<unknown>): Promise<boolean> {
    try {
      await run()
      this.history.ok(op)
      return false
    } catch (err) {
      const code = codeOf(err)
      this.errors.set(code, (this.errors.get(code) ?? 0) + 1)
      if (REFUSED.has(code)) {
        this.history.fail(op, code)
        return true
      }
      this.history.unknown(op, code)
      return false
    }
  }

  protected async read(op: Op, run: () => Promise<string | null>): Promise<boolean> {
    try {
      this.history.ok(op, await run())
      return false
    } catch (err) {
      // A read that failed shows nothing, whatever the reason.
      const code = codeOf(err)
      this.errors.set(code, (this.errors.get(code) ?? 0) + 1)
      this.history.fail(op, code)
      return REFUSED.has(code)
    }
  }
}

/**
 * Registers: each client picks one of `keys` keys and gets it (half the
 * time), puts a value no one else ever writes, or deletes it. The history
 * must be linearizable, key by key.
 */
export class RegisterWorkload extends Workload {
  constructor(
    clients: TandemClient[],
    history: HistoryRecorder,
    options: WorkloadOptions,
    private readonly keys: string[],
  ) {
    super(clients, history, options)
  }

  protected one(db: TandemClient, client: number, n: number): Promise<boolean> {
    const random = this.options.random
    const key = this.keys[Math.floor(random() * this.keys.length)]
    const r = random()
    const timeoutMs = this.options.timeoutMs
    const w = this.w(client)
    if (r < 0.5) {
      const op = this.history.invoke(client, key, 'get')
      return this.read(op, async () => {
        const value = await db.get(key, { timeoutMs, consistency: this.options.consistency })
        return value === undefined ? null : String(value)
      })
    }
    if (r < 0.85) {
      const value = `${client}-${n}`
      const op = this.history.invoke(client, key, 'put', value, String(w ?? 0))
      return this.write(op, () => db.put(key, value, { w, timeoutMs }))
    }
    const op = this.history.invoke(client, key, 'del', null, String(w ?? 0))
    return this.write(op, () => db.del(key, { w, timeoutMs }))
  }

  /** One more read of every key by every client, once the faults are healed (it catches lost writes). */
  async finalReads(): Promise<void> {
    await Promise.all(
      this.clients.map(async (db, client) => {
        for (const key of this.keys) {
          const op = this.history.invoke(client, key, 'get')
          await this.read(op, async () => {
            const value = await db.get(key, { timeoutMs: 10_000, consistency: this.options.consistency })
            return value === undefined ? null : String(value)
          })
        }
      }),
    )
  }
}

/** Prefix of the set workload's elements (one key each). */
export const SET_PREFIX = 'set:'

/**
 * A set: each client adds elements of its own (a put of `set:<client>:<n>`)
 * and now and then removes one it added (a del). At the end every
 * acknowledged add not removed must be there, and no acknowledged removal
 * may come back.
 */
export class SetWorkload extends Workload {
  private readonly added: string[][] = []

  protected one(db: TandemClient, client: number, n: number): Promise<boolean> {
    const mine = this.added[client] ?? []
    this.added[client] = mine
    const w = this.w(client)
    const timeoutMs = this.options.timeoutMs
    if (mine.length > 0 && this.options.random() < 0.2) {
      const [element] = mine.splice(Math.floor(this.options.random() * mine.length), 1)
      const op = this.history.invoke(client, element, 'remove', null, String(w ?? 0))
      return this.write(op, () => db.del(element, { w, timeoutMs }))
    }
    const element = `${SET_PREFIX}${client}:${n}`
    const op = this.history.invoke(client, element, 'add', '1', String(w ?? 0))
    return this.write(op, async () => {
      await db.put(element, '1', { w, timeoutMs })
      mine.push(element)
    })
  }
}
