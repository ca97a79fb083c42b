import { byteLength, hostPortProblem, type Request, TandemError } from '@tandem/protocol'
import type { Config } from '../config.js'
import type { TandemNode } from '../node.js'
import { NOT_NOW } from '../storage/store.js'

/** Bytes of keys and values (and their headers) one scan page may carry; under the frame limit too. */
const SCAN_PAGE_BYTES = 1024 * 1024
const SCAN_PAGE_SIZE = 1000
/** msgpack bytes a reply adds around its values (the map, id, result, headers). */
const REPLY_OVERHEAD = 64
/** msgpack bytes around one value or key in a reply (a str32/bin32 header, an array header). */
const ITEM_OVERHEAD = 8

/**
 * The most bytes a request's reply can take, reserved against the
 * connection's reply budget before the request runs: a read's bytes exist
 * as soon as it is done, so they are bounded before it starts. Values are
 * bounded by the largest one the store holds (its high-water mark), so
 * reads of small values reserve little. Replies that are small whatever the
 * data (writes, errors, pings, status) reserve nothing and are counted as
 * they are built. Works on the raw request: a malformed one reserves
 * nothing and fails validation.
 */
export function replyReserve(message: unknown, node: TandemNode, config: Config): number {
  if (typeof message !== 'object' || message === null) return 0
  const m = message as { op?: unknown; keys?: unknown }
  if (m.op !== 'get' && m.op !== 'mget' && m.op !== 'scan') return 0
  const value = (node.store.largestValue ?? config.maxValueBytes) + ITEM_OVERHEAD
  let bytes: number
  if (m.op === 'get') bytes = value
  else if (m.op === 'mget') bytes = Array.isArray(m.keys) ? m.keys.length * value : 0
  else bytes = SCAN_PAGE_BYTES + config.maxKeyBytes + value + SCAN_PAGE_SIZE * 2 * ITEM_OVERHEAD
  // No reply is ever larger than a frame (see ClientConnection.reply).
  return Math.min(bytes + REPLY_OVERHEAD, config.maxFrameBytes)
}

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
    case 'getAll':
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

/** Bytes of values one reply may carry and still fit in a frame. */
function replyValueBytes(config: Config): number {
  return config.maxFrameBytes - REPLY_OVERHEAD
}

/** Runs one validated request. Returns the result to send back (null for "nothing"). */
export function handle(node: TandemNode, req: Request, config: Config): unknown {
  switch (req.op) {
    case 'ping':
      return 'pong'
    case 'auth':
      return true
    case 'get': {
      if (req.meta) return node.getMeta(req.key, req.consistency).then(nullIfUndefined)
      // Answered in this turn, without a promise, when LevelDB can answer at once.
      const now = node.getNow(req.key, req.consistency)
      if (now !== NOT_NOW) return nullIfUndefined(now)
      return node.get(req.key, req.consistency).then(nullIfUndefined)
    }
    case 'getAll':
      return node.getAll(req.key, req.consistency)
    case 'mget':
      return node.mget(req.keys, replyValueBytes(config), req.consistency).then((values) => values.map(nullIfUndefined))
    case 'put':
      return node.put(req.key, req.value, req)
    case 'del':
      return node.del(req.key, req)
    case 'batch':
      return node.batch(req.ops, req)
    case 'scan': {
      const { id: _id, op: _op, consistency, ...options } = req
      return node.scanPage(options, SCAN_PAGE_SIZE, Math.min(SCAN_PAGE_BYTES, replyValueBytes(config)), consistency)
    }
    case 'status':
      return node.status()
    case 'wait':
      return node.wait(req.replicas, req.timeoutMs)
    case 'promote':
      return node.replicaof(null).then(() => node.status())
    case 'forget':
      return node.forget(req.origin, req.force === true)
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
