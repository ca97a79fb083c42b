import { describe, expect, it } from 'vitest'
import type { VersionVectorObject } from '../storage/version-vector.js'
import { StabilityTracker } from './stability.js'

/**
 * Rule 2 of the multi-master notes: a tombstone goes only once every member
 * holds it and this node holds every write that could lose to it. These
 * check who counts as a member: a member left out is a node whose older
 * writes can arrive after the tombstone has gone.
 */

/** A node's tracker whose own version vector and peer origins the test moves. */
function tracker(self: string, own: VersionVectorObject, peers: string[] = []) {
  const state = { own, peers, unreached: [] as string[] }
  const t = new StabilityTracker(
    self,
    () => state.own,
    () => state.unreached,
    () => state.peers,
  )
  return { t, state }
}

describe('StabilityTracker', () => {
  it('a peer a link has named but whose row never arrived holds stability up', () => {
    // b holds its own delete (b:1); its link to a has named a, and nothing of a has arrived.
    const { t } = tracker('b', { b: 1 }, ['a'])
    expect(t.members()).toEqual(new Set(['a', 'b']))
    expect(t.stable()).toEqual({ blockedBy: 'a' })

    // a's row says it holds b's delete and one write of its own, which b lacks.
    t.observe('a', { vv: { a: 1, b: 1 }, complete: true })
    expect(t.stable()).toEqual({ blockedBy: 'a' })
    // Once b holds a's write, a's row is confirmed: the delete is stable.
    const { t: t2, state } = tracker('b', { b: 1 }, ['a'])
    t2.observe('a', { vv: { a: 1, b: 1 }, complete: true })
    state.own = { a: 1, b: 1 }
    t2.advance()
    expect(t2.stable()).toEqual({ vv: { a: 1, b: 1 } })
  })

  it('a member stays one when its link goes and a later row leaves it out', () => {
    const { t, state } = tracker('b', { b: 1 }, ['a'])
    expect(t.members().has('a')).toBe(true)
    state.peers = []
    t.observe('c', { vv: { b: 1, c: 0 }, complete: true })
    expect(t.members()).toEqual(new Set(['a', 'b', 'c']))
    expect(t.stable()).toEqual({ blockedBy: 'a' })
  })

  it('its own row lists every member it knows, so membership reaches nodes that never meet that member', () => {
    // A line b - c - d: c has reached d (its link named it) but holds none of d's writes.
    const { t: c } = tracker('c', { b: 1 }, ['b', 'd'])
    const row = c.gossip().c
    expect(row.vv).toEqual({ b: 1, c: 0, d: 0 })

    // b reaches only c. c's row, confirmed, covers b's delete; d, named in it, has not reported.
    const { t: b } = tracker('b', { b: 1 }, ['c'])
    b.observe('c', row)
    expect(b.members()).toEqual(new Set(['b', 'c', 'd']))
    expect(b.stable()).toEqual({ blockedBy: 'd' })

    // d's row, relayed by c, counts once b holds d's writes up to it; the
    // stable vector covers b's delete (b: 1), and none of d's writes (c's row holds none).
    const { t: b2, state } = tracker('b', { b: 1 }, ['c'])
    b2.observe('c', row)
    b2.observe('d', { vv: { b: 1, c: 0, d: 2 }, complete: true })
    expect(b2.stable()).toEqual({ blockedBy: 'd' })
    state.own = { b: 1, d: 2 }
    b2.advance()
    expect(b2.stable()).toEqual({ vv: { b: 1, c: 0, d: 0 } })
  })
})

describe('StabilityTracker.forget', () => {
  it('a forgotten member is no longer awaited, nor taken back by a row that names it', () => {
    // b's links named a and c; c died before its row arrived.
    const { t, state } = tracker('b', { b: 1 }, ['a', 'c'])
    t.observe('a', { vv: { a: 0, b: 1, c: 0 }, complete: true })
    expect(t.stable()).toEqual({ blockedBy: 'c' })
    t.forget('c')
    expect(t.members()).toEqual(new Set(['a', 'b']))
    expect(t.stable()).toEqual({ vv: { a: 0, b: 1, c: 0 } })
    // Rows naming c, its own or relayed, and the link that still names it, bring it back nowhere.
    t.observe('c', { vv: { c: 5 }, complete: true })
    state.peers = ['a', 'c']
    expect(t.members()).toEqual(new Set(['a', 'b']))
    expect(t.gossip().c).toBeUndefined()
  })

  it('waits until this node holds the writes of a forgotten origin that a member holds', () => {
    // a holds c's writes up to c:3, b only up to c:2: c:3 may be older than b's delete.
    const { t, state } = tracker('b', { b: 1, c: 2 }, ['a', 'c'])
    t.forget('c')
    t.observe('a', { vv: { a: 0, b: 1, c: 3 }, complete: true })
    expect(t.stable()).toEqual({ blockedBy: 'a (it holds writes of forgotten c that this node lacks)' })
    state.own = { b: 1, c: 3 }
    t.advance()
    expect(t.stable()).toEqual({ vv: { a: 0, b: 1, c: 3 } })
  })
})
