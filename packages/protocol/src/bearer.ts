/**
 * The shared token travels as `Authorization: Bearer TOKEN` on every
 * client WebSocket handshake and HTTP request that needs it (SDK, CLI,
 * watches, the console's reports, /status and /metrics). Links between
 * nodes never carry it: they prove it by a challenge-response.
 */

/** Handshake headers carrying `token`; none without one. */
export function bearerHeaders(token: string | undefined): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {}
}

/** The token in an Authorization header value, if it is a Bearer one. */
export function bearerTokenOf(header: string | undefined): string | undefined {
  if (!header?.startsWith('Bearer ')) return undefined
  return header.slice('Bearer '.length).trim()
}

/** Whether a token can travel in an HTTP header: Latin-1 only, no control characters. */
export function headerSafe(token: string): boolean {
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i)
    if (c < 0x20 || c === 0x7f || c > 0xff) return false
  }
  return true
}
