import { TandemError } from '@tandem/client'
import { describe, expect, it } from 'vitest'
import { useNodeAndClient } from '../helpers/node-and-client.js'

/**
 * Plain puts that arrive together (the SDK sends concurrent calls in one
 * frame) are submitted to the store together, each still a write of its
 * own: every put answers its own seq, the seqs of all writes are distinct
 * and have no gaps, a key's modification seq is the seq its last put was
 * answered with, and a conditional write or a delete among them is ordered
 * where it came.
 */
describe('puts sent together', () => {
  const one = useNodeAndClient()

  it('each answers its own seq, in the order they were sent, with conditional writes and deletes among them', async () => {
    const db = one.db
    const calls: Promise<{ seq: number } | TandemError>[] = []
    const kinds: string[] = []
    for (let i = 0; i < 600; i++) {
      const key = `k${i % 37}`
      let call: Promise<{ seq: number }>
      if (i % 50 === 7) {
        kinds.push(`ifAbsent ${key}`)
        call = db.put(key, `absent ${i}`, { ifAbsent: true })
      } else if (i % 50 === 21) {
        kinds.push(`del ${key}`)
        call = db.del(key)
      } else {
        kinds.push(`put ${key}`)
        call = db.put(key, `v${i}`, { timeoutMs: 60_000 })
      }
      calls.push(call.catch((err: TandemError) => err))
    }
    const results = await Promise.all(calls)
    const seqs = results.filter((r): r is { seq: number } => !(r instanceof TandemError)).map((r) => r.seq)
    // Conditional puts of keys written before them are refused (CONFLICT), and nothing else is.
    const refused = results.filter((r) => r instanceof TandemError) as TandemError[]
    expect(refused.map((e) => e.code)).toEqual(refused.map(() => 'CONFLICT'))
    expect(refused.length).toBeGreaterThan(0)
    expect(new Set(seqs).size).toBe(seqs.length)
    const sorted = [...seqs].sort((a, b) => a - b)
    expect(sorted[sorted.length - 1] - sorted[0] + 1).toBe(seqs.length)
    // Writes are committed in the order they were sent: seqs rise with the calls.
    expect(seqs).toEqual(sorted)
    // A key's value and modification seq are those of its last write.
    for (let k = 0; k < 37; k++) {
      const key = `k${k}`
      let last = -1
      for (let i = 0; i < kinds.length; i++) {
        if (kinds[i].endsWith(` ${key}`) && !(results[i] instanceof TandemError)) last = i
      }
      const read = await db.get(key, { meta: true })
      const value = kinds[last].startsWith('ifAbsent') ? `absent ${last}` : `v${last}`
      if (kinds[last].startsWith('del')) expect(read, key).toBeUndefined()
      else expect(read, key).toEqual({ value, seq: (results[last] as { seq: number }).seq })
    }
  })
})
