import { describe, expect, it } from 'vitest'
import { TurnFlush } from './turn-flush.js'

/** Resolves once the loop has gone through a check phase (setImmediate) after now. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('TurnFlush', () => {
  it('flushes every connection added in a turn once, in the order added, after the ticks and promise jobs of that turn', async () => {
    const flush = new TurnFlush()
    const added: string[] = []
    const flushed: string[] = []
    const add = (name: string) => {
      added.push(name)
      flush.add({ flushNow: () => flushed.push(name) })
    }
    add('a')
    process.nextTick(() => add('b'))
    await Promise.resolve()
    add('c')
    await new Promise<void>((resolve) => process.nextTick(resolve))
    expect(flushed).toEqual([])
    await nextTurn()
    expect(added).toHaveLength(3)
    expect(flushed).toEqual(added)
    await nextTurn()
    expect(flushed).toEqual(added)
  })

  it('leaves a connection added while a flush runs (a backlog its pump dispatched) to the next turn', async () => {
    const flush = new TurnFlush()
    const flushed: string[] = []
    const again = { flushNow: () => flushed.push('again') }
    flush.add({
      flushNow: () => {
        flushed.push('first')
        flush.add(again)
      },
    })
    await nextTurn()
    expect(flushed).toEqual(['first'])
    await nextTurn()
    expect(flushed).toEqual(['first', 'again'])
  })
})
