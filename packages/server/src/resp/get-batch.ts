import type { Value } from '@tandem/protocol'
import type { TandemNode } from '../node.js'

/** A GET's answer: its value (bytes, or a string when read key by key), undefined when missing, or why it failed. */
type GetAnswer = Value | undefined | Error

/** One connection's run of GETs in the batch: how many keys, and who takes their answers. */
interface Run {
  count: number
  done: (answers: GetAnswer[], from: number) => void
}

/** Most keys one batch reads; more GETs in a turn start another batch. */
const MAX_BATCH_KEYS = 1024

/**
 * The GETs of every RESP connection, read together once per turn of the
 * event loop: each connection hands over its run of GETs as it parses
 * them (RespConnection), and after the turn's socket reads (setImmediate)
 * the batch is read in one synchronous pass while LevelDB answers from
 * memory (TandemNode.getEachNow: no promise, string or settled-result
 * object per key; the keys are the commands' own argument bytes), else,
 * and for reads that cannot be made that way (linearizable, vclock), with
 * one TandemNode.getEach: one LevelDB getMany for the batch, not a read
 * and a promise per GET. Unpipelined clients send one GET per read, so
 * one turn holds many of them.
 */
export class GetBatch {
  private keys: Buffer[] = []
  private runs: Run[] = []
  private scheduled = false
  /** GETs read in a batch of more than one, since start. */
  batched = 0

  constructor(private readonly node: TandemNode) {}

  /**
   * Reads `keys` (UTF-8 bytes, checked as GET checks a key; they may be
   * views into the socket's reads, which are not reused) with the batch;
   * `done` gets the batch's answers and where this run's start.
   */
  read(keys: Buffer[], done: (answers: GetAnswer[], from: number) => void): void {
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
    const answers: GetAnswer[] = new Array(keys.length)
    let read: number
    try {
      read = this.node.getEachNow(keys, answers)
    } catch (reason) {
      // This node serves no reads (a witness): every GET fails alike.
      answers.fill(asError(reason))
      return deliver(runs, answers)
    }
    if (read === keys.length) return deliver(runs, answers)
    const rest = keys.slice(read).map((k) => k.toString('utf8'))
    // Values as bytes: a reply is bytes, so a string value is not decoded and encoded again.
    this.node.getEach(rest, undefined, true).then(
      (results) => {
        for (let i = 0; i < results.length; i++) {
          const r = results[i]
          answers[read + i] = r.status === 'fulfilled' ? r.value : asError(r.reason)
        }
        deliver(runs, answers)
      },
      (reason) => {
        answers.fill(asError(reason), read)
        deliver(runs, answers)
      },
    )
  }
}

function deliver(runs: Run[], answers: GetAnswer[]): void {
  let from = 0
  for (const run of runs) {
    run.done(answers, from)
    from += run.count
  }
}

function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason))
}
