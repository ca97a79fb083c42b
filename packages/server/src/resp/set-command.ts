import { MAX_TTL_MS, type Request, TandemError, type Value, type ValueMeta } from '@tandem/protocol'
import { checkLimits, handle } from '../api/handlers.js'
import type { CommandContext, RespHost } from './commands.js'
import { OK, type Reply } from './encoder.js'
import { invalid, SYNTAX_ERROR } from './errors.js'

/**
 * SET key value [NX | XX] [GET] [EX s | PX ms | EXAT s | PXAT ms | KEEPTTL],
 * SETNX, and the expiry commands (EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT,
 * TTL, PTTL, PERSIST), onto tandem's compare-and-set and TTL: NX is
 * `ifAbsent`, XX `ifPresent`, and a condition that does not hold
 * (CONFLICT) is Redis's nil reply, not an error; an expiry is `ttlMs` from
 * now. A command that needs the key's current state (GET, KEEPTTL, the
 * expiry commands) reads its value, seq and expiry, then writes only while
 * the key is still at that seq (0: still missing), so what it answers is
 * what it replaced; a write in between makes it read again.
 *
 * Options are parsed as Redis parses them: an option may repeat, NX with
 * XX or two kinds of expiry is a syntax error.
 */

interface SetOptions {
  condition: 'nx' | 'xx' | null
  get: boolean
  keepTtl: boolean
  /** ms from now, from EX, PX, EXAT or PXAT. */
  ttlMs: number | null
}

const ID = 0

function run(host: RespHost, req: Request): Promise<unknown> {
  checkLimits(req, host.config)
  return Promise.resolve(handle(host.node, req, host.config))
}

function isConflict(err: unknown): boolean {
  return err instanceof TandemError && err.code === 'CONFLICT'
}

function readMeta(host: RespHost, key: string): Promise<ValueMeta | null> {
  return run(host, { id: ID, op: 'get', key, meta: true }) as Promise<ValueMeta | null>
}

/**
 * Runs `attempt` (read, then a conditional write) until no other write
 * comes between; one at a time per key on this node.
 */
function readThenWrite(host: RespHost, key: string, attempt: () => Promise<Reply>): Promise<Reply> {
  return host.keyLocks.run(key, async () => {
    // How many times it reads again when another write beats it to the key (respMaxAttempts).
    const attempts = host.config.tune.respMaxAttempts
    for (let i = 0; i < attempts; i++) {
      try {
        return await attempt()
      } catch (err) {
        if (!isConflict(err)) throw err
      }
    }
    throw new TandemError('BUSY', `${key} changed under each of ${attempts} attempts; try again`)
  })
}

const INT64_MAX = 2n ** 63n - 1n

/**
 * An expiry amount as Redis checks it (a 64-bit integer, positive for SET,
 * in range once in ms), as ms from now; tandem's longest TTL is MAX_TTL_MS.
 * A time already past is 1 ms: the key is written and expires at once.
 */
function ttlFrom(
  amount: string,
  unit: 'ex' | 'px' | 'exat' | 'pxat',
  command: string,
  positive: boolean,
  wallMs: number,
): number {
  if (!/^-?\d{1,20}$/.test(amount) || BigInt(amount) > INT64_MAX || BigInt(amount) < -INT64_MAX - 1n) {
    throw invalid('value is not an integer or out of range')
  }
  let ms = BigInt(amount)
  if (unit === 'ex' || unit === 'exat') ms *= 1000n
  const now = BigInt(wallMs)
  const absolute = unit === 'ex' || unit === 'px' ? ms + now : ms
  if ((positive && BigInt(amount) <= 0n) || absolute > INT64_MAX) {
    throw invalid(`invalid expire time in '${command}' command`)
  }
  const ttl = absolute - now
  if (ttl > BigInt(MAX_TTL_MS))
    throw invalid(`invalid expire time in '${command}' command: tandem's longest TTL is ten years`)
  return ttl < 1n ? 1 : Number(ttl)
}

function parseSetOptions(args: Buffer[], wallMs: number): SetOptions {
  const o: SetOptions = { condition: null, get: false, keepTtl: false, ttlMs: null }
  let expiry: string | null = null
  for (let i = 3; i < args.length; i++) {
    const option = args[i].toString('latin1').toLowerCase()
    if (option === 'nx' || option === 'xx') {
      if (o.condition !== null && o.condition !== option) throw invalid(SYNTAX_ERROR)
      o.condition = option
    } else if (option === 'get') {
      o.get = true
    } else if (option === 'keepttl' || option === 'ex' || option === 'px' || option === 'exat' || option === 'pxat') {
      if (expiry !== null && expiry !== option) throw invalid(SYNTAX_ERROR)
      expiry = option
      if (option === 'keepttl') {
        o.keepTtl = true
        continue
      }
      if (i + 1 >= args.length) throw invalid(SYNTAX_ERROR)
      o.ttlMs = ttlFrom(args[++i].toString('latin1'), option, 'set', true, wallMs)
    } else {
      throw invalid(SYNTAX_ERROR)
    }
  }
  return o
}

/** ttlMs to keep a key's current expiry, or undefined when it has none. */
function remaining(meta: ValueMeta | null, wallMs: number): number | undefined {
  if (!meta?.expiresAt) return undefined
  return Math.max(1, meta.expiresAt - wallMs)
}

export async function setCommand(ctx: CommandContext, args: Buffer[], key: string, value: Value): Promise<Reply> {
  const host = ctx.host
  const o = parseSetOptions(args, host.node.clock.wall())
  const ttl = o.ttlMs === null ? {} : { ttlMs: o.ttlMs }
  if (!o.get && !o.keepTtl) {
    const condition = o.condition === 'nx' ? { ifAbsent: true } : o.condition === 'xx' ? { ifPresent: true } : {}
    try {
      await run(host, { id: ID, op: 'put', key, value, ...condition, ...ttl })
      return OK
    } catch (err) {
      if (o.condition !== null && isConflict(err)) return null
      throw err
    }
  }
  return readThenWrite(host, key, async () => {
    const old = await readMeta(host, key)
    const answer = o.get ? (old === null ? null : old.value) : OK
    if (o.condition === 'nx' && old !== null) return o.get ? answer : null
    if (o.condition === 'xx' && old === null) return null
    const ttlMs = o.keepTtl ? remaining(old, host.node.clock.wall()) : (o.ttlMs ?? undefined)
    const ifSeq = old === null ? 0 : old.seq
    await run(host, { id: ID, op: 'put', key, value, ifSeq, ...(ttlMs === undefined ? {} : { ttlMs }) })
    return answer
  })
}

/** SETNX key value: 1 when it was set, 0 when the key existed. */
export async function setnxCommand(ctx: CommandContext, key: string, value: Value): Promise<Reply> {
  try {
    await run(ctx.host, { id: ID, op: 'put', key, value, ifAbsent: true })
    return 1
  } catch (err) {
    if (isConflict(err)) return 0
    throw err
  }
}

/**
 * EXPIRE key seconds [NX | XX | GT | LT] (and PEXPIRE, EXPIREAT,
 * PEXPIREAT): 1 when the expiry was set, 0 when the key is missing or the
 * option's condition does not hold. A time not in the future deletes the
 * key, as in Redis.
 */
export function expireCommand(
  ctx: CommandContext,
  args: Buffer[],
  key: string,
  unit: 'ex' | 'px' | 'exat' | 'pxat',
): Promise<Reply> {
  const name = args[0].toString('latin1').toLowerCase()
  const amount = args[2].toString('latin1')
  const flags = new Set<string>()
  for (const a of args.slice(3)) {
    const o = a.toString('latin1').toLowerCase()
    if (!['nx', 'xx', 'gt', 'lt'].includes(o)) throw invalid(`Unsupported option ${a.toString('latin1')}`)
    flags.add(o)
  }
  if (flags.has('nx') && flags.size > 1) {
    throw invalid('NX and XX, GT or LT options at the same time are not compatible')
  }
  if (flags.has('gt') && flags.has('lt')) throw invalid('GT and LT options at the same time are not compatible')
  // Redis deletes the key when the time is not in the future.
  let deletes = false
  let ttlMs = 0
  if (!/^-?\d{1,20}$/.test(amount)) throw invalid('value is not an integer or out of range')
  const ms = (unit === 'ex' || unit === 'exat' ? 1000n : 1n) * BigInt(amount)
  const relative = unit === 'ex' || unit === 'px'
  const host = ctx.host
  const wallMs = host.node.clock.wall()
  if ((relative && ms <= 0n) || (!relative && ms <= BigInt(wallMs))) deletes = true
  else ttlMs = ttlFrom(amount, unit, name, false, wallMs)
  return readThenWrite(host, key, async () => {
    const old = await readMeta(host, key)
    if (old === null) return 0
    const current = old.expiresAt ? old.expiresAt - host.node.clock.wall() : Number.POSITIVE_INFINITY
    const wanted = deletes ? 0 : ttlMs
    if (flags.has('nx') && old.expiresAt) return 0
    if (flags.has('xx') && !old.expiresAt) return 0
    if (flags.has('gt') && !(wanted > current)) return 0
    if (flags.has('lt') && !(wanted < current)) return 0
    if (deletes) await run(host, { id: ID, op: 'del', key, ifSeq: old.seq })
    else await run(host, { id: ID, op: 'put', key, value: old.value, ifSeq: old.seq, ttlMs })
    return 1
  })
}

/** TTL and PTTL: -2 for a missing key, -1 for one without expiry, else the time left. */
export async function ttlCommand(ctx: CommandContext, key: string, inMs: boolean): Promise<Reply> {
  const meta = await readMeta(ctx.host, key)
  if (meta === null) return -2
  if (!meta.expiresAt) return -1
  const left = Math.max(0, meta.expiresAt - ctx.host.node.clock.wall())
  return inMs ? left : Math.round(left / 1000)
}

/** PERSIST: 1 when the key's expiry was removed, 0 when it had none or is missing. */
export function persistCommand(ctx: CommandContext, key: string): Promise<Reply> {
  const host = ctx.host
  return readThenWrite(host, key, async () => {
    const old = await readMeta(host, key)
    if (old === null || !old.expiresAt) return 0
    await run(host, { id: ID, op: 'put', key, value: old.value, ifSeq: old.seq })
    return 1
  })
}
