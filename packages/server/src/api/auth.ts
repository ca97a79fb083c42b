import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { bearerTokenOf } from '@tandem/protocol'

/**
 * Constant-time token check. Both sides are hashed first so that the
 * comparison takes the same time whatever the lengths.
 */
export function tokenMatches(expected: string | undefined, given: string | undefined): boolean {
  if (expected === undefined) return true
  if (given === undefined) return false
  const a = createHash('sha256').update(expected).digest()
  const b = createHash('sha256').update(given).digest()
  return timingSafeEqual(a, b)
}

/** The token from an `Authorization: Bearer ...` header, if any. */
export function bearerToken(req: IncomingMessage): string | undefined {
  return bearerTokenOf(req.headers.authorization)
}
