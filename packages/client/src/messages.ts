import { type Consistency, consistencySchema, hasLoneSurrogate, TandemError, type Value } from '@tandem/protocol'
import type { PutConditions, WriteOptions } from './options.js'

// A call's arguments checked and turned into its request message. A wrong
// type is a TypeError (a programmer's mistake); a string UTF-8 cannot carry
// is INVALID, and nothing is sent.

export function checkConsistency(value: unknown): asserts value is Consistency {
  if (!consistencySchema.safeParse(value).success) {
    throw new TypeError(`consistency must be 'linearizable', 'lease' or 'local', got ${JSON.stringify(value)}`)
  }
}

/** A w>0 write's own deadline is enforced by the server, which then says TIMEOUT with the seq; wait a little longer for that answer. */
/**
 * A timeout in ms given to the client or a call: a finite number above 0.
 * NaN, Infinity, 0, a negative or a string would otherwise arm no deadline
 * or one that fires whenever another call's does.
 */
export function checkTimeout(name: string, ms: unknown): void {
  if (typeof ms !== 'number' || !(ms > 0 && ms < Number.POSITIVE_INFINITY)) {
    throw new TypeError(`${name} must be a finite number of ms above 0, got ${String(ms)}`)
  }
}

export function writeTimeout(options: WriteOptions, fallback: number): number {
  return options.w !== undefined && options.timeoutMs !== undefined
    ? options.timeoutMs + 1000
    : (options.timeoutMs ?? fallback)
}

/** The message with the write concern fields of `options` added. */
export function withWriteFields(message: Record<string, unknown>, options: WriteOptions): Record<string, unknown> {
  if (options.context !== undefined) {
    if (typeof options.context !== 'string') throw new TypeError('context must be the string a read returned')
    message.context = options.context
  }
  if (options.w !== undefined) message.w = options.w
  if (options.w !== undefined && options.timeoutMs !== undefined) message.timeoutMs = options.timeoutMs
  return message
}

export function withConditions(
  message: Record<string, unknown>,
  options: PutConditions,
  put: boolean,
): Record<string, unknown> {
  if (options.ifSeq !== undefined) {
    if (!Number.isSafeInteger(options.ifSeq) || options.ifSeq < 0) {
      throw new TypeError(`ifSeq must be a seq (an integer >= 0), got ${String(options.ifSeq)}`)
    }
    message.ifSeq = options.ifSeq
  }
  if (options.ifPresent === true) message.ifPresent = true
  if (put && options.ifAbsent === true) message.ifAbsent = true
  if (put && options.ttlMs !== undefined) {
    if (!Number.isSafeInteger(options.ttlMs) || options.ttlMs <= 0) {
      throw new TypeError(`ttlMs must be a positive integer of ms, got ${String(options.ttlMs)}`)
    }
    message.ttlMs = options.ttlMs
  }
  return message
}

export function checkKey(key: unknown, what = 'key'): asserts key is string {
  if (typeof key !== 'string') throw new TypeError(`${what} must be a string, got ${typeof key}`)
  if (hasLoneSurrogate(key)) throw notUnicode(what)
}

export function checkValue(value: unknown): asserts value is Value {
  if (typeof value !== 'string' && !(value instanceof Uint8Array)) {
    throw new TypeError(`value must be a string or Uint8Array, got ${typeof value}`)
  }
  if (typeof value === 'string' && hasLoneSurrogate(value)) throw notUnicode('value')
}

/** A string with a lone surrogate has no UTF-8 form: sent, it would arrive as another string. */
function notUnicode(what: string): TandemError {
  return new TandemError('INVALID', `${what} holds a lone UTF-16 surrogate, which UTF-8 cannot carry; nothing was sent`)
}
