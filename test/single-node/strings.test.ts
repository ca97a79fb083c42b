import { TandemError } from '@tandem/client'
import { describe, expect, it } from 'vitest'
import { useNodeAndClient } from '../helpers/node-and-client.js'
import { pack, RawClient } from './raw-client.js'

/**
 * Keys and values are kept exactly as sent, or refused: a string that
 * UTF-8 cannot carry (a lone UTF-16 surrogate in the SDK, bytes that are
 * not UTF-8 on the wire) is INVALID in every op, never stored as U+FFFD.
 * And an error quotes at most a short piece of the input that caused it.
 */

/** A raw request frame with the UTF-8 bytes of every `MARK` replaced by a CESU-8 lone surrogate and 'A'. */
function notUtf8(request: Record<string, unknown>): Buffer {
  const frame = Buffer.from(pack(request))
  for (let at = frame.indexOf('MARK'); at >= 0; at = frame.indexOf('MARK', at + 1)) {
    Buffer.from([0xed, 0xa0, 0x80, 0x41]).copy(frame, at)
  }
  return frame
}

async function invalid(call: Promise<unknown>): Promise<string> {
  const err = await call.then(
    () => null,
    (e: unknown) => e,
  )
  expect(err, 'the call went through').toBeInstanceOf(TandemError)
  expect((err as TandemError).code).toBe('INVALID')
  return (err as TandemError).message
}

describe('strings', () => {
  const one = useNodeAndClient()

  it('the SDK refuses lone surrogates in keys, values and scan bounds with INVALID, in every op', async () => {
    const lone = 'sur\uD800'
    expect(await invalid(one.db.put(lone, 'v'))).toMatch(/surrogate/)
    await invalid(one.db.put('k', lone))
    await invalid(one.db.get(lone))
    await invalid(one.db.del(lone))
    await invalid(one.db.mget(['ok', lone]))
    await invalid(one.db.batch([{ type: 'put', key: 'ok', value: lone }]))
    await invalid(one.db.batch([{ type: 'del', key: '\uDC00' }]))
    for (const bound of ['prefix', 'gt', 'gte', 'lt', 'lte']) {
      await invalid(
        (async () => {
          for await (const _ of one.db.scan({ [bound]: lone })) break
        })(),
      )
    }
    // U+FFFD itself is a character like any other, and a different key.
    await one.db.put('sur\uFFFD', 'replacement')
    expect(await one.db.get('sur\uFFFD')).toBe('replacement')
    await one.db.put('pair \uD83D\uDE00', 'astral')
    expect(await one.db.get('pair \uD83D\uDE00')).toBe('astral')
    expect(await one.db.get('ok')).toBeUndefined()
  })

  it('a node refuses strings whose bytes are not UTF-8 with INVALID, in every op, and stores none of them', async () => {
    const raw = await RawClient.open(one.node.address)
    const requests: Record<string, unknown>[] = [
      { op: 'get', key: 'MARK' },
      { op: 'put', key: 'MARK', value: 'v' },
      { op: 'put', key: 'bytes-value', value: 'MARK' },
      { op: 'del', key: 'MARK' },
      { op: 'mget', keys: ['a', 'MARK'] },
      {
        op: 'batch',
        ops: [
          { type: 'put', key: 'batch-a', value: 'v' },
          { type: 'put', key: 'MARK', value: 'v' },
        ],
      },
      { op: 'batch', ops: [{ type: 'put', key: 'batch-b', value: `${'x'.repeat(100)}MARK` }] },
      { op: 'scan', prefix: 'MARK' },
      { op: 'scan', gt: 'MARK' },
      { op: 'scan', gte: 'MARK' },
      { op: 'scan', lt: 'MARK' },
      { op: 'scan', lte: 'MARK' },
    ]
    for (const [i, request] of requests.entries()) {
      raw.sendRaw(notUtf8({ id: i, ...request }))
      const reply = await raw.reply(i)
      expect(reply.error?.code, JSON.stringify(request)).toBe('INVALID')
      expect(reply.error?.message).toMatch(/UTF-8/)
    }
    // A pipelined frame: only the bad request is refused.
    raw.sendRaw(
      notUtf8([
        { id: 100, op: 'put', key: 'good', value: 'v' },
        { id: 101, op: 'put', key: 'MARK', value: 'v' },
      ] as never),
    )
    expect((await raw.reply(100)).error).toBeUndefined()
    expect((await raw.reply(101)).error?.code).toBe('INVALID')
    // The same bytes as U+FFFD are a string like any other.
    expect((await raw.request({ id: 200, op: 'put', key: 'fffd-\uFFFD', value: '\uFFFD' })).error).toBeUndefined()
    const keys: string[] = []
    for await (const [key] of one.db.scan()) keys.push(key)
    expect(keys.filter((k) => k.includes('\uFFFD') && k !== 'sur\uFFFD' && k !== 'fffd-\uFFFD')).toEqual([])
    expect(keys).not.toContain('batch-a')
    expect(keys).not.toContain('bytes-value')
    expect(keys).toContain('good')
    raw.terminate()
  })

  it('an error quotes at most a short piece of the input that caused it', async () => {
    const raw = await RawClient.open(one.node.address)
    const huge = 'x'.repeat(4_700_000)
    for (const [id, request] of [
      [1, { op: huge }],
      [2, { op: 'get', key: 'k', [huge]: 1 }],
      [3, { op: 'replicaof', upstream: huge }],
      [4, { op: 'get', key: 'k', colour: huge }],
    ] as const) {
      const before = raw.frameSizes.length
      const reply = await raw.request({ id, ...request }, 30_000)
      expect(reply.error?.code).toBe('INVALID')
      expect(reply.error?.message.length, reply.error?.message.slice(0, 200)).toBeLessThan(600)
      expect(raw.frameSizes[before]).toBeLessThan(1024)
    }
    raw.terminate()
  })
})
