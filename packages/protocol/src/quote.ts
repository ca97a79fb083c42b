/**
 * Input quoted back in an error message, cut short: an error must not
 * carry (or cost) as much as the request that caused it.
 */
export const QUOTE_MAX_CHARS = 64

/** `value` as JSON, at most about `max` characters of it, noting how much was left out. */
export function quote(value: unknown, max = QUOTE_MAX_CHARS): string {
  let text: string
  try {
    text =
      typeof value === 'string'
        ? JSON.stringify(value.length > max ? value.slice(0, max) : value)
        : String(JSON.stringify(value))
  } catch {
    text = typeof value
  }
  if (typeof value === 'string' && value.length > max) return `${text.slice(0, -1)}..." (${value.length} characters)`
  return text.length > max ? `${text.slice(0, max)}... (${text.length} characters)` : text
}

/** A message cut to `max` characters. */
export function truncate(message: string, max = 256): string {
  return message.length > max ? `${message.slice(0, max)}... (${message.length} characters)` : message
}
