import type { BatchOp, TandemClient, WriteConcern } from '@tandem/client'

/** One write a load sent, and what became of it. */
export interface WriteAttempt {
  /** The loop that sent it: client index x loops per client + loop index. */
  writer: number
  /** Its number within that loop. */
  n: number
  ops: BatchOp[]
  w: WriteConcern | undefined
  sentAt: number
  /** Set once the write is acknowledged, with its seq. */
  ackedAt?: number
  seq?: number
  /** The error code when it failed (UNCERTAIN, TIMEOUT, READONLY, ...). */
  error?: string
}

export interface WriteLoopOptions {
  /** Loops on each client, each with one write in flight (default 1). */
  loopsPerClient?: number
  /** Builds loop `writer`'s n-th write: one op is a put or a del, several a batch. */
  next(writer: number, n: number): BatchOp[]
  /** The write concern of a loop's n-th write (default none). */
  w?(n: number): WriteConcern | undefined
  /** Per write; with `w`, how long the node may wait for replicas. Default: the client's. */
  timeoutMs?: number
  /** Stop once this many writes were sent in all (default: until stopped). */
  total?: number
  /**
   * After a failed write a loop goes on at once, pauses 20 ms first (a node
   * that refuses is not asked again in a tight loop), or stops.
   */
  onError?: 'go on' | 'pause' | 'stop'
  /** Called with each write as it is sent. */
  onSent?(write: WriteAttempt): void
  /** Called with each write once it is acknowledged or has failed. */
  onAnswered?(write: WriteAttempt): void
}

/**
 * The write loop every test load runs: each loop sends one write at a
 * time and records when it was sent and acknowledged, or why it failed,
 * until stopped, until `total` writes were sent, or (onError 'stop') until
 * its first failure. The loads (test/replication/cluster.ts,
 * test/failover/group.ts, test/single-node/load.ts) differ only in what
 * they write and what they keep of the answers.
 */
export class WriteLoops {
  private stopping = false
  private sent = 0
  private running: Promise<void>[] = []

  constructor(
    private readonly clients: TandemClient[],
    private readonly options: WriteLoopOptions,
  ) {}

  start(): this {
    const perClient = this.options.loopsPerClient ?? 1
    this.running = this.clients.flatMap((db, c) =>
      Array.from({ length: perClient }, (_, l) => this.loop(db, c * perClient + l)),
    )
    return this
  }

  /** Resolves once every loop has ended (total reached, stopped, or its first failure with onError 'stop'). */
  async done(): Promise<void> {
    await Promise.all(this.running)
  }

  /** Ends every loop after the write it has in flight. */
  async stop(): Promise<void> {
    this.stopping = true
    await this.done()
  }

  private async loop(db: TandemClient, writer: number): Promise<void> {
    const { total, timeoutMs, onError = 'go on' } = this.options
    for (let n = 0; !this.stopping && (total === undefined || this.sent < total); n++) {
      this.sent++
      const ops = this.options.next(writer, n)
      const w = this.options.w?.(n)
      const write: WriteAttempt = { writer, n, ops, w, sentAt: Date.now() }
      this.options.onSent?.(write)
      const options = { ...(w === undefined ? {} : { w }), ...(timeoutMs === undefined ? {} : { timeoutMs }) }
      try {
        const [op] = ops
        const result =
          ops.length > 1
            ? await db.batch(ops, options)
            : op.type === 'put'
              ? await db.put(op.key, op.value, options)
              : await db.del(op.key, options)
        write.seq = result.seq
        write.ackedAt = Date.now()
      } catch (err) {
        write.error = (err as { code?: string }).code ?? String(err)
      }
      this.options.onAnswered?.(write)
      if (write.error === undefined) continue
      if (onError === 'stop') return
      if (onError === 'pause') await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
}
