import { describe, expect, it } from 'vitest'
import { keyName, keyNamer } from './keys.js'

describe('keyNamer', () => {
  it('names every key of a keyspace as keyName does, from a table or not', () => {
    for (const n of [1, 1000, 100_000, 300_000]) {
      const name = keyNamer(n)
      for (const i of [0, 1, 9, 10, 999, n - 1, Math.floor(n / 3)]) {
        if (i >= n) continue
        expect(name(i), `${i} of ${n}`).toBe(keyName(i))
      }
    }
    const name = keyNamer(100_000)
    for (let i = 0; i < 100_000; i++) if (name(i) !== keyName(i)) expect(name(i)).toBe(keyName(i))
  })
})
