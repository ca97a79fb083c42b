import { describe, expect, it } from 'vitest'
import { epochAt, forkPoint, planResync } from './history.js'

const h = (...epochs: [number, number, string][]) => epochs.map(([epoch, startSeq, by]) => ({ epoch, startSeq, by }))

describe('forkPoint', () => {
  it('is the shorter log end when histories agree', () => {
    expect(forkPoint(h([1, 1, 'a']), 50, h([1, 1, 'a']), 40)).toBe(40)
  })
  it('is the seq before a newer epoch the other log lacks', () => {
    expect(forkPoint(h([1, 1, 'a'], [2, 91, 'b']), 120, h([1, 1, 'a']), 100)).toBe(90)
  })
  it('is 0 for two unrelated histories', () => {
    expect(forkPoint(h([1, 1, 'a']), 10, h([1, 1, 'b']), 10)).toBe(0)
  })
  it('is 0 for the same node beginning epoch 1 again after losing its data', () => {
    const before = [{ epoch: 1, startSeq: 1, by: 'a', id: 'x1' }]
    const again = [{ epoch: 1, startSeq: 1, by: 'a', id: 'y2' }]
    expect(forkPoint(before, 20, again, 30)).toBe(0)
    expect(planResync({ history: again, lastSeq: 30, firstLogSeq: 1 }, { history: before, lastSeq: 20 })).toMatchObject(
      {
        kind: 'refuse',
        reason: 'diverged',
      },
    )
  })
  it('epochAt maps seqs to epochs', () => {
    const hist = h([1, 1, 'a'], [3, 10, 'b'])
    expect([epochAt(hist, 0), epochAt(hist, 1), epochAt(hist, 9), epochAt(hist, 10), epochAt(hist, 99)]).toEqual([
      0, 1, 1, 3, 3,
    ])
  })
})

describe('planResync', () => {
  const up = { history: h([1, 1, 'a']), lastSeq: 100, firstLogSeq: 1 }

  it('continues a downstream whose next entry is still in the log', () => {
    expect(planResync(up, { history: h([1, 1, 'a']), lastSeq: 60 })).toEqual({ kind: 'continue', fromSeq: 61 })
    expect(planResync(up, { history: h([1, 1, 'a']), lastSeq: 100 })).toEqual({ kind: 'continue', fromSeq: 101 })
  })

  it('full-syncs an empty downstream and one that fell out of the retained log', () => {
    expect(planResync(up, { history: [], lastSeq: 0 }).kind).toBe('fullsync')
    expect(planResync({ ...up, firstLogSeq: 70 }, { history: h([1, 1, 'a']), lastSeq: 60 }).kind).toBe('fullsync')
    expect(planResync({ ...up, firstLogSeq: 61 }, { history: h([1, 1, 'a']), lastSeq: 60 }).kind).toBe('continue')
  })

  // Rule: an empty or restarted-empty upstream never wipes a downstream that has more than it.
  it('refuses when the upstream was restarted empty with a new history', () => {
    const plan = planResync(
      { history: h([1, 1, 'x']), lastSeq: 0, firstLogSeq: 1 },
      { history: h([1, 1, 'a']), lastSeq: 100 },
    )
    expect(plan.kind).toBe('refuse')
  })

  it('refuses when the upstream is behind in the same history', () => {
    const plan = planResync({ ...up, lastSeq: 50 }, { history: h([1, 1, 'a']), lastSeq: 60 })
    expect(plan).toMatchObject({ kind: 'refuse', reason: 'behind' })
  })

  // Rule: a divergent tail is discarded only in favour of a newer epoch that began over it.
  it('full-syncs a downstream whose tail was overtaken by a newer epoch', () => {
    const newMaster = { history: h([1, 1, 'a'], [2, 91, 'b']), lastSeq: 120, firstLogSeq: 1 }
    expect(planResync(newMaster, { history: h([1, 1, 'a']), lastSeq: 100 }).kind).toBe('fullsync')
    // No divergent tail: the old master stopped at 90, so it simply continues.
    expect(planResync(newMaster, { history: h([1, 1, 'a']), lastSeq: 90 })).toEqual({ kind: 'continue', fromSeq: 91 })
  })

  // Seen in the fault suite: n2 was elected in epoch 5 with the old master's
  // epoch-4 entries only up to 2925, wrote 2926, and lost its lease; the
  // others went on from the old master's 2928 through epochs 7..13. n2's 2926
  // (epoch 5) is newer than the upstream's 2926 (epoch 4), but epoch 5 lost.
  it('full-syncs a downstream whose tail is in an epoch a later one superseded', () => {
    const winner = {
      history: h([1, 1, 'a'], [4, 1652, 'a'], [7, 2929, 'a'], [13, 4943, 'a']),
      lastSeq: 5800,
      firstLogSeq: 1,
    }
    const loser = { history: h([1, 1, 'a'], [4, 1652, 'a'], [5, 2926, 'c']), lastSeq: 2926 }
    expect(planResync(winner, loser)).toMatchObject({ kind: 'fullsync', rollbackAfter: 2925 })
    // The same tail against an upstream whose newest epoch is the downstream's own is still refused.
    const peer = { history: h([1, 1, 'a'], [4, 1652, 'a'], [5, 2927, 'b']), lastSeq: 2930, firstLogSeq: 1 }
    expect(planResync(peer, loser)).toMatchObject({ kind: 'refuse', reason: 'diverged' })
  })

  it('refuses a stale upstream from an older epoch', () => {
    const plan = planResync(up, { history: h([1, 1, 'a'], [2, 91, 'b']), lastSeq: 95 })
    expect(plan).toMatchObject({ kind: 'refuse', reason: 'stale' })
  })
})
