import type { Op } from './history.js'
import type { Model } from './model.js'

/**
 * Linearizability checker: Wing & Gong's search with Lowe's just-in-time
 * linearization and a memo of visited (linearized set, state) pairs, the
 * algorithm Porcupine and Knossos use.
 *
 * The history of one key becomes a list of call and return events in time
 * order (a call before a return at the same instant, so ops that touch are
 * taken as concurrent: the checker never reports a violation that a finer
 * clock could have excused). The search walks the list: at a call, it tries
 * to linearize that op now (the model must accept it in the current state,
 * and the resulting (set, state) must be new); if so the op's call and
 * return are lifted out of the list and the walk restarts from the front.
 * Reaching a return means that op's deadline passed unlinearized: undo the
 * last choice and try the next candidate. An empty list is a linearization;
 * backtracking past the first choice proves there is none.
 *
 * Ops of unknown outcome return at +Infinity: they may be linearized at any
 * time after their call, and one linearized last is one that did not
 * happen, as far as any read can tell. Failed ops are left out.
 *
 * Keys are independent registers, so each key's history is checked alone
 * (linearizability is compositional), which keeps the sets small.
 */

export interface KeyVerdict {
  key: string
  valid: boolean | 'unknown'
  /** Ops searched (after pruning). */
  ops: number
  /** Configurations visited. */
  visited: number
  ms: number
  failure?: Failure
}

/** Where the search got stuck: the longest linearized prefix it found, and the op it could not place after it. */
export interface Failure {
  key: string
  /** The last ops of the longest linearizable prefix, in linearization order. */
  prefixTail: Op[]
  /** How many ops that prefix held. */
  prefixLength: number
  /** The model's state after that prefix. */
  state: string
  /** The op whose return came before it could be linearized. */
  blocking: Op
  /** Ops not in the prefix whose intervals overlap the blocking op's (the candidates there were). */
  concurrent: Op[]
}

export interface Verdict {
  valid: boolean | 'unknown'
  keys: KeyVerdict[]
  failures: Failure[]
  ms: number
}

export interface CheckOptions {
  /** Give up (valid: 'unknown') on a key after this many ms. Default 30,000. */
  timeoutMs?: number
  /** Ops kept for the report of a failure's prefix. Default 12. */
  reportTail?: number
}

export function checkHistory<S>(history: Op[], model: Model<S>, options: CheckOptions = {}): Verdict {
  const started = performance.now()
  const byKey = new Map<string, Op[]>()
  for (const op of history) {
    if (op.status === 'fail') continue
    let ops = byKey.get(op.key)
    if (!ops) {
      ops = []
      byKey.set(op.key, ops)
    }
    ops.push(op)
  }
  const keys: KeyVerdict[] = []
  for (const [key, ops] of byKey) keys.push(checkKey(key, model.prune ? model.prune(ops) : ops, model, options))
  const failures = keys.flatMap((k) => (k.failure ? [k.failure] : []))
  const valid = keys.some((k) => k.valid === false) ? false : keys.some((k) => k.valid === 'unknown') ? 'unknown' : true
  return { valid, keys, failures, ms: performance.now() - started }
}

/** Checks one key's ops (all of that key, failed ones already left out). */
export function checkKey<S>(key: string, keyOps: Op[], model: Model<S>, options: CheckOptions = {}): KeyVerdict {
  const started = performance.now()
  const deadline = started + (options.timeoutMs ?? 30_000)
  const n = keyOps.length
  if (n === 0) return { key, valid: true, ops: 0, visited: 0, ms: 0 }
  // Ops in call order: the linearized set is then, at any point of the
  // search, "every op before p" plus a few after it, which keys the memo
  // compactly (a bitset per visited configuration would copy n bits).
  const ops = [...keyOps].sort((a, b) => a.call - b.call || a.id - b.id)
  const finite = ops.map((o) => Number.isFinite(o.ret))
  // Ops of unknown outcome are kept out of the event list and tried only
  // after every op that did return could not be placed: they may take
  // effect anywhere after their call, and trying them first would send the
  // search down a path for each place.
  const unknownIds: number[] = []
  for (let i = 0; i < n; i++) if (!finite[i]) unknownIds.push(i)

  // Events of the ops that returned: 2i is op i's call, 2i+1 its return.
  // Nodes 1..m of a doubly linked list in time order; node 0 is the head.
  const events: number[] = []
  for (let i = 0; i < n; i++) if (finite[i]) events.push(2 * i, 2 * i + 1)
  const time = (e: number) => (e % 2 === 0 ? ops[e >> 1].call : ops[e >> 1].ret)
  events.sort((a, b) => time(a) - time(b) || (a % 2) - (b % 2) || a - b)
  const m = events.length
  const next = new Int32Array(m + 1)
  const prev = new Int32Array(m + 1)
  const nodeOf = new Int32Array(2 * n) // event -> node
  const eventAt = new Int32Array(m + 1) // node -> event
  for (let k = 0; k < m; k++) {
    const node = k + 1
    nodeOf[events[k]] = node
    eventAt[node] = events[k]
    prev[node] = k
    next[node] = k + 2 > m ? 0 : k + 2
  }
  next[0] = m > 0 ? 1 : 0
  const unlink = (node: number) => {
    next[prev[node]] = next[node]
    if (next[node] !== 0) prev[next[node]] = prev[node]
  }
  const relink = (node: number) => {
    next[prev[node]] = node
    if (next[node] !== 0) prev[next[node]] = node
  }
  // Lifting an op takes out its call and return; they are put back in reverse order.
  const lift = (i: number) => {
    unlink(nodeOf[2 * i])
    unlink(nodeOf[2 * i + 1])
  }
  const unlift = (i: number) => {
    relink(nodeOf[2 * i + 1])
    relink(nodeOf[2 * i])
  }

  // The linearized set: every returned op before `p` (in call order), the
  // returned ops after it (few: those around the search's front), and the
  // ops of unknown outcome taken so far (a stack: they leave in reverse).
  const inSet = new Uint8Array(n)
  const finiteBefore = new Int32Array(n + 1)
  for (let i = 0; i < n; i++) finiteBefore[i + 1] = finiteBefore[i] + (finite[i] ? 1 : 0)
  let p = 0
  let finiteIn = 0
  const unknownIn: number[] = []
  const add = (i: number) => {
    inSet[i] = 1
    if (!finite[i]) {
      unknownIn.push(i)
      return
    }
    finiteIn++
    while (p < n && (inSet[p] === 1 || !finite[p])) p++
  }
  const remove = (i: number) => {
    inSet[i] = 0
    if (!finite[i]) {
      unknownIn.pop()
      return
    }
    finiteIn--
    if (i < p) p = i
  }
  const memo = new Set<string>()
  /** Adds (linearized set, state) to the memo; false when it was there already. */
  const remember = (state: S): boolean => {
    let key = `${p}`
    let above = finiteIn - finiteBefore[p]
    for (let j = p + 1; above > 0; j++) {
      if (inSet[j] === 1 && finite[j]) {
        key += `,${j}`
        above--
      }
    }
    key += `|${unknownIn.length < 2 ? unknownIn.join(',') : [...unknownIn].sort((a, b) => a - b).join(',')}|${String(model.hash(state))}`
    if (memo.has(key)) return false
    memo.add(key)
    return true
  }

  interface Frame {
    op: number
    state: S
    /** A read taken as soon as it could be (see Model.readOnly): going back past it, there is nothing else to try there. */
    forced: boolean
    /** For an op of unknown outcome: its place in unknownIds, and the return the search had reached. */
    unknown: number
    at: number
  }
  const stack: Frame[] = []
  let state = model.init()
  /**
   * reads: a new configuration; take every read that can happen now.
   * walk: try the calls before the first return, in order, from `node`.
   * unknown: at the return `at`, try ops of unknown outcome from `u`.
   * back: nothing more to try here; undo the last choice.
   */
  let phase: 'reads' | 'walk' | 'unknown' | 'back' = 'reads'
  let node = next[0]
  let u = 0
  let at = 0
  let visited = 0
  let best: Omit<Failure, 'key' | 'concurrent'> | null = null
  const tail = options.reportTail ?? 12
  const readOnly = model.readOnly ?? (() => false)
  const push = (i: number, after: S, forced: boolean, unknown: number) => {
    stack.push({ op: i, state, forced, unknown, at })
    state = after
    if (finite[i]) lift(i)
    phase = 'reads'
  }
  /** The first return still in the list (there is one while next[0] !== 0). */
  const firstReturn = () => {
    let k = next[0]
    while (eventAt[k] % 2 === 0) k = next[k]
    return k
  }

  while (next[0] !== 0) {
    if ((++visited & 0x3ff) === 0 && performance.now() > deadline) {
      return { key, valid: 'unknown', ops: n, visited, ms: performance.now() - started }
    }
    if (phase === 'reads') {
      let k = next[0]
      let taken = false
      let dead = false
      for (; eventAt[k] % 2 === 0; k = next[k]) {
        const i = eventAt[k] >> 1
        if (!readOnly(ops[i])) continue
        const after = model.step(state, ops[i])
        if (after === undefined) continue
        add(i)
        if (remember(after)) {
          push(i, after, true, -1)
          taken = true
        } else {
          // Seen before, and it failed then: so does this configuration.
          remove(i)
          dead = true
        }
        break
      }
      if (taken) continue
      phase = dead ? 'back' : 'walk'
      node = next[0]
    }
    if (phase === 'walk') {
      const event = eventAt[node]
      const i = event >> 1
      if (event % 2 === 0) {
        if (!readOnly(ops[i])) {
          const after = model.step(state, ops[i])
          if (after !== undefined) {
            add(i)
            if (remember(after)) {
              push(i, after, false, -1)
              continue
            }
            remove(i)
          }
        }
        node = next[node]
        continue
      }
      // A return: op i had to be linearized by now. Before going back, an
      // op of unknown outcome called by then may take effect here.
      phase = 'unknown'
      u = 0
      at = node
    }
    if (phase === 'unknown') {
      const limit = ops[eventAt[at] >> 1].ret
      let placed = false
      for (; u < unknownIds.length && ops[unknownIds[u]].call <= limit; u++) {
        const j = unknownIds[u]
        if (inSet[j] === 1) continue
        const after = model.step(state, ops[j])
        if (after === undefined) continue
        add(j)
        if (remember(after)) {
          push(j, after, false, u)
          placed = true
          break
        }
        remove(j)
      }
      if (placed) continue
      phase = 'back'
    }
    // back
    if (best === null || stack.length > best.prefixLength) {
      best = {
        prefixTail: stack.slice(-tail).map((f) => ops[f.op]),
        prefixLength: stack.length,
        state: model.describe(state),
        blocking: ops[eventAt[firstReturn()] >> 1],
      }
    }
    const top = stack.pop()
    if (!top) {
      const failure = best as Omit<Failure, 'key' | 'concurrent'>
      const prefix = new Set(failure.prefixTail.map((o) => o.id))
      const b = failure.blocking
      const concurrent = ops.filter((o) => o !== b && !prefix.has(o.id) && o.call <= b.ret && o.ret >= b.call)
      return {
        key,
        valid: false,
        ops: n,
        visited,
        ms: performance.now() - started,
        failure: { key, ...failure, concurrent },
      }
    }
    state = top.state
    remove(top.op)
    if (finite[top.op]) unlift(top.op)
    if (top.forced) {
      phase = 'back'
    } else if (top.unknown < 0) {
      phase = 'walk'
      node = next[nodeOf[2 * top.op]]
    } else {
      phase = 'unknown'
      u = top.unknown + 1
      at = top.at
    }
  }
  return { key, valid: true, ops: n, visited, ms: performance.now() - started }
}
