import {
  type BatchOp,
  type NodeStatus,
  type ScanOptions,
  type ScanPage,
  TandemError,
  type Value,
  type WriteConcern,
} from '@tandem/protocol'
import type { Config } from './config.js'
import { AckTracker } from './replication/acks.js'
import { type EntryOp, OP_DEL, OP_PUT } from './storage/log-entry.js'
import type { Store } from './storage/store.js'
import type { Logger } from './util/logger.js'

export type Role = NodeStatus['role']

export interface WriteOptions {
  w?: WriteConcern
  timeoutMs?: number
}

/** Default wait for w>0 writes that give no timeoutMs. */
export const DEFAULT_WRITE_TIMEOUT_MS = 5000

/**
 * TandemNode: what this node is (role, epoch, upstream) and the operations
 * clients can ask of it. The API layer validates and routes requests here;
 * this class decides whether the node may take them.
 */
export class TandemNode {
  role: Role = 'master'
  /** HOST:PORT this node follows, when it is a replica. */
  upstream: string | null = null
  readonly acks = new AckTracker()
  readonly startedAt = Date.now()
  private addr = ''

  constructor(
    readonly config: Config,
    readonly store: Store,
    readonly logger: Logger,
  ) {}

  get nodeId(): string {
    return this.store.nodeId
  }

  /** HOST:PORT others reach this node at. */
  get address(): string {
    return this.addr
  }

  set address(addr: string) {
    this.addr = addr
  }

  /** Makes sure a fresh master has an epoch to write in. */
  async init(): Promise<void> {
    if (this.role === 'master' && this.store.history.length === 0) {
      await this.store.beginEpoch(1)
      this.logger.info('started a new history', { epoch: 1 })
    }
  }

  // ---- writes ------------------------------------------------------------

  private assertWritable(): void {
    if (this.role === 'master') return
    throw new TandemError('READONLY', `this node is a read-only replica; write to the master at ${this.upstream}`, {
      details: { master: this.upstream, epoch: this.store.epoch },
    })
  }

  async write(ops: EntryOp[], options: WriteOptions): Promise<{ seq: number }> {
    this.assertWritable()
    const seq = await this.store.write(ops)
    const needed = this.acks.required(options.w)
    if (needed > 0) await this.acks.waitFor(seq, needed, options.timeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS)
    return { seq }
  }

  put(key: string, value: Value, options: WriteOptions) {
    return this.write([[OP_PUT, key, value]], options)
  }

  del(key: string, options: WriteOptions) {
    return this.write([[OP_DEL, key]], options)
  }

  batch(ops: BatchOp[], options: WriteOptions) {
    return this.write(
      ops.map((op): EntryOp => (op.type === 'put' ? [OP_PUT, op.key, op.value] : [OP_DEL, op.key])),
      options,
    )
  }

  /** Waits until `replicas` replicas hold this node's current seq; resolves with how many do. */
  async wait(replicas: number, timeoutMs: number): Promise<number> {
    const seq = this.store.lastSeq
    try {
      await this.acks.waitFor(seq, replicas, timeoutMs)
    } catch (err) {
      if (!(err instanceof TandemError && err.code === 'TIMEOUT')) throw err
    }
    return this.acks.countAtLeast(seq)
  }

  // ---- reads -------------------------------------------------------------

  get(key: string): Promise<Value | undefined> {
    return this.store.get(key)
  }

  mget(keys: string[]): Promise<(Value | undefined)[]> {
    return this.store.getMany(keys)
  }

  /**
   * One page of a scan. The page holds at most `pageSize` entries and about
   * `pageBytes` of keys and values; `more` says whether the client should
   * ask again (from after the last key) for the rest.
   */
  async scanPage(options: ScanOptions, pageSize: number, pageBytes: number): Promise<ScanPage> {
    const want = options.limit === undefined ? pageSize : Math.min(options.limit, pageSize)
    const entries: [string, Value][] = []
    if (want === 0) return { entries, more: false }
    let bytes = 0
    let more = false
    for await (const entry of this.store.scan({ ...options, limit: want + 1 })) {
      if (entries.length === want || bytes >= pageBytes) {
        more = true
        break
      }
      entries.push(entry)
      bytes += entry[0].length + (typeof entry[1] === 'string' ? entry[1].length : entry[1].byteLength)
    }
    // A page cut short by the caller's own limit is the end of the scan.
    if (options.limit !== undefined && entries.length >= options.limit) more = false
    return { entries, more }
  }

  // ---- status ------------------------------------------------------------

  status(): NodeStatus {
    const stats = this.store.commitStats
    return {
      nodeId: this.nodeId,
      role: this.role,
      epoch: this.store.epoch,
      seq: this.store.lastSeq,
      upstream: this.upstream,
      readOnly: this.role !== 'master',
      replicas: [],
      address: this.address,
      mode: this.config.mode,
      sync: this.config.sync,
      uptimeMs: Date.now() - this.startedAt,
      history: this.store.history,
      commit: {
        groups: stats.groups,
        writes: stats.writes,
        avgGroupSize: stats.groups === 0 ? 0 : Math.round((stats.writes / stats.groups) * 10) / 10,
        largestGroup: stats.largestGroup,
        queued: this.store.queuedWrites,
      },
    }
  }
}
