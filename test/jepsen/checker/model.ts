import type { Op } from './history.js'

/**
 * A sequential specification: what each operation does to a state, and
 * whether it can happen in it. The checker searches for an order of the
 * history's operations, consistent with real time, that the model accepts.
 */
export interface Model<S> {
  init(): S
  /** The state after `op`, or undefined when `op` cannot happen in `state` (a read that does not match). */
  step(state: S, op: Op): S | undefined
  /**
   * Whether `op` leaves every state as it is (a read). Such an op, when it
   * can happen now, is linearized now and never tried elsewhere: nothing
   * after it can tell, so no other order can succeed where this one fails.
   */
  readOnly?(op: Op): boolean
  /** A value equal for equal states (for the memo of visited configurations). */
  hash(state: S): string | number | null
  describe(state: S): string
  /**
   * The ops worth searching (optional): ops of unknown outcome that can be
   * left out without changing the verdict are dropped, as each one left in
   * can double what the search visits.
   */
  prune?(ops: Op[]): Op[]
}

/**
 * One register per key: put sets it, del empties it, get returns it (null
 * when empty). Values written are unique, which is what lets a read be
 * traced to the one write that produced it.
 */
export const registerModel: Model<string | null> = {
  init: () => null,
  step(state, op) {
    switch (op.f) {
      case 'put':
        return op.value
      case 'del':
        return null
      case 'get':
        return op.output === state ? state : undefined
      default:
        throw new Error(`register: unknown op ${op.f}`)
    }
  },
  readOnly: (op) => op.f === 'get',
  hash: (state) => state,
  describe: (state) => (state === null ? 'empty' : JSON.stringify(state)),
  /**
   * A write of unknown outcome that no read could have observed changes
   * nothing: in any linearization that takes it, every read between it and
   * the next write returns what it wrote, and none does, so no read lies
   * there and it can be dropped. A put's value is unique, so only a read
   * returning that value observes it; a del is observed only by a read
   * returning null that may come after its call. A put that a read did
   * observe must take effect before that read returns: its deadline is the
   * earliest such return, not +Infinity (which would keep it a candidate
   * for the whole search). A read whose result never came shows nothing
   * and is dropped.
   */
  prune(ops) {
    const observedBy = new Map<string, number>()
    let lastNullRead = Number.NEGATIVE_INFINITY
    for (const o of ops) {
      if (o.f !== 'get' || o.status !== 'ok') continue
      if (o.output === null) lastNullRead = Math.max(lastNullRead, o.ret)
      else observedBy.set(o.output, Math.min(observedBy.get(o.output) ?? Number.POSITIVE_INFINITY, o.ret))
    }
    const out: Op[] = []
    for (const o of ops) {
      if (o.status !== 'unknown') out.push(o)
      else if (o.f === 'put') {
        const deadline = o.value === null ? undefined : observedBy.get(o.value)
        if (deadline !== undefined) out.push({ ...o, ret: Math.max(deadline, o.call) })
      } else if (o.f === 'del' && lastNullRead > o.call) out.push(o)
    }
    return out
  },
}
