import { describe, expect, it } from 'vitest'
import { fastRequest } from './fast-request.js'
import { requestSchema } from './messages.js'

const bytes = new Uint8Array([1, 2, 3])

const ACCEPTED: object[] = [
  { id: 0, op: 'get', key: '' },
  { id: 1, op: 'get', key: 'k' },
  { id: Number.MAX_SAFE_INTEGER, op: 'get', key: 'ключ' },
  { id: 1, op: 'get', key: 'k', consistency: 'linearizable' },
  { id: 1, op: 'get', key: 'k', consistency: 'lease' },
  { id: 1, op: 'get', key: 'k', consistency: 'local' },
  { id: 2, op: 'put', key: 'k', value: 'v' },
  { id: 3, op: 'put', key: 'k', value: bytes },
  { id: 4, op: 'put', key: 'k', value: Buffer.from('b') },
  { id: 5, op: 'put', key: 'k', value: '', w: 0 },
  { id: 6, op: 'put', key: 'k', value: 'v', w: 1000, timeoutMs: 1 },
  { id: 7, op: 'put', key: 'k', value: 'v', w: 'majority', timeoutMs: 3_600_000 },
  { id: 8, op: 'put', key: 'k', timeoutMs: 5, value: 'v' },
  { id: 9, op: 'del', key: 'k' },
  { id: 10, op: 'del', key: 'k', w: 2 },
  { id: 11, op: 'del', key: 'k', timeoutMs: 100, w: 'majority' },
  { id: 12, op: 'put', key: 'k', value: 'v', epoch: 0 },
  { id: 13, op: 'put', key: 'k', value: 'v', epoch: 7, w: 1 },
  { id: 14, op: 'del', key: 'k', epoch: 3 },
  { id: 15, op: 'put', key: 'k', value: 'v', context: 'ctx' },
  { id: 16, op: 'del', key: 'k', context: 'x'.repeat(64 * 1024) },
  { id: 17, op: 'put', key: 'k', value: 'v', after: 0 },
  { id: 18, op: 'put', key: 'k', value: bytes, after: Number.MAX_SAFE_INTEGER, w: 1 },
  { id: 19, op: 'del', key: 'k', after: 123_456_789_012 },
  { id: 20, op: 'put', key: 'k', value: 'v', context: 'ctx', after: 5 },
]

const REFUSED: unknown[] = [
  null,
  undefined,
  'get',
  [{ id: 1, op: 'get', key: 'k' }],
  { id: -1, op: 'get', key: 'k' },
  { id: 1.5, op: 'get', key: 'k' },
  { id: Number.MAX_SAFE_INTEGER + 2, op: 'get', key: 'k' },
  { id: '1', op: 'get', key: 'k' },
  { op: 'get', key: 'k' },
  { id: 1, op: 'get' },
  { id: 1, op: 'get', key: 5 },
  { id: 1, op: 'get', key: 'k', extra: 1 },
  { id: 1, op: 'get', key: 'k', w: 1 },
  { id: 1, op: 'get', key: 'k', consistency: 'strong' },
  { id: 1, op: 'get', key: 'k', consistency: null },
  { id: 1, op: 'get', key: 'k', consistency: 'local', extra: 1 },
  { id: 1, op: 'put', key: 'k', value: 'v', consistency: 'local' },
  { id: 1, op: 'GET', key: 'k' },
  { id: 1, op: 'put', key: 'k' },
  { id: 1, op: 'put', key: 'k', value: 5 },
  { id: 1, op: 'put', key: 'k', value: null },
  { id: 1, op: 'put', key: 'k', value: [1, 2] },
  { id: 1, op: 'put', key: 'k', value: 'v', w: -1 },
  { id: 1, op: 'put', key: 'k', value: 'v', w: 1001 },
  { id: 1, op: 'put', key: 'k', value: 'v', w: 1.5 },
  { id: 1, op: 'put', key: 'k', value: 'v', w: 'all' },
  { id: 1, op: 'put', key: 'k', value: 'v', w: undefined },
  { id: 1, op: 'put', key: 'k', value: 'v', timeoutMs: 0 },
  { id: 1, op: 'put', key: 'k', value: 'v', timeoutMs: 3_600_001 },
  { id: 1, op: 'put', key: 'k', value: 'v', timeoutMs: '5' },
  { id: 1, op: 'put', key: 'k', value: 'v', extra: true },
  { id: 1, op: 'del', key: 'k', value: 'v' },
  { id: 1, op: 'del', key: 'k', w: null },
  { id: 1, op: 'put', key: 'k', value: 'v', epoch: -1 },
  { id: 1, op: 'put', key: 'k', value: 'v', epoch: 1.5 },
  { id: 1, op: 'get', key: 'k', epoch: 1 },
  { id: 1, op: 'put', key: 'k', value: 'v', context: 5 },
  { id: 1, op: 'del', key: 'k', context: 'x'.repeat(64 * 1024 + 1) },
  { id: 1, op: 'get', key: 'k', context: 'ctx' },
  { id: 1, op: 'get', key: 'k', after: 1 },
  { id: 1, op: 'put', key: 'k', value: 'v', after: -1 },
  { id: 1, op: 'put', key: 'k', value: 'v', after: 1.5 },
  { id: 1, op: 'put', key: 'k', value: 'v', after: '5' },
  { id: 1, op: 'del', key: 'k', after: null },
  { id: 1, op: 'del', key: 'k', after: Number.MAX_SAFE_INTEGER + 2 },
  { id: 1, op: 'mget', keys: ['k'] },
  { id: 1, op: 'ping' },
  Object.assign(Object.create({ inherited: 1 }), { id: 1, op: 'get', key: 'k' }),
]

describe('fastRequest', () => {
  it('accepts well-formed get, put and del as the same request the schema gives', () => {
    for (const m of ACCEPTED) {
      const fast = fastRequest(m)
      expect(fast, JSON.stringify(m)).toBe(m)
      const parsed = requestSchema.safeParse(m)
      expect(parsed.success, JSON.stringify(m)).toBe(true)
      expect(parsed.data).toEqual(fast)
    }
  })

  it('leaves everything else to the schema, and accepts nothing the schema refuses', () => {
    for (const m of REFUSED) {
      expect(fastRequest(m), JSON.stringify(m)).toBeNull()
    }
    // Of those, the schema takes only the ops the fast path does not cover.
    const schemaTakes = REFUSED.filter((m) => requestSchema.safeParse(m).success)
    expect(schemaTakes).toEqual([
      { id: 1, op: 'put', key: 'k', value: 'v', w: undefined },
      { id: 1, op: 'mget', keys: ['k'] },
      { id: 1, op: 'ping' },
    ])
  })
})
