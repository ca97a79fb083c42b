import type { Request } from './messages.js'

/**
 * The common requests (get, put, del) checked against requestSchema's
 * rules by hand: no allocation, no zod. Returns the message itself, typed,
 * when it is one of them and well formed; null otherwise, and the caller
 * then runs requestSchema, whose error names what is wrong. So it may
 * refuse what the schema accepts (the schema decides), never the reverse:
 * everything it accepts, the schema accepts as the same request (the tests
 * check both on the same inputs). A field it does not know (one the schema
 * gained later) makes it answer null, so the schema stays the judge.
 */
export function fastRequest(message: unknown): Request | null {
  if (typeof message !== 'object' || message === null || Object.getPrototypeOf(message) !== Object.prototype) {
    return null
  }
  const m = message as Record<string, unknown>
  const op = m.op
  if (op !== 'get' && op !== 'put' && op !== 'del') return null
  if (!isId(m.id) || typeof m.key !== 'string') return null
  if (op === 'put' && typeof m.value !== 'string' && !(m.value instanceof Uint8Array)) return null
  for (const field in m) {
    if (!Object.hasOwn(m, field) || !fieldOk(op, field, m[field])) return null
  }
  return m as Request
}

function isId(x: unknown): boolean {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0
}

/** Whether `field` may be in a request of `op` with this value (id, op, key and value are checked before). */
function fieldOk(op: 'get' | 'put' | 'del', field: string, v: unknown): boolean {
  switch (field) {
    case 'id':
    case 'op':
    case 'key':
      return true
    case 'value':
      return op === 'put'
    case 'consistency':
      return op === 'get' && (v === 'linearizable' || v === 'lease' || v === 'local')
    case 'w':
      return op !== 'get' && (v === 'majority' || (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 1000))
    case 'timeoutMs':
      return op !== 'get' && typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= 3_600_000
    case 'epoch':
      return op !== 'get' && isId(v)
    case 'context':
      return op !== 'get' && typeof v === 'string' && v.length <= 64 * 1024
    case 'after':
      // Multi-master session order: the SDK sends it with every write after its first.
      return op !== 'get' && isId(v)
    default:
      return false
  }
}
