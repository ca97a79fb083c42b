import type { PullerMessage, PusherMessage } from './peer.js'

/**
 * The two messages a busy peer link carries most, an entries frame and an
 * ack, checked against the peer schemas' rules by hand: no zod, no copy.
 * Each returns the message itself, typed, when it is that message and well
 * formed; null otherwise, and the caller then runs the schema, whose error
 * names what is wrong. Like fastRequest, it may refuse what the schema
 * accepts (the schema decides), never the reverse; a field it does not know
 * makes it answer null. The tests check both on the same inputs.
 */
export function fastPeerEntries(message: unknown): Extract<PusherMessage, { type: 'entries' }> | null {
  if (!isPlain(message)) return null
  const m = message as Record<string, unknown>
  if (m.type !== 'entries' || !isCount(m.head) || !isVv(m.vv)) return null
  const entries = m.entries
  if (!Array.isArray(entries)) return null
  for (let i = 0; i < entries.length; i++) if (!(entries[i] instanceof Uint8Array)) return null
  for (const field in m) {
    if (field !== 'type' && field !== 'entries' && field !== 'head' && field !== 'vv') return null
  }
  return m as Extract<PusherMessage, { type: 'entries' }>
}

export function fastPeerAck(message: unknown): Extract<PullerMessage, { type: 'ack' }> | null {
  if (!isPlain(message)) return null
  const m = message as Record<string, unknown>
  if (m.type !== 'ack' || !isVv(m.vv) || typeof m.digest !== 'string' || m.digest.length > 16) return null
  if (!isRows(m.rows)) return null
  for (const field in m) {
    const v = m[field]
    switch (field) {
      case 'type':
      case 'vv':
      case 'digest':
      case 'rows':
        break
      case 'direct':
        if (v !== undefined && !isOrigins(v)) return null
        break
      case 'directRuns':
        if (v !== undefined && !isRuns(v)) return null
        break
      case 'frames':
        if (v !== undefined && !isCount(v)) return null
        break
      default:
        return null
    }
  }
  return m as Extract<PullerMessage, { type: 'ack' }>
}

function isPlain(x: unknown): boolean {
  return typeof x === 'object' && x !== null && Object.getPrototypeOf(x) === Object.prototype
}

function isCount(x: unknown): boolean {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0
}

/** An origin id as the schema takes it; `__proto__` is left to the schema. */
function isOrigin(x: unknown): x is string {
  return typeof x === 'string' && x.length >= 1 && x.length <= 64 && x !== '__proto__'
}

function isVv(x: unknown): boolean {
  if (!isPlain(x)) return false
  const vv = x as Record<string, unknown>
  for (const origin in vv) if (!isOrigin(origin) || !isCount(vv[origin])) return false
  return true
}

function isRows(x: unknown): boolean {
  if (!isPlain(x)) return false
  const rows = x as Record<string, unknown>
  for (const origin in rows) {
    const row = rows[origin]
    if (!isOrigin(origin) || !isPlain(row)) return false
    const r = row as Record<string, unknown>
    if (!isVv(r.vv) || typeof r.complete !== 'boolean') return false
    for (const field in r) if (field !== 'vv' && field !== 'complete') return false
  }
  return true
}

function isOrigins(x: unknown): boolean {
  if (!Array.isArray(x) || x.length > 1024) return false
  for (let i = 0; i < x.length; i++) if (!isOrigin(x[i])) return false
  return true
}

function isRuns(x: unknown): boolean {
  if (!isPlain(x)) return false
  const runs = x as Record<string, unknown>
  let n = 0
  for (const origin in runs) {
    const run = runs[origin]
    if (!isOrigin(origin) || typeof run !== 'string' || run.length < 1 || run.length > 64 || ++n > 1024) return false
  }
  return true
}
