import type { Value } from '@tandem/protocol'

/**
 * How the CLI writes keys and values so that one entry stays one line and
 * a string can always be told from a binary value.
 *
 * Text form (scan, mget, watch): a string with `\\`, `\n`, `\r`, `\t` and
 * every other control character escaped (`\xHH`), and a leading `base64:`
 * written `\x62ase64:`; a binary value as `base64:` and its base64. So a
 * value printed as `base64:...` is binary and nothing else is.
 *
 * JSON form (--json): a string value is a JSON string, a binary one
 * `{"base64": "..."}`; `batch` reads values the same way.
 */
export function escapeText(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what gets escaped
  const escaped = text.replace(/[\\\x00-\x1f\x7f]/g, (c) => {
    switch (c) {
      case '\\':
        return '\\\\'
      case '\n':
        return '\\n'
      case '\r':
        return '\\r'
      case '\t':
        return '\\t'
      default:
        return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`
    }
  })
  return escaped.startsWith('base64:') ? `\\x62${escaped.slice(1)}` : escaped
}

/** A value in the text form: an escaped string, or `base64:` and the bytes' base64. */
export function showValue(value: Value): string {
  return typeof value === 'string' ? escapeText(value) : `base64:${Buffer.from(value).toString('base64')}`
}

/** A value in the JSON form. */
export function jsonValue(value: Value): string | { base64: string } {
  return typeof value === 'string' ? value : { base64: Buffer.from(value).toString('base64') }
}

/** Reads a value in the JSON form back; null when it is not one. */
export function valueFromJson(json: unknown): Value | null {
  if (typeof json === 'string') return json
  if (json !== null && typeof json === 'object' && !Array.isArray(json)) {
    const keys = Object.keys(json)
    const b64 = (json as { base64?: unknown }).base64
    if (keys.length === 1 && typeof b64 === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(b64) && b64.length % 4 === 0) {
      return new Uint8Array(Buffer.from(b64, 'base64'))
    }
  }
  return null
}
