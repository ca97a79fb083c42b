import { Packr, plainUnpackr, TandemError } from '@tandem/protocol'
import type { VersionVectorObject } from '../storage/version-vector.js'

/**
 * The causal context clients carry between a read and a write (vclock):
 * opaque to them, a version vector to the server. Encoded as base64url of a
 * msgpack list of [origin, counter] pairs in origin order, so the same
 * context is always the same string.
 */
const options = { useRecords: false, moreTypes: false, int64AsType: 'number' } as const
const packr = new Packr(options)
const unpackr = plainUnpackr(options)

/** Most origins one context may name: a bound on what a client can make the server parse. */
const MAX_ORIGINS = 1024

export function encodeContext(vv: VersionVectorObject): string {
  const pairs = Object.keys(vv)
    .sort()
    .filter((origin) => vv[origin] > 0)
    .map((origin) => [origin, vv[origin]])
  if (pairs.length === 0) return ''
  return packr.pack(pairs).toString('base64url')
}

/** Decodes a context a client sent; INVALID when it is not one tandem made. */
export function decodeContext(context: string): VersionVectorObject {
  if (context === '') return {}
  let pairs: unknown
  try {
    pairs = unpackr.unpack(Buffer.from(context, 'base64url'))
  } catch {
    pairs = null
  }
  if (!Array.isArray(pairs) || pairs.length > MAX_ORIGINS) throw badContext()
  const vv: VersionVectorObject = {}
  for (const pair of pairs) {
    if (!Array.isArray(pair) || pair.length !== 2) throw badContext()
    const [origin, counter] = pair
    if (typeof origin !== 'string' || origin.length > 255 || !Number.isSafeInteger(counter) || counter < 0) {
      throw badContext()
    }
    vv[origin] = Math.max(vv[origin] ?? 0, counter)
  }
  return vv
}

function badContext(): TandemError {
  return new TandemError('INVALID', 'context is not one a read of this tandem returned (pass it back unchanged)')
}
