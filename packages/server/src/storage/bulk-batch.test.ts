import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { BulkBatch } from './bulk-batch.js'

let dir: string
let db: Level<Buffer, Buffer>

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tandem-bulk-batch-test-'))
  db = new Level<Buffer, Buffer>(join(dir, 'db'), { keyEncoding: 'buffer', valueEncoding: 'buffer' })
  await db.open()
})

afterEach(async () => {
  await db.close()
  rmSync(dir, { recursive: true, force: true })
})

async function all(): Promise<[string, string][]> {
  const out: [string, string][] = []
  for await (const [key, value] of db.iterator()) out.push([key.toString(), value.toString()])
  return out
}

describe('BulkBatch', () => {
  it('writes a batch of one record', async () => {
    const batch = db.batch()
    new BulkBatch(db, batch).put(Buffer.from('!data!a'), Buffer.from('1'))
    await batch.write()
    expect(await all()).toEqual([['!data!a', '1']])
  })

  it('writes every record of a batch, those past the first put through the private put included', async () => {
    const batch = db.batch()
    const bulk = new BulkBatch(db, batch)
    const expected: [string, string][] = []
    for (let i = 0; i < 1000; i++) {
      const key = `!data!k${String(i).padStart(4, '0')}`
      bulk.put(Buffer.from(key), Buffer.from(`v${i}`))
      expected.push([key, `v${i}`])
    }
    await batch.write()
    expect(await all()).toEqual(expected)
  })

  it('keeps the order of the puts: a key put twice holds the later value, as with put()', async () => {
    const batch = db.batch()
    const bulk = new BulkBatch(db, batch)
    bulk.put(Buffer.from('k'), Buffer.from('first'))
    bulk.put(Buffer.from('other'), Buffer.from('x'))
    bulk.put(Buffer.from('k'), Buffer.from('second'))
    await batch.write()
    expect(await all()).toEqual([
      ['k', 'second'],
      ['other', 'x'],
    ])
  })

  it('copies each key and value when it is put: bytes changed after the put are not written', async () => {
    const batch = db.batch()
    const bulk = new BulkBatch(db, batch)
    const shared = Buffer.from('!data!k0')
    const value = Buffer.from('v0')
    bulk.put(Buffer.from('!data!first'), Buffer.from('f'))
    bulk.put(shared, value)
    shared.write('!data!k1')
    value.write('v1')
    bulk.put(shared, value)
    await batch.write()
    expect(await all()).toEqual([
      ['!data!first', 'f'],
      ['!data!k0', 'v0'],
      ['!data!k1', 'v1'],
    ])
  })

  it('deletes in order with the puts, the first op of a batch a delete or a put, as put() and del() do', async () => {
    await db.put(Buffer.from('a'), Buffer.from('old'))
    await db.put(Buffer.from('c'), Buffer.from('old'))
    for (const first of ['del', 'put'] as const) {
      const batch = db.batch()
      const bulk = new BulkBatch(db, batch)
      if (first === 'del') bulk.del(Buffer.from('a'))
      else bulk.put(Buffer.from('a'), Buffer.from('new'))
      bulk.put(Buffer.from('b'), Buffer.from('1'))
      bulk.del(Buffer.from('b'))
      bulk.del(Buffer.from('c'))
      bulk.put(Buffer.from('c'), Buffer.from('again'))
      await batch.write()
      expect(await all()).toEqual(
        first === 'del'
          ? [['c', 'again']]
          : [
              ['a', 'new'],
              ['c', 'again'],
            ],
      )
    }
  })

  it("puts every record through put() while the db has a 'write' listener, so it hears of each", async () => {
    const heard: string[] = []
    const onWrite = (ops: { key: Buffer }[]) => heard.push(...ops.map((op) => op.key.toString()))
    db.on('write', onWrite)
    const batch = db.batch()
    const bulk = new BulkBatch(db, batch)
    for (let i = 0; i < 3; i++) bulk.put(Buffer.from(`k${i}`), Buffer.from(`v${i}`))
    await batch.write()
    db.off('write', onWrite)
    expect(heard).toEqual(['k0', 'k1', 'k2'])
    expect((await all()).map(([key]) => key)).toEqual(['k0', 'k1', 'k2'])
  })

  it("deletes through del() too while the db has a 'write' listener", async () => {
    const heard: string[] = []
    const onWrite = (ops: { type: string; key: Buffer }[]) => heard.push(...ops.map((op) => `${op.type} ${op.key}`))
    db.on('write', onWrite)
    const batch = db.batch()
    const bulk = new BulkBatch(db, batch)
    bulk.put(Buffer.from('k0'), Buffer.from('v0'))
    bulk.del(Buffer.from('k1'))
    bulk.del(Buffer.from('k0'))
    await batch.write()
    db.off('write', onWrite)
    expect(heard).toEqual(['put k0', 'del k1', 'del k0'])
    expect(await all()).toEqual([])
  })
})
