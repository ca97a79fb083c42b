import { describe, expect, it } from 'vitest'
import { GroupCommitter } from './group-commit.js'

/** A committer whose commits finish only when the test says so. */
function manual<T>(options: { maxGroup: number; maxQueued?: number; weight?: (item: T) => number }) {
  const groups: T[][] = []
  const finish: (() => void)[] = []
  const committer = new GroupCommitter<T, number>(
    (group) => {
      groups.push(group)
      return new Promise((resolve) => finish.push(() => resolve(group.map((_, i) => i))))
    },
    { maxQueued: 1000, ...options },
  )
  const flush = async () => {
    while (finish.length > 0) {
      finish.shift()?.()
      await new Promise((r) => setImmediate(r))
    }
  }
  return { committer, groups, flush }
}

describe('group committer', () => {
  it('puts writes that arrive during a commit into the next group, in order', async () => {
    const { committer, groups, flush } = manual<string>({ maxGroup: 100 })
    const first = committer.submit('a')
    await new Promise((r) => setImmediate(r))
    const rest = ['b', 'c', 'd'].map((x) => committer.submit(x))
    await flush()
    await Promise.all([first, ...rest])
    expect(groups).toEqual([['a'], ['b', 'c', 'd']])
  })

  it('caps a group at maxGroup items', async () => {
    const { committer, groups, flush } = manual<number>({ maxGroup: 3 })
    const all = Array.from({ length: 7 }, (_, i) => committer.submit(i))
    await new Promise((r) => setImmediate(r))
    await flush()
    await Promise.all(all)
    expect(groups).toEqual([[0, 1, 2], [3, 4, 5], [6]])
  })

  it('counts items by weight, and never leaves an item heavier than maxGroup out', async () => {
    const { committer, groups, flush } = manual<number[]>({ maxGroup: 10, weight: (item) => item.length })
    const items = [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10], [11], Array.from({ length: 25 }, (_, i) => i), [12]]
    const all = items.map((item) => committer.submit(item))
    await new Promise((r) => setImmediate(r))
    await flush()
    await Promise.all(all)
    expect(groups.map((g) => g.map((item) => item.length))).toEqual([[6, 4], [1], [25], [1]])
  })

  it('puts writes from separate callbacks of one loop turn into one group', async () => {
    // Each unpipelined client's request arrives in its own I/O callback, with
    // microtasks run between them; two immediates of one check phase are
    // callbacks of one turn in the same way.
    const { committer, groups, flush } = manual<string>({ maxGroup: 100 })
    const done: Promise<number>[] = []
    await new Promise<void>((resolve) => {
      setImmediate(() => done.push(committer.submit('a')))
      setImmediate(() => {
        done.push(committer.submit('b'))
        resolve()
      })
    })
    await new Promise((r) => setImmediate(r))
    await flush()
    await Promise.all(done)
    expect(groups).toEqual([['a', 'b']])
  })

  it('starts a lone write without waiting for another', async () => {
    const { committer, groups, flush } = manual<string>({ maxGroup: 100 })
    const one = committer.submit('a')
    await new Promise((r) => setImmediate(r))
    expect(groups).toEqual([['a']])
    await flush()
    await expect(one).resolves.toBe(0)
  })

  it('refuses writes with BUSY beyond maxQueued', async () => {
    const { committer, flush } = manual<number>({ maxGroup: 10, maxQueued: 2 })
    const ok = [committer.submit(1), committer.submit(2)]
    await expect(committer.submit(3)).rejects.toMatchObject({ code: 'BUSY' })
    await new Promise((r) => setImmediate(r))
    await flush()
    await Promise.all(ok)
  })
})
