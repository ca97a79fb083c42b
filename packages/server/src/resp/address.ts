/** Splits HOST:PORT (IPv6 hosts in brackets) into its parts; port 0 when there is none. */
export function splitHostPort(addr: string): { host: string; port: number } {
  const colon = addr.lastIndexOf(':')
  if (colon === -1) return { host: addr, port: 0 }
  let host = addr.slice(0, colon)
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1)
  return { host, port: Number(addr.slice(colon + 1)) || 0 }
}

/** HOST:PORT with an IPv6 host in brackets. */
export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}
