import { historySchema } from '@tandem/protocol'
import { describe, expect, it } from 'vitest'

describe('history on the wire', () => {
  it('takes epochs with and without the time and reason they began (data dirs from before both exist)', () => {
    const old = { epoch: 1, startSeq: 1, by: 'a', id: 'x1' }
    const fresh = { epoch: 2, startSeq: 10, by: 'b', id: 'x2', at: 1_700_000_000_000, why: 'election' }
    expect(historySchema.parse([old, fresh])).toEqual([old, fresh])
  })

  it('refuses a time that is not a whole, non-negative number of ms, and an over-long reason', () => {
    const base = { epoch: 1, startSeq: 1, by: 'a' }
    expect(historySchema.safeParse([{ ...base, at: -1 }]).success).toBe(false)
    expect(historySchema.safeParse([{ ...base, at: 1.5 }]).success).toBe(false)
    expect(historySchema.safeParse([{ ...base, at: 'yesterday' }]).success).toBe(false)
    expect(historySchema.safeParse([{ ...base, why: 'x'.repeat(201) }]).success).toBe(false)
    expect(historySchema.safeParse([{ ...base, why: 'x'.repeat(200) }]).success).toBe(true)
  })
})
