import { describe, expect, it } from 'vitest'
import { KeyPresence, ticketExists, ticketKnown } from './key-presence.js'

/**
 * The rule KeyPresence must keep, as two Maps: a key set since the current
 * generation began answers its last state; one set only in the generation
 * before answers that; any other is unknown. Never a wrong answer.
 */
class Reference {
  private current = new Map<string, boolean>()
  private previous = new Map<string, boolean>()
  constructor(private readonly max: number) {}
  get(name: string): boolean | undefined {
    if (this.max <= 0) return undefined
    return this.current.get(name) ?? this.previous.get(name)
  }
  /** The names' bytes in `current`: a generation ends at half of max keys or 64 bytes of names per such key. */
  private currentBytes = 0
  /** Whether this set dropped keys (a swap emptied a generation that held some). */
  set(name: string, exists: boolean): boolean {
    if (this.max <= 0) return false
    if (!this.current.has(name)) this.currentBytes += name.length
    this.current.set(name, exists)
    const half = Math.max(1, this.max >> 1)
    if (this.current.size >= half || this.currentBytes >= half * 64) {
      const dropped = this.previous.size > 0
      this.previous = this.current
      this.current = new Map()
      this.currentBytes = 0
      return dropped
    }
    return false
  }
  clear(): void {
    this.current.clear()
    this.previous.clear()
    this.currentBytes = 0
  }
  get size(): number {
    return this.current.size + this.previous.size
  }
}

/** A prefixed data key's latin1 name, as the Store makes it. */
const nameOf = (key: string) => Buffer.from(`!data!${key}`, 'utf8').toString('latin1')

function seeded(seed: number) {
  return (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    return seed % n
  }
}

describe('KeyPresence', () => {
  for (const max of [0, 1, 3, 10, 600, 5000]) {
    it(`answers as the two-generation rule says, through growth, swaps and clears (max ${max})`, () => {
      const presence = new KeyPresence(max)
      const reference = new Reference(max)
      const next = seeded(max + 11)
      // Keys of many lengths, some equal but for their last character, and
      // non-ASCII ones (a byte each in the name): look-alikes must not match.
      const keys = Array.from({ length: 3000 }, (_, i) =>
        i % 7 === 0 ? `clé-${i}` : i % 5 === 0 ? `${'x'.repeat(i % 300)}${i}` : `k${i}`,
      )
      let unknown = 0
      for (let op = 0; op < 20_000; op++) {
        const name = nameOf(keys[next(keys.length)])
        const roll = next(100)
        if (roll < 45) {
          const exists = next(3) !== 0
          presence.set(name, exists)
          reference.set(name, exists)
        } else if (roll === 99 && next(50) === 0) {
          presence.clear()
          reference.clear()
        } else {
          const want = reference.get(name)
          if (want === undefined) unknown++
          expect(presence.get(name)).toBe(want)
        }
        if (op % 1000 === 0) expect(presence.size).toBe(reference.size)
      }
      expect(presence.size).toBe(reference.size)
      if (max >= 5000) expect(unknown).toBeLessThan(5000) // hits happen, not only misses
    })
  }

  for (const max of [0, 1, 3, 10, 600, 5000]) {
    it(`lookup then keep, as a group commit uses them, agree with get then set through swaps and clears (max ${max})`, () => {
      const presence = new KeyPresence(max)
      const reference = new Reference(max)
      const next = seeded(max + 23)
      const keys = Array.from({ length: 2000 }, (_, i) => (i % 7 === 0 ? `clé-${i}` : `k${i}`))
      let inPlace = 0
      for (let group = 0; group < 600; group++) {
        // A group: every key looked up first (some twice), then each one's new state kept, in
        // order, with the tickets and stamp of the lookups; keys set by name or a clear between.
        const names = Array.from({ length: 1 + next(40) }, () => nameOf(keys[next(keys.length)]))
        const stamp = presence.stamp
        const tickets = names.map((name) => {
          const ticket = presence.lookup(name)
          const want = reference.get(name)
          expect(ticketKnown(ticket)).toBe(want !== undefined)
          if (want !== undefined) expect(ticketExists(ticket)).toBe(want)
          return ticket
        })
        if (next(20) === 0) {
          const name = nameOf(keys[next(keys.length)])
          presence.set(name, true)
          reference.set(name, true)
        }
        if (next(60) === 0) {
          presence.clear()
          reference.clear()
        }
        const states = new Map(names.map((name) => [name, next(4) !== 0]))
        for (let i = 0; i < names.length; i++) {
          if (tickets[i] >= 4 && stamp === presence.stamp) inPlace++
          presence.keep(tickets[i], stamp, names[i], states.get(names[i]) as boolean)
          reference.set(names[i], states.get(names[i]) as boolean)
        }
        for (const name of names) expect(presence.get(name)).toBe(reference.get(name))
        expect(presence.size).toBe(reference.size)
      }
      if (max >= 5000) expect(inPlace).toBeGreaterThan(1000) // tickets used in place, not only by name
    })
  }

  for (const max of [0, 1, 10, 600, 5000]) {
    it(`once marked complete, knows a key it does not hold is absent, until a key is dropped (max ${max})`, () => {
      const presence = new KeyPresence(max)
      const reference = new Reference(max)
      presence.markComplete()
      let complete = max > 0
      const next = seeded(max + 5)
      const keys = Array.from({ length: 4000 }, (_, i) => (i % 7 === 0 ? `clé-${i}` : `k${i}`))
      let absent = 0
      for (let op = 0; op < 20_000; op++) {
        const name = nameOf(keys[next(keys.length)])
        const roll = next(100)
        if (roll < 40) {
          const exists = next(3) !== 0
          presence.set(name, exists)
          if (reference.set(name, exists)) complete = false
        } else if (roll === 99 && next(20) === 0) {
          presence.clear()
          reference.clear()
          complete = false
        } else {
          const want = reference.get(name) ?? (complete ? false : undefined)
          if (want === false && reference.get(name) === undefined) absent++
          expect(presence.get(name)).toBe(want)
          const ticket = presence.lookup(name)
          expect(ticketKnown(ticket)).toBe(want !== undefined)
          if (want !== undefined) expect(ticketExists(ticket)).toBe(want)
        }
        expect(presence.isComplete).toBe(complete)
      }
      // Keys known absent without being held happen (a small table drops keys at once).
      if (max >= 5000) expect(absent).toBeGreaterThan(200)
      // Marked again only while it holds nothing.
      presence.set(nameOf('k1'), true)
      presence.markComplete()
      expect(presence.isComplete).toBe(false)
      presence.clear()
      presence.markComplete()
      expect(presence.isComplete).toBe(max > 0)
    })
  }

  it('is no longer complete once it does not keep a name that exists (a character over 0xff)', () => {
    const presence = new KeyPresence(100)
    presence.markComplete()
    presence.set('\u0100', false)
    expect(presence.isComplete).toBe(true)
    presence.set('\u0100', true)
    expect(presence.isComplete).toBe(false)
    expect(presence.get(nameOf('other'))).toBeUndefined()
  })

  it('keeps names whose hashes meet apart (many keys in a small table)', () => {
    // 20,000 keys in one generation: every slot chain is probed past others.
    const presence = new KeyPresence(1_000_000)
    for (let i = 0; i < 20_000; i++) presence.set(nameOf(`key:${i}`), i % 3 !== 0)
    for (let i = 0; i < 20_000; i++) expect(presence.get(nameOf(`key:${i}`))).toBe(i % 3 !== 0)
    for (let i = 20_000; i < 25_000; i++) expect(presence.get(nameOf(`key:${i}`))).toBeUndefined()
    expect(presence.get(nameOf('key:1').slice(0, -1))).toBeUndefined()
  })

  it('does not keep a name with a character over 0xff (names are latin1, a byte each)', () => {
    const presence = new KeyPresence(100)
    presence.set('a\u0100', true)
    expect(presence.get('a\u0100')).toBeUndefined()
    // Its low byte alone is another name, never confused with it.
    presence.set('a\u0000', true)
    expect(presence.get('a\u0100')).toBeUndefined()
    expect(presence.get('a\u0000')).toBe(true)
    expect(presence.size).toBe(1)
  })

  it('holds its keys in typed arrays: about 30 bytes a key beside the key bytes, growing with the keys written', () => {
    const presence = new KeyPresence(200_000)
    expect(presence.bytes).toBe(0)
    for (let i = 0; i < 1000; i++) presence.set(nameOf(`key:${i}`), true)
    // A store that writes few keys holds little.
    expect(presence.bytes).toBeLessThan(100_000)
    for (let i = 0; i < 200_000; i++) presence.set(nameOf(`key:${i}`), true)
    const keyBytes = nameOf('key:100000').length
    expect(presence.bytes / 200_000).toBeLessThan(30 + 2 * keyBytes)
  })

  it('holds a bounded share of bytes for long keys, and still answers right for those it keeps', () => {
    const max = 1000
    const presence = new KeyPresence(max)
    // Keys at --max-key-bytes (8 KiB): 500 a generation would be 4 MiB of names each.
    const long = (i: number) => nameOf(`${'x'.repeat(8186)}${String(i).padStart(6, '0')}`)
    for (let i = 0; i < 3 * max; i++) presence.set(long(i), i % 3 !== 0)
    // The names' share (64 bytes a key) and one key past it, per generation, plus the entries' arrays.
    expect(presence.bytes).toBeLessThan(2 * (max * 64 + 2 * long(0).length) + max * 60)
    const last = 3 * max - 1
    expect(presence.get(long(last))).toBe(last % 3 !== 0)
    expect(presence.get(long(last - 1))).toBe((last - 1) % 3 !== 0)
    for (let i = 0; i < 3 * max; i++) {
      const known = presence.get(long(i))
      if (known !== undefined) expect(known).toBe(i % 3 !== 0)
    }
  })
})
