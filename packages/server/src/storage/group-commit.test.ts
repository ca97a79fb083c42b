import { describe, expect, it } from 'vitest'
import { GroupCommitter, type GroupJoin, RETRY } from './group-commit.js'

/**
 * A pipelined build's join loop, as Store's: mine takes what arrives while
 * the group before it (prev, whether its write succeeded) is written. False
 * when that write failed (the build then asks for a retry).
 */
async function joinWhileWriting(
  prev: Promise<boolean> | null,
  join: GroupJoin<string>,
  mine: string[],
): Promise<boolean> {
  while (prev !== null) {
    const arrived = await Promise.race([prev.then(() => false), join.arrival().then(() => true)])
    if (!arrived) break
    const more = join.take()
    if (more === null) break
    mine.push(...more)
  }
  return prev === null || (await prev)
}

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

  // Pipelining: a commit that says its batch is handed to the disk gets the
  // next group while it is written, and that group takes every write that
  // comes until the write before it is done; never a third meanwhile.
  it('builds the next group during a write, joining every write that comes until that write is done', async () => {
    const turn = () => new Promise((r) => setImmediate(r))
    const groups: string[][] = []
    /** Per group, in order: ends its write (or fails it). */
    const writes: ((ok: boolean) => void)[] = []
    /** Whether the group written last is written, once it is settled. */
    let before: Promise<boolean> | null = null
    const committer = new GroupCommitter<string, string>(
      async (group, built, join) => {
        const mine = group.slice()
        groups.push(mine)
        if (!(await joinWhileWriting(before, join, mine))) return RETRY
        const written = new Promise<boolean>((resolve) => writes.push(resolve))
        before = written
        built()
        const ok = await written
        if (before === written) before = null
        if (!ok) throw new Error('disk')
        return mine
      },
      { maxGroup: 4, maxQueued: 1000, joins: (item) => !item.startsWith('!') },
    )
    const a = committer.submit('a')
    await turn()
    expect(groups).toEqual([['a']])
    // 'b' starts the next group while 'a' is written; 'c' and 'd', later, join it.
    const b = committer.submit('b')
    await turn()
    const c = committer.submit('c')
    await turn()
    const d = committer.submit('d')
    await turn()
    await turn()
    expect(groups).toEqual([['a'], ['b', 'c', 'd']])
    expect(committer.stats.overlapped).toBe(1)
    // '!e' may not join, nor be built on another: it waits for 'b c d' to be written, as does 'f' behind it.
    const e = committer.submit('!e')
    const f = committer.submit('f')
    await turn()
    writes[0](true)
    await expect(a).resolves.toBe('a')
    await turn()
    await turn()
    expect(groups).toEqual([['a'], ['b', 'c', 'd']])
    writes[1](true)
    await expect(Promise.all([b, c, d])).resolves.toEqual(['b', 'c', 'd'])
    await turn()
    expect(groups.slice(2)).toEqual([['!e', 'f']])
    // 'g' and 'h' are built on '!e f'; '!i' may not join them.
    const g = committer.submit('g')
    await turn()
    const h = committer.submit('h')
    await turn()
    const i = committer.submit('!i')
    await turn()
    await turn()
    expect(groups.slice(3)).toEqual([['g', 'h']])
    expect(committer.stats.overlapped).toBe(2)
    // '!e f' fails: 'g h', built on it, is queued again, ahead of '!i', which came later.
    writes[2](false)
    await expect(Promise.all([e, f])).rejects.toThrow('disk')
    await turn()
    await turn()
    expect(groups.slice(4)).toEqual([['g', 'h', '!i']])
    writes[3](true)
    await expect(Promise.all([g, h, i])).resolves.toEqual(['g', 'h', '!i'])
    await committer.idle()
    expect(committer.stats.groups).toBe(3)
  })

  // The group built during a write goes to the disk before that write's
  // writes are answered: their answers (each write's continuation, its
  // reply) would otherwise run first, while the disk idles.
  it('answers a written group once the group built on it is handed to the disk, or settles without it', async () => {
    const turn = () => new Promise((r) => setImmediate(r))
    const events: string[] = []
    const writes: ((ok: boolean) => void)[] = []
    let before: Promise<boolean> | null = null
    const committer = new GroupCommitter<string, string>(
      async (group, built, join) => {
        const mine = group.slice()
        if (!(await joinWhileWriting(before, join, mine))) return RETRY
        // The last steps of a build: a few turns of microtasks.
        for (let i = 0; i < 5; i++) await Promise.resolve()
        if (mine.includes('!fail')) throw new Error('refused')
        events.push(`${mine.join(' ')} handed over`)
        const written = new Promise<boolean>((resolve) => writes.push(resolve))
        before = written
        built()
        const ok = await written
        if (before === written) before = null
        if (!ok) throw new Error('disk')
        return mine
      },
      { maxGroup: 10, maxQueued: 1000, joins: () => true },
    )
    const answered = (p: Promise<string>) => p.then((v) => events.push(`${v} answered`))
    const a = answered(committer.submit('a'))
    await turn()
    const b = answered(committer.submit('b'))
    await turn()
    expect(events).toEqual(['a handed over'])
    writes[0](true)
    await a
    expect(events).toEqual(['a handed over', 'b handed over', 'a answered'])
    // No group built on 'b': it is answered once written.
    writes[1](true)
    await b
    expect(events.slice(3)).toEqual(['b answered'])
    // A group built on 'c' that fails before it is handed over: 'c' is answered all the same.
    const c = answered(committer.submit('c'))
    await turn()
    const failed = committer.submit('!fail')
    await turn()
    writes[2](true)
    await c
    await expect(failed).rejects.toThrow('refused')
    expect(events.slice(4)).toEqual(['c handed over', 'c answered'])
    await committer.idle()
  })
})
