/**
 * Every failure that crosses the wire carries one of these codes. They are
 * part of the public contract: clients branch on them, the CLI maps them to
 * exit statuses, and the README documents each one. Add codes; never rename.
 */
export const ERROR_CODES = [
  'NOTFOUND',
  'INVALID',
  'TOOLARGE',
  'READONLY',
  'NOMASTER',
  'NOREPLICAS',
  'UNAUTHORIZED',
  'TIMEOUT',
  'UNAVAILABLE',
  'UNCERTAIN',
  'FENCED',
  'BUSY',
  'CLOSED',
  'INTERNAL',
  'CORRUPT',
  'NOSPACE',
  'TRIMMED',
  'ROLLEDBACK',
  'SIBLINGS',
  'CLOCKSKEW',
  'CONFLICT',
] as const

export type ErrorCode = (typeof ERROR_CODES)[number]

const codeSet: ReadonlySet<string> = new Set(ERROR_CODES)

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && codeSet.has(value)
}

/** Extra facts an error may carry, e.g. where the master is for READONLY. */
export interface ErrorDetails {
  /** HOST:PORT of the current master, when the node knows it. */
  master?: string | null
  /** Epoch the answering node is in. */
  epoch?: number
  /**
   * Sequence number of a write that was committed but not replicated in
   * time; for ROLLEDBACK, the last seq the watcher and the node agree on;
   * for CONFLICT, the key's modification seq (0 when it does not exist).
   */
  seq?: number
  /** CONFLICT: the key whose condition did not hold. */
  key?: string
  /** TRIMMED: the oldest seq the node's log still holds. */
  oldestSeq?: number
  /** SIBLINGS: every concurrent value the key holds, in dot order. */
  values?: (string | Uint8Array)[]
  /** SIBLINGS: the causal context to write with so that the write replaces them all. */
  context?: string
}

export class TandemError extends Error {
  readonly code: ErrorCode
  readonly details: ErrorDetails

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: ErrorDetails } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'TandemError'
    this.code = code
    this.details = options.details ?? {}
  }

  /** The wire form of this error, as sent in a response frame. */
  toWire(): WireError {
    return { code: this.code, message: this.message, ...this.details }
  }

  static fromWire(wire: WireError): TandemError {
    const { code, message, ...details } = wire
    return new TandemError(isErrorCode(code) ? code : 'INTERNAL', String(message ?? code), { details })
  }
}

export interface WireError extends ErrorDetails {
  code: string
  message: string
}
