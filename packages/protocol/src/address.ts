import { isIPv4, isIPv6 } from 'node:net'
import { quote } from './quote.js'

/**
 * HOST:PORT, the one address format every tandem program takes (server
 * flags, `replicaof`, the SDK's `servers`, the CLI's `--server`). HOST is
 * a name (`localhost`, `db-1.example`), an IPv4 address, or an IPv6
 * address in brackets (`[::1]:7379`); PORT is 1..65535. An address that
 * passes here is one `new WebSocket('ws://' + address)` accepts, so no
 * caller can be thrown at later by a URL it was given.
 */
export interface HostPort {
  host: string
  port: number
}

const HOST_PORT = /^(?:\[([^\]\s]+)\]|([A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?)):(\d{1,5})$/

/** Why `text` is not a valid HOST:PORT, or null when it is. */
export function hostPortProblem(text: unknown): string | null {
  if (typeof text !== 'string') return `expected HOST:PORT, got ${typeof text}`
  const shown = quote(text)
  const m = HOST_PORT.exec(text)
  if (!m) return `${shown} is not HOST:PORT (a name, an IPv4 address or [IPv6])`
  const port = Number(m[3])
  if (port < 1 || port > 65535) return `port ${m[3]} of ${shown} is out of range (1..65535)`
  if (m[1] !== undefined && !isIPv6(m[1])) return `${shown} has no valid IPv6 address in its brackets`
  if (m[2] !== undefined && /^[\d.]+$/.test(m[2]) && !isIPv4(m[2])) return `${shown} is not a valid IPv4 address`
  try {
    new URL(`ws://${text}/`)
  } catch {
    return `${shown} is not a valid address`
  }
  return null
}

export function isHostPort(text: unknown): text is string {
  return hostPortProblem(text) === null
}

/** Splits a valid HOST:PORT (IPv6 without its brackets); throws TypeError on anything else. */
export function parseHostPort(text: string): HostPort {
  const problem = hostPortProblem(text)
  if (problem !== null) throw new TypeError(problem)
  const colon = text.lastIndexOf(':')
  const host = text.slice(0, colon)
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port: Number(text.slice(colon + 1)) }
}

/** HOST:PORT for a host and port, with an IPv6 host in brackets. */
export function formatHostPort(host: string, port: number): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`
}
