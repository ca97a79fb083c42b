import { TandemError } from '@tandem/client'
import { describe, expect, it } from 'vitest'
import { useNodeAndClient } from './helpers/node-and-client.js'

describe('SDK against one node', () => {
  const one = useNodeAndClient()

  it('returns undefined for a missing key', async () => {
    expect(await one.db.get('missing')).toBeUndefined()
  })

  it('gives values back with the type they were stored as', async () => {
    await one.db.put('s', 'text ✓')
    await one.db.put('b', new Uint8Array([0, 1, 255]))
    expect(await one.db.get('s')).toBe('text ✓')
    const bin = await one.db.get('b')
    expect(bin).toBeInstanceOf(Uint8Array)
    expect([...(bin as Uint8Array)]).toEqual([0, 1, 255])
  })

  it('applies a batch atomically and deletes', async () => {
    await one.db.put('gone', 'x')
    await one.db.batch([
      { type: 'put', key: 'x1', value: '1' },
      { type: 'put', key: 'x2', value: '2' },
      { type: 'del', key: 'gone' },
    ])
    expect(await one.db.mget(['x1', 'x2', 'gone'])).toEqual(['1', '2', undefined])
    await one.db.del('x1')
    expect(await one.db.get('x1')).toBeUndefined()
  })

  it('rejects a batch with one bad op as a whole', async () => {
    const tooBig = 'k'.repeat(9000)
    await expect(
      one.db.batch([
        { type: 'put', key: 'atomic-1', value: '1' },
        { type: 'put', key: tooBig, value: '2' },
      ]),
    ).rejects.toMatchObject({ code: 'TOOLARGE' })
    expect(await one.db.get('atomic-1')).toBeUndefined()
  })

  it('scans in key order across pages, forward and reverse, with prefix and limit', async () => {
    const keys = Array.from({ length: 2500 }, (_, i) => `scan:${String(i).padStart(5, '0')}`)
    for (let i = 0; i < keys.length; i += 500) {
      await one.db.batch(keys.slice(i, i + 500).map((key) => ({ type: 'put' as const, key, value: key.slice(5) })))
    }
    await one.db.put('scan;after', 'not in prefix')
    const all: string[] = []
    for await (const [key, value] of one.db.scan({ prefix: 'scan:' })) {
      expect(value).toBe(key.slice(5))
      all.push(key)
    }
    expect(all).toEqual(keys)
    const reversed: string[] = []
    for await (const [key] of one.db.scan({ prefix: 'scan:', reverse: true, limit: 1200 })) reversed.push(key)
    expect(reversed).toEqual([...keys].reverse().slice(0, 1200))
  })

  it('reports the node in status', async () => {
    const status = await one.db.status()
    expect(status.role).toBe('master')
    expect(status.readOnly).toBe(false)
    expect(status.seq).toBeGreaterThan(0)
    expect(status.replicas).toEqual([])
  })

  it('fails a w=1 write with TIMEOUT when there is no replica, keeping the write', async () => {
    const err = await one.db.put('w1', 'v', { w: 1, timeoutMs: 200 }).catch((e) => e)
    expect(err).toBeInstanceOf(TandemError)
    expect(err.code).toBe('TIMEOUT')
    expect(await one.db.get('w1')).toBe('v')
  })
})
