import { type ErrorCode, TandemError } from '@tandem/protocol'
import { type ErrorReply, errorReply } from './encoder.js'

/**
 * tandem's error codes as Redis error prefixes. Where Redis has a prefix
 * for the same condition it is used (clients branch on it: ioredis and
 * redis-py reconnect on READONLY), otherwise tandem's own code is the
 * prefix, so `-NOMASTER ...` reads like `-READONLY ...`.
 */
const PREFIX: Partial<Record<ErrorCode, string>> = {
  INVALID: 'ERR',
  INTERNAL: 'ERR',
  UNAUTHORIZED: 'NOAUTH',
}

function prefixFor(code: ErrorCode): string {
  return PREFIX[code] ?? code
}

/** An error whose Redis prefix is not its code's (WRONGPASS, NOPROTO): clients match these words. */
export class PrefixedError extends TandemError {
  constructor(
    code: ErrorCode,
    readonly prefix: string,
    message: string,
  ) {
    super(code, message)
  }
}

/** A reply for anything a command threw or rejected with, and the code to count it under. */
export function replyForError(err: unknown): { reply: ErrorReply; code: ErrorCode } {
  if (err instanceof PrefixedError) return { reply: errorReply(err.prefix, err.message), code: err.code }
  if (err instanceof TandemError) return { reply: errorReply(prefixFor(err.code), err.message), code: err.code }
  return { reply: errorReply('ERR', `internal error: ${(err as Error)?.message ?? String(err)}`), code: 'INTERNAL' }
}

/** A Redis-style `ERR` error that counts as INVALID. */
export function invalid(message: string): TandemError {
  return new TandemError('INVALID', message)
}

export const SYNTAX_ERROR = 'syntax error'

export function wrongArity(name: string): TandemError {
  return invalid(`wrong number of arguments for '${name}' command`)
}
