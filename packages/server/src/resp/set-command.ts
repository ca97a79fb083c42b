import { type Request, TandemError, type Value, type ValueMeta } from '@tandem/protocol'
import { checkLimits, handle } from '../api/handlers.js'
import type { CommandContext, RespHost } from './commands.js'
import { OK, type Reply } from './encoder.js'
import { invalid, SYNTAX_ERROR } from './errors.js'

/**
 * SET key value [NX | XX] [GET] [EX s | PX ms | EXAT s | PXAT ms | KEEPTTL]
 * and SETNX, onto tandem's compare-and-set: NX is `ifAbsent`, XX
 * `ifPresent`, and a condition that does not hold (CONFLICT) is Redis's
 * nil reply, not an error. GET reads the key's value and modification seq,
 * then writes only if the key is still at that seq (0: still missing), so
 * the value answered is the one the write replaced; a write in between
 * makes it read again.
 *
 * Options are parsed as Redis parses them: NX with XX, or two expiry
 * options, is a syntax error. Expiry needs tandem's TTL, which this version
 * lacks: those options answer ERR and the write is not done.
 */

interface SetOptions {
  condition: 'nx' | 'xx' | null
  get: boolean
  /** The expiry option given (EX, PX, EXAT, PXAT, KEEPTTL), if any. */
  expiry: string | null
}

/** How many times SET ... GET reads again when another write beats it to the key. */
const MAX_GET_ATTEMPTS = 16

const ID = 0

function run(host: RespHost, req: Request): Promise<unknown> {
  checkLimits(req, host.config)
  return Promise.resolve(handle(host.node, req, host.config))
}

function isConflict(err: unknown): boolean {
  return err instanceof TandemError && err.code === 'CONFLICT'
}

/** Redis's rules: an option may repeat, NX and XX exclude each other, and so do different expiry options. */
function parseSetOptions(args: Buffer[]): SetOptions {
  const o: SetOptions = { condition: null, get: false, expiry: null }
  for (let i = 3; i < args.length; i++) {
    const option = args[i].toString('latin1').toLowerCase()
    if (option === 'nx' || option === 'xx') {
      if (o.condition !== null && o.condition !== option) throw invalid(SYNTAX_ERROR)
      o.condition = option
    } else if (option === 'get') {
      o.get = true
    } else if (['ex', 'px', 'exat', 'pxat', 'keepttl'].includes(option)) {
      const name = option.toUpperCase()
      if (o.expiry !== null && o.expiry !== name) throw invalid(SYNTAX_ERROR)
      o.expiry = name
      if (option === 'keepttl') continue
      if (i + 1 >= args.length) throw invalid(SYNTAX_ERROR)
      checkExpireTime(args[++i].toString('latin1'), option)
    } else {
      throw invalid(SYNTAX_ERROR)
    }
  }
  return o
}

const INT64_MAX = 2n ** 63n - 1n

/** An expiry amount as Redis checks it: a 64-bit integer, positive, and in range once in ms from now. */
function checkExpireTime(amount: string, option: string): void {
  if (!/^-?\d{1,20}$/.test(amount) || BigInt(amount) > INT64_MAX || BigInt(amount) < -INT64_MAX - 1n) {
    throw invalid('value is not an integer or out of range')
  }
  let ms = BigInt(amount)
  if (option === 'ex' || option === 'exat') ms *= 1000n
  if (option === 'ex' || option === 'px') ms += BigInt(Date.now())
  if (BigInt(amount) <= 0n || ms > INT64_MAX) throw invalid("invalid expire time in 'set' command")
}

export async function setCommand(ctx: CommandContext, args: Buffer[], key: string, value: Value): Promise<Reply> {
  const o = parseSetOptions(args)
  if (o.expiry !== null) {
    throw invalid(
      `SET ${o.expiry} needs expiry (TTL), which this version of tandem does not have yet; the key was not written`,
    )
  }
  const host = ctx.host
  if (!o.get) {
    const condition = o.condition === 'nx' ? { ifAbsent: true } : o.condition === 'xx' ? { ifPresent: true } : {}
    try {
      await run(host, { id: ID, op: 'put', key, value, ...condition })
      return OK
    } catch (err) {
      if (o.condition !== null && isConflict(err)) return null
      throw err
    }
  }
  return host.keyLocks.run(key, () => setAndGet(host, key, value, o.condition))
}

/** SET ... GET: the old value, written over only while the key is still at the seq it was read at. */
async function setAndGet(
  host: RespHost,
  key: string,
  value: Value,
  condition: SetOptions['condition'],
): Promise<Reply> {
  for (let attempt = 0; attempt < MAX_GET_ATTEMPTS; attempt++) {
    const old = (await run(host, { id: ID, op: 'get', key, meta: true })) as ValueMeta | null
    if (condition === 'nx' && old !== null) return old.value
    if (condition === 'xx' && old === null) return null
    try {
      await run(host, { id: ID, op: 'put', key, value, ifSeq: old === null ? 0 : old.seq })
      return old === null ? null : old.value
    } catch (err) {
      if (!isConflict(err)) throw err
    }
  }
  throw new TandemError('BUSY', `SET ... GET: ${key} changed under each of ${MAX_GET_ATTEMPTS} attempts; try again`)
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
