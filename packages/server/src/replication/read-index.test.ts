import { TandemError } from '@tandem/protocol'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { type AckSource, AckTracker } from './acks.js'
import { ReadIndex, type ReadIndexHost } from './read-index.js'

/** One replication link per replica id (the same object each time, as a feed is). */
const links = new Map<string, AckSource>()
function link(nodeId: string): AckSource {
  let source = links.get(nodeId)
  if (!source) {
    source = { nodeId }
    links.set(nodeId, source)
  }
  return source
}

/** A master of a 3-member group: itself plus replicas r1, r2; a majority is itself and one replica. */
function master(options: { epochStart?: number; lastSeq?: number } = {}) {
  const acks = new AckTracker()
  const state = {
    lastSeq: options.lastSeq ?? 10,
    epochStart: options.epochStart ?? 1,
    now: 0,
    leaseHeld: true,
    barriers: 0,
  }
  const host: ReadIndexHost = {
    committedSeq: () => Math.min(state.lastSeq, acks.seqHeldBy(1)),
    epochStartSeq: () => state.epochStart,
    headSeq: () => state.lastSeq,
    writeBarrier: async () => {
      state.barriers++
      return ++state.lastSeq
    },
    check: () => {
      if (!state.leaseHeld) throw new TandemError('NOMASTER', 'lease lapsed')
    },
    now: () => state.now,
  }
  const index = new ReadIndex(host, { maxWaitMs: 1000, sweepMs: 10 })
  acks.onAdvance = () => index.advance()
  return { acks, state, index }
}

describe('AckTracker.seqHeldBy', () => {
  it('is the highest seq at least N replicas hold', () => {
    const acks = new AckTracker()
    acks.ack(link('a'), 5)
    acks.ack(link('b'), 9)
    acks.ack(link('c'), 7)
    expect(acks.seqHeldBy(1)).toBe(9)
    expect(acks.seqHeldBy(2)).toBe(7)
    expect(acks.seqHeldBy(3)).toBe(5)
    expect(acks.seqHeldBy(4)).toBe(0)
    expect(acks.seqHeldBy(0)).toBe(Number.MAX_SAFE_INTEGER)
    // Only the replicas `from` accepts count (a read replica outside the group does not).
    expect(acks.seqHeldBy(1, (id) => id !== 'b')).toBe(7)
    // Two links claiming one node id are one replica, at the furthest of them.
    const again = { nodeId: 'a' }
    acks.ack(again, 8)
    expect(acks.seqHeldBy(3)).toBe(7)
    expect(acks.seqHeldBy(4)).toBe(0)
  })

  it('counts a change whenever an answer may move, and only then (callers cache between changes)', () => {
    const acks = new AckTracker()
    const a = { nodeId: 'a' }
    const c0 = acks.changes
    acks.attach(a)
    const c1 = acks.changes
    expect(c1).toBeGreaterThan(c0)
    acks.ack(a, 5)
    const c2 = acks.changes
    expect(c2).toBeGreaterThan(c1)
    acks.ack(a, 5)
    acks.ack(a, 3)
    expect(acks.changes).toBe(c2)
    acks.forget(a)
    expect(acks.changes).toBeGreaterThan(c2)
  })
})

describe('read index', () => {
  const open: ReadIndex[] = []
  afterEach(() => {
    for (const i of open.splice(0)) i.close()
    vi.useRealTimers()
  })

  it('answers at once a read whose writes a majority already holds', () => {
    const { acks, index } = master()
    open.push(index)
    acks.ack(link('r1'), 10)
    expect(index.confirm(10)).toBeNull()
    expect(index.confirm(7)).toBeNull()
    expect(index.stats.immediate).toBe(2)
  })

  it('holds a read that saw a write no majority holds until one does', async () => {
    // The read saw seq 10 (written here, acked by no replica): showing it
    // before a majority holds it would show a write a fail-over can drop.
    const { acks, index } = master()
    open.push(index)
    acks.ack(link('r1'), 8)
    const wait = index.confirm(10)
    expect(wait).not.toBeNull()
    let answered = false
    void wait?.then(() => {
      answered = true
    })
    acks.ack(link('r2'), 9)
    await Promise.resolve()
    expect(answered).toBe(false)
    acks.ack(link('r1'), 10)
    await wait
    expect(answered).toBe(true)
    expect(index.waiting).toBe(0)
  })

  it('reads waiting for the same seq share one wait, released in seq order', async () => {
    const { acks, index } = master({ lastSeq: 20 })
    open.push(index)
    const a = index.confirm(12)
    const b = index.confirm(12)
    const c = index.confirm(15)
    const d = index.confirm(11)
    expect(a).toBe(b)
    expect(index.waiting).toBe(3)
    const released: string[] = []
    void a?.then(() => released.push('12'))
    void c?.then(() => released.push('15'))
    void d?.then(() => released.push('11'))
    acks.ack(link('r1'), 12)
    await Promise.resolve()
    expect(released.sort()).toEqual(['11', '12'])
    expect(index.waiting).toBe(1)
    acks.ack(link('r2'), 15)
    await c
    expect(released).toContain('15')
  })

  it("never counts the master's copy before it is durable", async () => {
    // Replicas can only ack what the master committed, but the read may
    // have seen a batch still being written here: committedSeq is capped
    // by the master's own lastSeq.
    const { acks, state, index } = master({ lastSeq: 10 })
    open.push(index)
    acks.ack(link('r1'), 10)
    const wait = index.confirm(11)
    expect(wait).not.toBeNull()
    state.lastSeq = 11
    acks.ack(link('r1'), 11)
    await wait
  })

  it('writes one empty entry of its own epoch before answering reads of an older epoch', async () => {
    // A majority holding an entry of an older epoch does not keep it from
    // being replaced by a candidate whose last entry is of a newer epoch:
    // until this master's own epoch has an entry a majority holds, reads wait for one.
    const { acks, state, index } = master({ lastSeq: 10, epochStart: 11 })
    open.push(index)
    acks.ack(link('r1'), 10)
    acks.ack(link('r2'), 10)
    const a = index.confirm(10)
    const b = index.confirm(9)
    expect(a).not.toBeNull()
    expect(b).not.toBeNull()
    await Promise.resolve()
    await Promise.resolve()
    expect(state.barriers).toBe(1)
    let done = 0
    void Promise.all([a, b]).then(() => done++)
    await new Promise((r) => setImmediate(r))
    expect(done).toBe(0)
    acks.ack(link('r1'), 11)
    await Promise.all([a, b])
    expect(state.barriers).toBe(1)
    // The epoch has a committed entry now: no more barriers.
    expect(index.confirm(11)).toBeNull()
    expect(state.barriers).toBe(1)
  })

  it('answers at once a read that depends on an older seq, while later writes wait for the majority', async () => {
    // A get depends on the write that last changed its key: writes 13..20
    // to other keys, not yet held by a majority, do not hold it up.
    const { acks, index } = master({ lastSeq: 20 })
    open.push(index)
    acks.ack(link('r1'), 12)
    expect(index.confirm(12)).toBeNull()
    expect(index.confirm(3)).toBeNull()
    const later = index.confirm(13)
    expect(later).not.toBeNull()
    expect(index.stats).toMatchObject({ immediate: 2, waited: 1, barriers: 0 })
    acks.ack(link('r2'), 13)
    await later
  })

  it('after its epoch has a committed entry, answers reads of older seqs at once with no new barrier', async () => {
    // Once a majority holds an entry of this epoch, it holds every entry before it.
    const { acks, state, index } = master({ lastSeq: 10, epochStart: 11 })
    open.push(index)
    acks.ack(link('r1'), 10)
    const first = index.confirm(4)
    expect(first).not.toBeNull()
    await Promise.resolve()
    acks.ack(link('r1'), 11)
    await first
    expect(index.confirm(4)).toBeNull()
    expect(index.confirm(10)).toBeNull()
    expect(state.barriers).toBe(1)
  })

  it('many concurrent reads cost one barrier and one wait per seq, all released by one ack', async () => {
    // Count confirmation rounds, not time: 200 reads arriving before this
    // epoch has an entry share one barrier; then 200 reads of the same
    // unconfirmed seq share one wait, released together by one ack.
    const { acks, state, index } = master({ lastSeq: 10, epochStart: 11 })
    open.push(index)
    const early = Array.from({ length: 200 }, (_, i) => index.confirm(1 + (i % 10)))
    await new Promise((r) => setImmediate(r))
    expect(state.barriers).toBe(1)
    // All of them wait for the barrier's seq: one wait.
    expect(index.waiting).toBe(1)
    acks.ack(link('r2'), 11)
    await Promise.all(early)
    expect(state.barriers).toBe(1)
    expect(index.stats.barriers).toBe(1)

    state.lastSeq = 12
    const late = Array.from({ length: 200 }, () => index.confirm(12))
    expect(new Set(late).size).toBe(1)
    expect(index.waiting).toBe(1)
    acks.ack(link('r1'), 12)
    await Promise.all(late)
    expect(index.waiting).toBe(0)
    expect(state.barriers).toBe(1)
  })

  it('fails every waiting read with the reason once the node may no longer serve them', async () => {
    vi.useFakeTimers()
    const { state, index } = master()
    open.push(index)
    const a = index.confirm(10)
    const b = index.confirm(10)
    state.leaseHeld = false
    vi.advanceTimersByTime(20)
    await expect(a).rejects.toMatchObject({ code: 'NOMASTER' })
    await expect(b).rejects.toMatchObject({ code: 'NOMASTER' })
    expect(index.waiting).toBe(0)
  })

  it('fails a read that waited maxWaitMs with TIMEOUT, and only that one', async () => {
    vi.useFakeTimers()
    const { acks, state, index } = master({ lastSeq: 20 })
    open.push(index)
    const old = index.confirm(10)
    state.now = 600
    const young = index.confirm(12)
    state.now = 1000
    vi.advanceTimersByTime(20)
    await expect(old).rejects.toMatchObject({ code: 'TIMEOUT' })
    expect(index.waiting).toBe(1)
    acks.ack(link('r1'), 12)
    await expect(young).resolves.toBeUndefined()
  })

  it('failAll rejects every waiting read (step-down)', async () => {
    const { index } = master()
    open.push(index)
    const a = index.confirm(10)
    index.failAll(new TandemError('FENCED', 'stepped down'))
    await expect(a).rejects.toMatchObject({ code: 'FENCED' })
  })
})
