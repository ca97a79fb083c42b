/**
 * Structured logs: one JSON object a line on stderr (`--log-format json`,
 * the default), or a short human-readable line (`--log-format pretty`).
 */
type LogLevel = 'debug' | 'info' | 'warn' | 'error'
const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

type LogFields = Record<string, unknown>

export interface Logger {
  debug(msg: string, fields?: LogFields): void
  info(msg: string, fields?: LogFields): void
  warn(msg: string, fields?: LogFields): void
  error(msg: string, fields?: LogFields): void
  child(fields: LogFields): Logger
}

interface LoggerOptions {
  level: LogLevel
  format: 'json' | 'pretty'
  write?: (line: string) => void
}

export function createLogger(options: LoggerOptions, base: LogFields = {}): Logger {
  const min = LEVELS[options.level]
  const write = options.write ?? ((line: string) => process.stderr.write(line))
  const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (LEVELS[level] < min) return
    const record = { time: new Date().toISOString(), level, msg, ...base, ...fields }
    if (options.format === 'json') {
      write(`${toJson(record)}\n`)
    } else {
      const extra = Object.entries({ ...base, ...fields })
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : toJson(v)}`)
        .join(' ')
      write(`${record.time} ${level.toUpperCase().padEnd(5)} ${msg}${extra ? ` ${extra}` : ''}\n`)
    }
  }
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(options, { ...base, ...fields }),
  }
}

/**
 * JSON of a log record or field. A log line is often written from a catch
 * block, about a value nobody checked (whatever was thrown): one plain JSON
 * cannot hold is written with its cycles and BigInts as text, and one that
 * still fails (a throwing toJSON or getter) field by field, a field that
 * fails as text; a log call that threw would take down what was handling
 * the failure, and the line would be lost.
 */
function toJson(value: unknown): string {
  const whole = tryJson(value)
  if (whole !== undefined) return whole
  if (typeof value === 'object' && value !== null) {
    try {
      const fields: string[] = []
      for (const [k, v] of Object.entries(value)) {
        if (v !== undefined) fields.push(`${JSON.stringify(k)}:${tryJson(v) ?? JSON.stringify(asText(v))}`)
      }
      return `{${fields.join(',')}}`
    } catch {}
  }
  return JSON.stringify(asText(value))
}

/** JSON of `value`, with cycles and BigInts as text; undefined when even that fails. */
function tryJson(value: unknown): string | undefined {
  try {
    return JSON.stringify(value, jsonSafe)
  } catch {}
  try {
    const seen = new WeakSet<object>()
    return JSON.stringify(value, (key, v: unknown) => {
      const safe = jsonSafe(key, v)
      if (typeof safe === 'bigint') return safe.toString()
      if (typeof safe === 'object' && safe !== null) {
        if (seen.has(safe)) return '[seen above]'
        seen.add(safe)
      }
      return safe
    })
  } catch {
    return undefined
  }
}

/** A value as text, whatever it is (String() itself throws for some). */
function asText(value: unknown): string {
  try {
    return String(value)
  } catch {
    return Object.prototype.toString.call(value)
  }
}

function jsonSafe(_key: string, value: unknown): unknown {
  if (value instanceof Error)
    return { name: value.name, message: value.message, code: (value as { code?: unknown }).code }
  return value
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
}
