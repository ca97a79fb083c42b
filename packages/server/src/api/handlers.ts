import { byteLength, hostPortProblem, type Request, TandemError } from '@tandem/protocol'
import type { Config } from '../config.js'
import type { TandemNode } from '../node.js'

/** Bytes of keys and values one scan page may carry. */
export const SCAN_PAGE_BYTES = 1024 * 1024
export const SCAN_PAGE_SIZE = 1000

/**
 * Size limits, checked after the shape is validated so that an oversized
 * request gets TOOLARGE (with the limit named) rather than INVALID.
 */
export function checkLimits(req: Request, config: Config): void {
  const key = (k: string) => {
    if (Buffer.byteLength(k, 'utf8') > config.maxKeyBytes) {
      throw new TandemError(
        'TOOLARGE',
        `key is ${Buffer.byteLength(k, 'utf8')} bytes; the limit is ${config.maxKeyBytes}`,
      )
    }
  }
  const value = (v: string | Uint8Array) => {
    const size = byteLength(v)
    if (size > config.maxValueBytes) {
      throw new TandemError('TOOLARGE', `value is ${size} bytes; the limit is ${config.maxValueBytes}`)
    }
  }
  switch (req.op) {
    case 'get':
    case 'del':
      key(req.key)
      break
    case 'put':
      key(req.key)
      value(req.value)
      break
    case 'mget':
      if (req.keys.length > config.maxBatchOps) {
        throw new TandemError('TOOLARGE', `mget of ${req.keys.length} keys; the limit is ${config.maxBatchOps}`)
      }
      for (const k of req.keys) key(k)
      break
    case 'batch':
      if (req.ops.length > config.maxBatchOps) {
        throw new TandemError('TOOLARGE', `batch of ${req.ops.length} ops; the limit is ${config.maxBatchOps}`)
      }
      for (const op of req.ops) {
        key(op.key)
        if (op.type === 'put') value(op.value)
      }
      break
    case 'scan':
      for (const k of [req.prefix, req.gt, req.gte, req.lt, req.lte]) if (k !== undefined) key(k)
      break
    default:
      break
  }
}

/** Runs one validated request. Returns the result to send back (null for "nothing"). */
export function handle(node: TandemNode, req: Request): unknown {
  switch (req.op) {
    case 'ping':
      return 'pong'
    case 'auth':
      return true
    case 'get':
      return node.get(req.key, req.consistency).then(nullIfUndefined)
    case 'mget':
      return node.mget(req.keys, req.consistency).then((values) => values.map(nullIfUndefined))
    case 'put':
      return node.put(req.key, req.value, req)
    case 'del':
      return node.del(req.key, req)
    case 'batch':
      return node.batch(req.ops, req)
    case 'scan': {
      const { id: _id, op: _op, consistency, ...options } = req
      return node.scanPage(options, SCAN_PAGE_SIZE, SCAN_PAGE_BYTES, consistency)
    }
    case 'status':
      return node.status()
    case 'wait':
      return node.wait(req.replicas, req.timeoutMs)
    case 'promote':
      return node.replicaof(null).then(() => node.status())
    case 'replicaof': {
      const problem = req.upstream === null ? null : hostPortProblem(req.upstream)
      if (problem !== null) throw new TandemError('INVALID', `replicaof takes HOST:PORT or null: ${problem}`)
      return node.replicaof(req.upstream).then(() => node.status())
    }
  }
}

function nullIfUndefined<T>(value: T | undefined): T | null {
  return value === undefined ? null : value
}
