import type { Op } from './history.js'

/**
 * The set workload's checker. Clients add unique elements (put of a key of
 * their own) and remove some they added (del); at the end, once every fault
 * is healed and the nodes agree, the set is read from every node.
 *
 * - lost: an add acknowledged (and never removed) that is absent;
 * - resurrected: a removal acknowledged whose element is present (a delete
 *   undone, what a multi-master mode must never do either);
 * - unexpected: an element present that no client ever tried to add;
 * - diverged: nodes whose final sets differ from the first node's.
 * Adds and removals of unknown outcome may have taken effect or not.
 */
export interface SetVerdict {
  valid: boolean
  acknowledgedAdds: number
  unknownAdds: number
  /** Unknown adds that took effect. */
  unknownAddsPresent: number
  acknowledgedRemoves: number
  /** Acknowledged adds missing at the end that were allowed to be lost (`mayLose`: w 0); the caller finds them in rollback files. */
  lostAllowed: string[]
  /** Acknowledged removals undone at the end that were allowed to be lost (w 0); likewise. */
  resurrectedAllowed: string[]
  lost: string[]
  resurrected: string[]
  unexpected: string[]
  diverged: { node: number; missing: string[]; extra: string[] }[]
}

/** `finals[i]`: the elements node i holds at the end (null for a node that holds no data, e.g. a witness). */
export function checkSet(
  history: Op[],
  finals: (Set<string> | null)[],
  mayLose: (write: Op) => boolean = () => false,
): SetVerdict {
  const adds = new Map<string, Op>()
  const removes = new Map<string, Op>()
  for (const op of history) {
    if (op.f === 'add') adds.set(op.key, op)
    else if (op.f === 'remove') removes.set(op.key, op)
  }
  const sets = finals.filter((s): s is Set<string> => s !== null)
  const final = sets[0] ?? new Set<string>()
  const lost: string[] = []
  const lostAllowed: string[] = []
  const resurrectedAllowed: string[] = []
  const resurrected: string[] = []
  let acknowledgedAdds = 0
  let unknownAdds = 0
  let unknownAddsPresent = 0
  let acknowledgedRemoves = 0
  for (const [element, add] of adds) {
    const remove = removes.get(element)
    if (remove?.status === 'ok') {
      acknowledgedRemoves++
      if (final.has(element)) (mayLose(remove) ? resurrectedAllowed : resurrected).push(element)
    }
    if (add.status === 'ok') {
      acknowledgedAdds++
      if (!final.has(element) && (remove === undefined || remove.status === 'fail')) {
        ;(mayLose(add) ? lostAllowed : lost).push(element)
      }
    } else if (add.status === 'unknown') {
      unknownAdds++
      if (final.has(element)) unknownAddsPresent++
    }
  }
  const unexpected = [...final].filter((e) => !adds.has(e) || adds.get(e)?.status === 'fail')
  const diverged: SetVerdict['diverged'] = []
  finals.forEach((set, node) => {
    if (set === null) return
    const missing = [...final].filter((e) => !set.has(e))
    const extra = [...set].filter((e) => !final.has(e))
    if (missing.length > 0 || extra.length > 0) diverged.push({ node, missing, extra })
  })
  return {
    valid: lost.length === 0 && resurrected.length === 0 && unexpected.length === 0 && diverged.length === 0,
    acknowledgedAdds,
    unknownAdds,
    unknownAddsPresent,
    acknowledgedRemoves,
    lostAllowed,
    resurrectedAllowed,
    lost,
    resurrected,
    unexpected,
    diverged,
  }
}
