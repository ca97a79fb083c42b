import { connect as connectTcp, type Socket } from 'node:net'
import { connect as connectTls } from 'node:tls'

/**
 * What REPLICAOF learns by asking the address it was given. A Redis user
 * names the upstream's RESP port, a tandem user may name its tandem port;
 * the replication link needs the tandem one. So the address is asked
 * `INFO server` over RESP: a tandem RESP port answers with its
 * `tandem_address`, a tandem port answers HTTP (not RESP), Redis answers
 * without the field, a node with a token answers NOAUTH (the token is not
 * sent to an address this node does not know: peers prove they hold it,
 * they never send it).
 */
type AddressProbe =
  | { kind: 'tandem'; address: string }
  | { kind: 'not-resp' }
  | { kind: 'not-tandem'; server: string }
  | { kind: 'noauth' }
  | { kind: 'unreachable'; reason: string }

const INFO_SERVER = '*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n'

interface ProbeOptions {
  /** With TLS, the RESP port speaks TLS: checked against this CA (or the system's). */
  tls?: { ca?: Buffer }
  timeoutMs: number
  /** The most reply bytes read: INFO server is well under this. */
  maxReplyBytes: number
}

export function probeTandemAddress(host: string, port: number, options: ProbeOptions): Promise<AddressProbe> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    let length = 0
    let settled = false
    const socket: Socket = options.tls
      ? connectTls({ host, port, ca: options.tls.ca, rejectUnauthorized: true, servername: sniName(host) })
      : connectTcp({ host, port })
    const finish = (result: AddressProbe) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      resolve(result)
    }
    const verdict = (): AddressProbe => classify(Buffer.concat(chunks), true) ?? { kind: 'not-resp' }
    const onTimeout = () => finish(length === 0 ? { kind: 'unreachable', reason: 'no answer' } : verdict())
    const timer = setTimeout(onTimeout, options.timeoutMs)
    socket.once(options.tls ? 'secureConnect' : 'connect', () => socket.write(INFO_SERVER))
    socket.on('data', (data: Buffer) => {
      chunks.push(data)
      length += data.length
      const result = classify(Buffer.concat(chunks), length >= options.maxReplyBytes)
      if (result) finish(result)
    })
    socket.on('error', (err) => finish({ kind: 'unreachable', reason: err.message }))
    socket.on('close', () => finish(verdict()))
  })
}

/** The verdict on the bytes so far; null while a RESP reply is still arriving and `complete` is false. */
function classify(reply: Buffer, complete: boolean): AddressProbe | null {
  if (reply.length === 0) return complete ? { kind: 'not-resp' } : null
  const type = reply[0]
  const lineEnd = reply.indexOf('\r\n')
  if (type === 0x2d /* - */) {
    if (lineEnd === -1) return complete ? { kind: 'not-resp' } : null
    const line = reply.toString('latin1', 1, lineEnd)
    return line.startsWith('NOAUTH') ? { kind: 'noauth' } : { kind: 'not-tandem', server: line }
  }
  if (type !== 0x24 /* $ */ && type !== 0x3d /* = (RESP3 verbatim) */) return { kind: 'not-resp' }
  if (lineEnd === -1) return complete ? { kind: 'not-resp' } : null
  const declared = Number(reply.toString('latin1', 1, lineEnd))
  if (!Number.isSafeInteger(declared) || declared < 0) return { kind: 'not-resp' }
  if (!complete && reply.length < lineEnd + 2 + declared) return null
  const body = reply.toString('utf8', lineEnd + 2, Math.min(reply.length, lineEnd + 2 + declared))
  const field = (name: string) => new RegExp(`^${name}:(.*?)\\r?$`, 'm').exec(body)?.[1]
  const address = field('tandem_address')
  if (address) return { kind: 'tandem', address }
  const version = field('redis_version')
  return { kind: 'not-tandem', server: version ? `Redis ${version}` : 'a server that is not tandem' }
}

/** TLS server name: a host name, never an IP address (which the certificate's IP SAN covers). */
function sniName(host: string): string | undefined {
  return /^[\d.]+$/.test(host) || host.includes(':') ? undefined : host
}
