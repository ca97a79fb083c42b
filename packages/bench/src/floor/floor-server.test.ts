import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { TandemClient } from '@tandem/client'
import { Redis } from 'ioredis'
import { Level } from 'level'
import { afterAll, describe, expect, it } from 'vitest'
import { splitHostPort } from '../drivers/redis.js'
import { type FloorTopology, startFloor } from '../topology/floor.js'

// The floor server (tandem-bench's floor and floor-bare targets) answers
// SET / GET over RESP and put / get over the SDK's WebSocket, and what it
// acknowledged is in LevelDB in tandem's layout: a data record a key, log
// blocks holding every put, the last seq. No timing is asserted.

const roots: string[] = []
afterAll(async () => {
  for (const r of roots) await rm(r, { recursive: true, force: true })
})

async function redisTo(t: FloorTopology): Promise<Redis> {
  const [host, port] = splitHostPort(t.respAddress!)
  const redis = new Redis({ host, port, lazyConnect: true, maxRetriesPerRequest: 1 })
  await redis.connect()
  return redis
}

describe('floor server', () => {
  it('answers SET / GET / MSET in order and keeps every acknowledged put in LevelDB', async () => {
    const root = await mkdtemp(join(tmpdir(), 'floor-test-'))
    roots.push(root)
    const floor = await startFloor({ storage: true, sync: 'periodic', root })
    let puts = 0
    try {
      const redis = await redisTo(floor)
      // 500 SETs in one pipeline over 200 keys: the last value of each wins.
      const p = redis.pipeline()
      for (let i = 0; i < 500; i++) p.set(`key:${i % 200}`, `v${i}`)
      const sets = await p.exec()
      puts += 500
      expect(sets?.every(([err, r]) => err === null && r === 'OK')).toBe(true)
      expect(await redis.get('key:7')).toBe('v407')
      expect(await redis.get('key:199')).toBe('v399')
      expect(await redis.get('missing')).toBeNull()
      // A GET after a SET in the same pipeline sees it, and replies keep their order.
      const mixed = await redis.pipeline().set('a', '1').get('a').set('a', '2').get('a').exec()
      puts += 2
      expect(mixed?.map(([, r]) => r)).toEqual(['OK', '1', 'OK', '2'])
      expect(await redis.mset('m1', 'x', 'm2', 'y')).toBe('OK')
      puts += 2
      expect(await redis.get('m2')).toBe('y')
      await expect(redis.call('NOSUCH')).rejects.toThrow(/unknown command/)
      // A 100 kB value spans several socket reads.
      const big = Buffer.alloc(100_000, 7)
      await redis.set('big', big)
      puts += 1
      expect(await redis.getBuffer('big')).toEqual(big)
      redis.disconnect()

      // The SDK over the WebSocket twin: bytes stay bytes, strings strings.
      const client = await TandemClient.connect({ servers: [floor.master] })
      const r = await client.put('w:bytes', new Uint8Array([1, 2, 3]))
      expect(r.seq).toBe(puts + 1)
      await client.put('w:text', 'hello')
      puts += 2
      expect(Buffer.from((await client.get('w:bytes')) as Uint8Array)).toEqual(Buffer.from([1, 2, 3]))
      expect(await client.get('w:text')).toBe('hello')
      expect(Buffer.from((await client.get('key:7')) as Uint8Array).toString()).toBe('v407')
      expect(await client.get('nothing')).toBeUndefined()
      await Promise.all(Array.from({ length: 64 }, (_, i) => client.put(`w:${i}`, `p${i}`)))
      puts += 64
      expect(await client.get('w:63')).toBe('p63')
      await client.close()
    } finally {
      await floor.close()
    }

    // What LevelDB holds once the server stopped.
    const db = new Level<Buffer, Buffer>(floor.dataDir!, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    await db.open()
    try {
      const data = new Map<string, Buffer>()
      for await (const [k, v] of db.iterator({ gte: Buffer.from('d'), lt: Buffer.from('e') }))
        data.set(k.subarray(1).toString(), v)
      // 200 + a, m1, m2, big, w:bytes, w:text, w:0..63
      expect(data.size).toBe(200 + 4 + 2 + 64)
      expect(data.get('key:7')?.subarray(1).toString()).toBe('v407')
      let logged = 0
      let blocks = 0
      for await (const v of db.values({ gte: Buffer.from('l'), lt: Buffer.from('m') })) {
        blocks++
        for (let at = 0; at < v.length; at += v.readUInt32LE(at)) logged++
      }
      expect(logged).toBe(puts)
      expect(blocks).toBeGreaterThan(0)
      expect(blocks).toBeLessThanOrEqual(puts)
      expect(String(await db.get(Buffer.from('m!lastSeq')))).toBe(String(puts))
    } finally {
      await db.close()
    }
  })

  it('without storage answers at once and keeps nothing', async () => {
    const floor = await startFloor({ storage: false })
    try {
      expect(floor.dataDir).toBeNull()
      const redis = await redisTo(floor)
      expect(await redis.set('k', 'v')).toBe('OK')
      expect(await redis.get('k')).toBeNull()
      redis.disconnect()
      const client = await TandemClient.connect({ servers: [floor.master] })
      await client.put('k', 'v')
      expect(await client.get('k')).toBeUndefined()
      await client.close()
    } finally {
      await floor.close()
    }
  })
})
