import { describe, expect, it } from 'vitest'
import { prng } from '../../failover/group.js'
import type { Op, OpStatus } from './history.js'
import { checkHistory } from './linearizable.js'
import { registerModel } from './model.js'
import { checkSet } from './set.js'

const INF = Number.POSITIVE_INFINITY

/**
 * A hand-made history, one op a row: [client, f, key, value (put) or
 * output (get; null = not found), call, ret, status]. A ret of INF means
 * the outcome is unknown.
 */
type Row = [number, 'put' | 'get' | 'del', string, string | null, number, number, OpStatus?]
function history(rows: Row[]): Op[] {
  return rows.map(([process, f, key, v, call, ret, status], id) => ({
    id,
    process,
    key,
    f,
    value: f === 'put' ? v : null,
    output: f === 'get' ? v : null,
    call,
    ret,
    status: status ?? (ret === INF ? 'unknown' : 'ok'),
  }))
}

const check = (rows: Row[]) => checkHistory(history(rows), registerModel)
/** Whether the register history of `rows` is linearizable. */
const linearizable = (rows: Row[]) => check(rows).valid

describe('linearizability checker: hand-made histories', () => {
  it('accepts a sequential history', () => {
    expect(
      linearizable([
        [0, 'get', 'k', null, 0, 1],
        [0, 'put', 'k', 'a', 2, 3],
        [1, 'get', 'k', 'a', 4, 5],
        [1, 'del', 'k', null, 6, 7],
        [0, 'get', 'k', null, 8, 9],
      ]),
    ).toBe(true)
  })

  it('accepts reads that see a concurrent write, or not yet', () => {
    expect(
      linearizable([
        [0, 'put', 'k', 'a', 0, 1],
        [1, 'put', 'k', 'b', 2, 10],
        [2, 'get', 'k', 'b', 3, 4],
        [3, 'get', 'k', 'a', 3, 5],
        [2, 'get', 'k', 'b', 11, 12],
      ]),
    ).toBe(true)
  })

  it('rejects a stale read: a value older than one acknowledged before the read began', () => {
    const verdict = check([
      [0, 'put', 'k', 'a', 0, 1],
      [0, 'put', 'k', 'b', 2, 3],
      [1, 'get', 'k', 'a', 4, 5],
    ])
    expect(verdict.valid).toBe(false)
    expect(verdict.failures[0].blocking.f).toBe('get')
    expect(verdict.failures[0].state).toBe('"b"')
  })

  it('rejects a read of a value never written', () => {
    expect(check([[0, 'get', 'k', 'ghost', 0, 1]]).valid).toBe(false)
  })

  it('rejects two reads that see two concurrent writes in opposite orders', () => {
    expect(
      linearizable([
        [0, 'put', 'k', 'a', 0, 10],
        [1, 'put', 'k', 'b', 0, 10],
        [2, 'get', 'k', 'a', 11, 12],
        [3, 'get', 'k', 'b', 13, 14],
        [2, 'get', 'k', 'a', 15, 16],
      ]),
    ).toBe(false)
  })

  it('rejects a read of a deleted value after the delete was acknowledged', () => {
    expect(
      linearizable([
        [0, 'put', 'k', 'a', 0, 1],
        [0, 'del', 'k', null, 2, 3],
        [1, 'get', 'k', 'a', 4, 5],
      ]),
    ).toBe(false)
  })

  it('a write of unknown outcome may take effect at any time after its call, or never', () => {
    // Observed long after its call: it took effect (late).
    expect(
      linearizable([
        [0, 'put', 'k', 'a', 0, 1],
        [1, 'put', 'k', 'x', 2, INF],
        [2, 'get', 'k', 'a', 50, 51],
        [2, 'get', 'k', 'x', 60, 61],
      ]),
    ).toBe(true)
    // Never observed: it did not.
    expect(
      linearizable([
        [0, 'put', 'k', 'a', 0, 1],
        [1, 'put', 'k', 'x', 2, INF],
        [2, 'get', 'k', 'a', 60, 61],
      ]),
    ).toBe(true)
    // A del of unknown outcome explains a read of nothing.
    expect(
      linearizable([
        [0, 'put', 'k', 'a', 0, 1],
        [1, 'del', 'k', null, 2, INF],
        [2, 'get', 'k', null, 60, 61],
      ]),
    ).toBe(true)
  })

  it('rejects the partition anomaly: a value of an unknown write read, then the register goes back in time', () => {
    // The cut-off master takes put x (it ends in TIMEOUT: unknown), shows x
    // to a reader, then a new master, which never had x, shows the value
    // acknowledged before x.
    const verdict = check([
      [0, 'put', 'k', '1-381', 0, 1],
      [1, 'put', 'k', '1-382', 10, INF, 'unknown'],
      [2, 'get', 'k', '1-382', 20, 21],
      [3, 'get', 'k', '1-382', 22, 23],
      [2, 'get', 'k', '1-381', 3000, 3001],
    ])
    expect(verdict.valid).toBe(false)
    const failure = verdict.failures[0]
    expect(failure.blocking.output).toBe('1-381')
    expect(failure.state).toBe('"1-382"')
    expect(failure.prefixTail.map((o) => o.value ?? o.output)).toContain('1-382')
  })

  it('leaves out failed ops: a refused write never happened', () => {
    expect(
      linearizable([
        [0, 'put', 'k', 'a', 0, 1],
        [1, 'put', 'k', 'b', 2, 3, 'fail'],
        [2, 'get', 'k', 'a', 4, 5],
      ]),
    ).toBe(true)
    expect(
      linearizable([
        [0, 'put', 'k', 'a', 0, 1],
        [1, 'put', 'k', 'b', 2, 3, 'fail'],
        [2, 'get', 'k', 'b', 4, 5],
      ]),
    ).toBe(false)
  })

  it('checks each key on its own and names the key that fails', () => {
    const verdict = check([
      [0, 'put', 'a', '1', 0, 1],
      [1, 'put', 'b', '2', 0, 1],
      [0, 'get', 'a', '1', 2, 3],
      [1, 'get', 'b', null, 2, 3],
    ])
    expect(verdict.valid).toBe(false)
    expect(verdict.keys.map((k) => [k.key, k.valid])).toEqual([
      ['a', true],
      ['b', false],
    ])
    expect(verdict.failures.map((f) => f.key)).toEqual(['b'])
  })

  it("gives up with 'unknown' when a key's search outlasts its timeout", () => {
    // Many concurrent writes and reads whose values are all read: a large search.
    const rows: Row[] = []
    for (let i = 0; i < 400; i++) rows.push([i, 'put', 'k', `v${i}`, 0, 100])
    for (let i = 0; i < 400; i++) rows.push([400 + i, 'get', 'k', `v${(i * 7) % 400}`, 0, 100])
    rows.push([900, 'get', 'k', 'nope', 200, 201])
    const verdict = checkHistory(history(rows), registerModel, { timeoutMs: 0 })
    expect(verdict.valid).toBe('unknown')
  })
})

/**
 * A simulated linearizable register under concurrency: each client's op
 * takes effect at a random instant inside its interval, reads return the
 * state at that instant, and some writes have an unknown outcome (taking
 * effect or not). Such a history is linearizable by construction.
 */
function simulate(seed: number, ops: number, keys: number, clients: number): Op[] {
  const random = prng(seed)
  const events: { at: number; op: Op; applies: boolean }[] = []
  const out: Op[] = []
  let serial = 0
  for (let c = 0; c < clients; c++) {
    let t = random() * 5
    for (let n = 0; n < ops / clients; n++) {
      const call = t
      const ret = call + 0.5 + random() * 20
      const r = random()
      const f = r < 0.5 ? 'get' : r < 0.9 ? 'put' : 'del'
      const unknown = f !== 'get' && random() < 0.03
      const op: Op = {
        id: out.length,
        process: c,
        key: `k${Math.floor(random() * keys)}`,
        f,
        value: f === 'put' ? `${c}-${serial++}` : null,
        output: null,
        call,
        ret: unknown ? INF : ret,
        status: unknown ? 'unknown' : 'ok',
      }
      out.push(op)
      events.push({ at: call + random() * (ret - call), op, applies: !unknown || random() < 0.5 })
      t = ret + random() * 3
    }
  }
  events.sort((a, b) => a.at - b.at)
  const state = new Map<string, string | null>()
  for (const { op, applies } of events) {
    if (op.f === 'get') op.output = state.get(op.key) ?? null
    else if (applies) state.set(op.key, op.f === 'put' ? op.value : null)
  }
  return out
}

describe('linearizability checker: large histories', () => {
  it('accepts a simulated linearizable history of 12,000 ops on 8 keys, and finds one stale read planted in it', () => {
    const ops = simulate(7, 12_000, 8, 10)
    const good = checkHistory(ops, registerModel, { timeoutMs: 60_000 })
    console.log(
      `checker: ${ops.length} ops, ${good.keys.length} keys: ${good.valid} in ${good.ms.toFixed(0)} ms (${good.keys.reduce((n, k) => n + k.visited, 0)} configurations)`,
    )
    expect(good.valid).toBe(true)

    // One read made to return the value before the latest acknowledged write.
    const victim = ops.find((op, i) => {
      if (op.f !== 'get' || i < 6000) return false
      const before = ops.filter((o) => o.key === op.key && o.f === 'put' && o.status === 'ok' && o.ret < op.call)
      if (before.length < 2) return false
      const latest = before.reduce((a, b) => (b.ret > a.ret ? b : a))
      // The latest write finished before any other write of the key began after it, and before the read.
      const overlapping = ops.some(
        (o) => o.key === op.key && o !== latest && o.f !== 'get' && o.call < op.ret && o.ret > latest.call,
      )
      return !overlapping && op.output === latest.value
    })
    expect(victim).toBeDefined()
    const stale = ops.filter(
      (o) => o.key === victim?.key && o.f === 'put' && o.status === 'ok' && o.ret < (victim?.call ?? 0),
    )
    const older = stale.sort((a, b) => a.ret - b.ret)[0]
    const bad = ops.map((o) => (o === victim ? { ...o, output: older.value } : o))
    const verdict = checkHistory(bad, registerModel, { timeoutMs: 60_000 })
    console.log(`checker: the same history with one stale read: ${verdict.valid} in ${verdict.ms.toFixed(0)} ms`)
    expect(verdict.valid).toBe(false)
    expect(verdict.failures.map((f) => f.key)).toEqual([victim?.key])
  })

  it('accepts a simulated history of 10,000 ops on one key', () => {
    const ops = simulate(11, 10_000, 1, 8)
    const verdict = checkHistory(ops, registerModel, { timeoutMs: 60_000 })
    console.log(
      `checker: ${ops.length} ops on one key: ${verdict.valid} in ${verdict.ms.toFixed(0)} ms (${verdict.keys[0].visited} configurations, ${verdict.keys[0].ops} ops searched)`,
    )
    expect(verdict.valid).toBe(true)
  })
})

/**
 * The definition itself, by brute force: some order of the ops (ops of
 * unknown outcome may be left out) that respects real time (an op that
 * returned before another was called comes first) and that the register
 * accepts. Only for tiny histories.
 */
function bruteForce(ops: Op[]): boolean {
  const live = ops.filter((o) => o.status !== 'fail')
  const byKey = new Map<string, Op[]>()
  for (const o of live) byKey.set(o.key, [...(byKey.get(o.key) ?? []), o])
  const linearizable = (keyOps: Op[]): boolean => {
    const used = new Set<Op>()
    const search = (state: string | null): boolean => {
      if (keyOps.every((o) => used.has(o) || o.status === 'unknown')) return true
      for (const o of keyOps) {
        if (used.has(o)) continue
        // Every op that returned before o was called must already be placed.
        if (keyOps.some((x) => x !== o && !used.has(x) && x.ret < o.call)) continue
        const after = registerModel.step(state, o)
        if (after === undefined) continue
        used.add(o)
        if (search(after)) return true
        used.delete(o)
      }
      return false
    }
    return search(null)
  }
  return [...byKey.values()].every(linearizable)
}

describe('linearizability checker against the definition', () => {
  it('agrees with a brute-force search on 3,000 random small histories', () => {
    const random = prng(99)
    let valid = 0
    for (let round = 0; round < 3000; round++) {
      const values = ['a', 'b', 'c']
      const rows: Row[] = []
      const count = 2 + Math.floor(random() * 6)
      let written = 0
      for (let i = 0; i < count; i++) {
        const call = Math.floor(random() * 10)
        const ret = call + Math.floor(random() * 5)
        const r = random()
        const status: OpStatus = r < 0.1 ? 'fail' : r < 0.25 ? 'unknown' : 'ok'
        const f = random() < 0.45 ? 'get' : random() < 0.8 ? 'put' : 'del'
        const key = random() < 0.8 ? 'k' : 'j'
        if (f === 'put') {
          // Unique values, as the workload writes them.
          rows.push([i, 'put', key, `${values[written % 3]}${written}`, call, status === 'unknown' ? INF : ret, status])
          written++
        } else if (f === 'get') {
          const pick = Math.floor(random() * (written + 1))
          const output = pick === written ? null : `${values[pick % 3]}${pick}`
          rows.push([i, 'get', key, output, call, status === 'unknown' ? INF : ret, status])
        } else {
          rows.push([i, 'del', key, null, call, status === 'unknown' ? INF : ret, status])
        }
      }
      const ops = history(rows)
      const expected = bruteForce(ops)
      const got = checkHistory(ops, registerModel).valid
      if (got !== expected)
        throw new Error(`disagree (checker ${got}, definition ${expected}) on ${JSON.stringify(rows)}`)
      if (expected) valid++
    }
    // Both verdicts were exercised.
    expect(valid).toBeGreaterThan(300)
    expect(valid).toBeLessThan(2700)
  })
})

describe('set checker', () => {
  const op = (id: number, f: 'add' | 'remove', key: string, status: OpStatus): Op => ({
    id,
    process: 0,
    key,
    f,
    value: null,
    output: null,
    call: id,
    ret: status === 'unknown' ? INF : id + 1,
    status,
  })

  it('accepts a final set holding every acknowledged add, and unknown ones either way', () => {
    const ops = [op(0, 'add', 'a', 'ok'), op(1, 'add', 'b', 'unknown'), op(2, 'add', 'c', 'unknown')]
    const verdict = checkSet(ops, [new Set(['a', 'b']), new Set(['a', 'b']), null])
    expect(verdict).toMatchObject({ valid: true, acknowledgedAdds: 1, unknownAdds: 2, unknownAddsPresent: 1 })
  })

  it('finds a lost add, a resurrected remove, an element never added, and nodes that differ', () => {
    const ops = [
      op(0, 'add', 'a', 'ok'),
      op(1, 'add', 'b', 'ok'),
      op(2, 'remove', 'b', 'ok'),
      op(3, 'add', 'c', 'fail'),
      op(4, 'add', 'd', 'ok'),
    ]
    const verdict = checkSet(ops, [new Set(['b', 'c', 'd', 'z']), new Set(['b', 'c', 'z'])])
    expect(verdict.valid).toBe(false)
    expect(verdict.lost).toEqual(['a'])
    expect(verdict.resurrected).toEqual(['b'])
    expect(verdict.unexpected.sort()).toEqual(['c', 'z'])
    expect(verdict.diverged).toEqual([{ node: 1, missing: ['d'], extra: [] }])
  })

  it('sets apart what writes allowed to be lost (w: 0) lost, for the caller to find in rollback files', () => {
    const w0 = (o: Op): Op => ({ ...o, w: '0' })
    const ops = [w0(op(0, 'add', 'a', 'ok')), op(1, 'add', 'b', 'ok'), w0(op(2, 'remove', 'b', 'ok'))]
    const verdict = checkSet(ops, [new Set(['b'])], (write) => write.w === '0')
    expect(verdict).toMatchObject({
      valid: true,
      lost: [],
      lostAllowed: ['a'],
      resurrected: [],
      resurrectedAllowed: ['b'],
    })
  })
})
