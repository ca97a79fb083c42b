import { describe, expect, it } from 'vitest'
import { sameRuns, sameStrings } from './peer-feed.js'

/**
 * A feed keeps the peer's direct origins and their runs from ack to ack
 * and makes them anew only when an ack's lists differ from the last (see
 * PeerFeed.takeDirect): lists taken for the same when they are not would
 * leave a feed skipping an origin the peer no longer pulls directly, or
 * from a run it no longer pulls (older-copy.test.ts has it end to end).
 */
describe('peer feed: direct lists', () => {
  it('takes origin lists for the same only when they hold the same origins in the same order', () => {
    expect(sameStrings([], [])).toBe(true)
    expect(sameStrings(['a', 'b'], ['a', 'b'])).toBe(true)
    expect(sameStrings(['a', 'b'], ['a'])).toBe(false)
    expect(sameStrings(['a'], ['a', 'b'])).toBe(false)
    expect(sameStrings(['a', 'b'], ['a', 'c'])).toBe(false)
    // Same size, an origin twice in one: not the same set.
    expect(sameStrings(['a', 'a'], ['a', 'b'])).toBe(false)
    expect(sameStrings(['b', 'a'], ['a', 'b'])).toBe(false)
  })

  it('takes runs for the same only when every origin has the same run and none is added or dropped', () => {
    expect(sameRuns({}, {})).toBe(true)
    expect(sameRuns({ a: 'r1', b: 'r2' }, { b: 'r2', a: 'r1' })).toBe(true)
    expect(sameRuns({ a: 'r1' }, { a: 'r2' })).toBe(false)
    expect(sameRuns({ a: 'r1' }, { a: 'r1', b: 'r2' })).toBe(false)
    expect(sameRuns({ a: 'r1', b: 'r2' }, { a: 'r1' })).toBe(false)
    expect(sameRuns({ a: 'r1' }, { b: 'r1' })).toBe(false)
    expect(sameRuns({ a: 'r1' }, {})).toBe(false)
    expect(sameRuns({}, { a: 'r1' })).toBe(false)
    // Only own keys count (the decoded ack's are plain objects).
    const inherited = Object.create({ a: 'r1' }) as Record<string, string>
    expect(sameRuns(inherited, {})).toBe(true)
    expect(sameRuns({ a: 'r1' }, inherited)).toBe(false)
  })
})
