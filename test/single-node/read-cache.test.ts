import { metricSum } from '@tandem/bench/fixtures'
import { TandemClient } from '@tandem/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRespNode } from '../resp/helpers.js'
import { command, RawResp } from '../resp/raw.js'

/**
 * The read cache against a real node: reads over the SDK and RESP answered
 * from it never answer older than a write acknowledged before they began,
 * nor older than a read before them (readCacheKeys; rules in
 * packages/server/src/storage/read-cache.ts).
 */
describe('read cache', () => {
  let node: Awaited<ReturnType<typeof startRespNode>>
  let db: TandemClient
  let resp: RawResp

  beforeAll(async () => {
    // Both rules under test: what reads read and what writes leave (readCacheWrites, off by default).
    node = await startRespNode(['--sync', 'periodic', '--tune', 'readCacheWrites=1'])
    db = await TandemClient.connect({ servers: [node.node.address], direct: true })
    resp = await RawResp.open(node.port)
  })
  afterAll(async () => {
    resp?.close()
    await db?.close()
    await node?.stop()
  })

  /** One RESP command and its whole reply. */
  async function respCall(...args: string[]): Promise<string> {
    resp.received.length = 0
    await resp.write(command(...args))
    const complete = (t: string) => {
      if (t.startsWith('$-1\r\n') || t.startsWith('+') || t.startsWith('-')) return t.endsWith('\r\n')
      const m = /^\$(\d+)\r\n/.exec(t)
      return m !== null && t.length >= m[0].length + Number(m[1]) + 2
    }
    const text = await resp.until(complete)
    resp.received.length = 0
    return text
  }
  const respGet = async (key: string) => {
    const text = await respCall('GET', key)
    return text === '$-1\r\n' ? undefined : text.slice(text.indexOf('\r\n') + 2, -2)
  }

  // Rule: a write drops its key from the cache before LevelDB takes it; a read after its ack sees it.
  it('answers every read after a write with that write, whichever side wrote and read', async () => {
    const hitsBefore = await metricSum(node.node, 'tandem_read_cache_hits_total')
    await db.put('k', 'v0')
    for (let i = 1; i <= 60; i++) {
      // Reads fill the cache and are answered from it...
      expect(await db.get('k')).toBe(`v${i - 1}`)
      expect(await db.get('k')).toBe(`v${i - 1}`)
      expect(await respGet('k')).toBe(`v${i - 1}`)
      // ...until a write of the key, over either protocol, a put or a delete.
      if (i % 3 === 0) expect(await respCall('SET', 'k', `v${i}`)).toBe('+OK\r\n')
      else if (i % 3 === 1) await db.put('k', `v${i}`)
      else {
        await db.del('k')
        expect(await db.get('k')).toBeUndefined()
        expect(await respGet('k')).toBeUndefined()
        await db.batch([{ type: 'put', key: 'k', value: `v${i}` }])
      }
      expect(await respGet('k')).toBe(`v${i}`)
      expect(await db.get('k')).toBe(`v${i}`)
    }
    expect(await metricSum(node.node, 'tandem_read_cache_hits_total')).toBeGreaterThan(hitsBefore)
    expect(await metricSum(node.node, 'tandem_read_cache_keys')).toBeGreaterThan(0)
  })

  // Rule: nothing read while a write is in flight is kept: reads during a run of writes never go back.
  it('never answers older than a write acknowledged before the read began, nor than an earlier read', async () => {
    const writes = 300
    let acked = -1
    let done = false
    const writer = (async () => {
      try {
        for (let i = 0; i < writes; i++) {
          await db.put('counter', String(i))
          acked = i
        }
      } finally {
        done = true
      }
    })()
    const reader = async (read: () => Promise<string | undefined>) => {
      const problems: string[] = []
      let seen = -1
      let reads = 0
      // Reads until one begun after the last write's ack (and at least 10).
      for (let last = false; !last; ) {
        last = done && reads >= 10
        const floor = acked
        const got = await read()
        reads++
        const n = got === undefined ? -1 : Number(got)
        if (n < floor) problems.push(`read ${n} after ${floor} was acknowledged`)
        if (n < seen) problems.push(`read ${n} after reading ${seen}`)
        seen = Math.max(seen, n)
      }
      return { problems, seen, reads }
    }
    const sdk = await TandemClient.connect({ servers: [node.node.address], direct: true })
    try {
      const [, a, b, c] = await Promise.all([
        writer,
        reader(async () => (await sdk.get('counter')) as string | undefined),
        reader(async () => (await db.get('counter')) as string | undefined),
        reader(() => respGet('counter')),
      ])
      for (const r of [a, b, c]) {
        expect(r.problems).toEqual([])
        expect(r.seen).toBe(writes - 1)
      }
    } finally {
      await sdk.close()
    }
  })

  // Rule: what a write leaves is kept once LevelDB has applied it (readCacheWrites 1, set above).
  it("answers a key's first read after its put from the cache, over either protocol", async () => {
    await db.put('fresh:sdk', 'a')
    expect(await respCall('SET', 'fresh:resp', 'b')).toBe('+OK\r\n')
    await db.put('fresh:bytes', new Uint8Array([1, 2, 3]))
    const hits = await metricSum(node.node, 'tandem_read_cache_hits_total')
    expect(await db.get('fresh:sdk')).toBe('a')
    expect(await respGet('fresh:resp')).toBe('b')
    expect(Buffer.from((await db.get('fresh:bytes')) as Uint8Array)).toEqual(Buffer.from([1, 2, 3]))
    expect(await respGet('fresh:sdk')).toBe('a')
    expect(await metricSum(node.node, 'tandem_read_cache_hits_total')).toBe(hits + 4)
  })
})
