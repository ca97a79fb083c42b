import type { Value } from '@tandem/protocol'
import type { TandemNode } from '../node.js'

type GetResult = PromiseSettledResult<Value | undefined>

/** Most keys one batch reads; more GETs in a turn start another batch. */
const MAX_BATCH_KEYS = 1024

/**
 * The GETs of every RESP connection, read together once per turn of the
 * event loop: each connection hands over its run of GETs as it parses
 * them (RespConnection), and after the turn's socket reads (setImmediate)
 * one TandemNode.getEach reads them all, one LevelDB getMany. Unpipelined
 * clients send one GET per read, so without this each GET would be a read
 * of its own; with many clients, one turn holds many of them. A batch of
 * one key is read as any get is (synchronously while LevelDB answers from
 * memory).
 */
export class GetBatch {
  private keys: string[] = []
  private runs: { count: number; done: (results: GetResult[], from: number) => void }[] = []
  private scheduled = false
  /** GETs read in a batch of more than one, since start. */
  batched = 0

  constructor(private readonly node: TandemNode) {}

  /** Reads `keys` with the batch; `done` gets the batch's results and where this run's start. */
  read(keys: string[], done: (results: GetResult[], from: number) => void): void {
    for (const k of keys) this.keys.push(k)
    this.runs.push({ count: keys.length, done })
    if (this.keys.length >= MAX_BATCH_KEYS) return this.flush()
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(() => this.onTurnEnd())
    }
  }

  private onTurnEnd(): void {
    this.scheduled = false
    this.flush()
  }

  private flush(): void {
    const keys = this.keys
    const runs = this.runs
    if (keys.length === 0) return
    this.keys = []
    this.runs = []
    if (keys.length > 1) this.batched += keys.length
    // Values as bytes: a reply is bytes, so a string value is not decoded and encoded again.
    const read = keys.length === 1 ? this.getOne(keys[0]) : this.node.getEach(keys, undefined, true)
    read.then(
      (results) => {
        let from = 0
        for (const run of runs) {
          run.done(results, from)
          from += run.count
        }
      },
      (reason) => {
        const failed: GetResult[] = keys.map(() => ({ status: 'rejected', reason }))
        let from = 0
        for (const run of runs) {
          run.done(failed, from)
          from += run.count
        }
      },
    )
  }

  private getOne(key: string): Promise<GetResult[]> {
    try {
      return this.node.get(key).then(
        (value): GetResult[] => [{ status: 'fulfilled', value }],
        (reason): GetResult[] => [{ status: 'rejected', reason }],
      )
    } catch (reason) {
      return Promise.resolve([{ status: 'rejected', reason }])
    }
  }
}
