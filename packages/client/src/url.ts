import type { ConnectOptions } from './options.js'

/**
 * The connection URL form, for configuration that holds one string (an
 * environment variable, a secret):
 *
 *   tandem://HOST:PORT[,HOST:PORT...][?authToken=T&readFrom=replica&timeoutMs=N&connectTimeoutMs=N&direct=true]
 *   tandems://...   the same over TLS, checked against the system's CAs
 *
 * A token with characters that URLs reserve is percent-encoded. IPv6
 * addresses are written in brackets: `tandem://[::1]:7379`.
 */
export function parseConnectionUrl(url: string): ConnectOptions {
  const m = /^(tandems?):\/\/([^/?#]*)\/?(?:\?([^#]*))?$/.exec(url)
  if (!m)
    throw new TypeError(
      `a connection URL is tandem://HOST:PORT[,HOST:PORT...][?authToken=...], got ${JSON.stringify(redact(url))}`,
    )
  const options: ConnectOptions = { servers: m[2].split(',').filter(Boolean) }
  if (m[1] === 'tandems') options.tls = true
  for (const [name, value] of new URLSearchParams(m[3] ?? '')) {
    switch (name) {
      case 'authToken':
        options.authToken = value
        break
      case 'readFrom':
        if (value !== 'master' && value !== 'replica' && value !== 'any')
          throw new TypeError(`readFrom must be master, replica or any, got ${JSON.stringify(value)}`)
        options.readFrom = value
        break
      case 'timeoutMs':
      case 'connectTimeoutMs':
      case 'livenessTimeoutMs':
        if (!/^\d+$/.test(value)) throw new TypeError(`${name} must be a number of ms, got ${JSON.stringify(value)}`)
        options[name] = Number(value)
        break
      case 'direct':
        if (value !== 'true' && value !== 'false')
          throw new TypeError(`direct must be true or false, got ${JSON.stringify(value)}`)
        options.direct = value === 'true'
        break
      default:
        throw new TypeError(`unknown connection URL parameter ${JSON.stringify(name)}`)
    }
  }
  return options
}

/** The URL without its token, for error messages. */
function redact(url: string): string {
  return url.replace(/(authToken=)[^&#]*/, '$1***')
}
