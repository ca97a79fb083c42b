/**
 * A history: every operation the clients attempted, with when it was
 * called and when it returned (ms on the test process's monotonic clock).
 *
 * - ok:      it happened, between call and ret;
 * - fail:    it certainly did not happen (refused: READONLY, NOMASTER, ...);
 * - unknown: it may or may not have happened (UNCERTAIN, TIMEOUT, a lost
 *            connection): its effect may land at any time after its call,
 *            so its ret is +Infinity.
 */
export type OpStatus = 'ok' | 'fail' | 'unknown'

export interface Op {
  /** Index in the whole history. */
  id: number
  /** The client that issued it (one op at a time per client). */
  process: number
  key: string
  f: string
  /** What was written (put), else null. */
  value: string | null
  /** What a read returned (null: not found). */
  output: string | null
  call: number
  ret: number
  status: OpStatus
  /** The error code, when it failed or its outcome is unknown. */
  error?: string
  /** The write concern a write asked for ('majority', '0', ...), when it matters to a check. */
  w?: string
}

/**
 * Records a history as clients run. Each op is begun with invoke() and
 * settled with ok(), fail() or unknown(); ops still open at the end are
 * unknown.
 */
export class HistoryRecorder {
  readonly ops: Op[] = []

  constructor(private readonly now: () => number = () => performance.now()) {}

  invoke(process: number, key: string, f: string, value: string | null = null, w?: string): Op {
    const op: Op = {
      id: this.ops.length,
      process,
      key,
      f,
      value,
      output: null,
      call: this.now(),
      ret: Number.POSITIVE_INFINITY,
      status: 'unknown',
    }
    if (w !== undefined) op.w = w
    this.ops.push(op)
    return op
  }

  ok(op: Op, output: string | null = null): void {
    op.ret = this.now()
    op.status = 'ok'
    op.output = output
  }

  fail(op: Op, error: string): void {
    op.ret = this.now()
    op.status = 'fail'
    op.error = error
  }

  /** The outcome is unknown: ret stays +Infinity (the effect may land at any later time). */
  unknown(op: Op, error: string): void {
    op.status = 'unknown'
    op.error = error
  }
}

export function describeOp(op: Op): string {
  const what =
    op.f === 'get'
      ? `get ${op.key} -> ${op.status === 'ok' ? JSON.stringify(op.output) : '?'}`
      : `${op.f} ${op.key}${op.value === null ? '' : ` ${JSON.stringify(op.value)}`}`
  const ret = Number.isFinite(op.ret) ? op.ret.toFixed(1) : 'never'
  return `#${op.id} client ${op.process}: ${what} [${op.call.toFixed(1)} .. ${ret} ms] ${op.status}${op.error ? ` (${op.error})` : ''}`
}
