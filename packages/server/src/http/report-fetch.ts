import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { bearerHeaders } from '@tandem/protocol'
import type { PeerTls } from '../replication/dial.js'
import type { SelfReport } from './self-report.js'

/**
 * How the console's watcher asks another node for its report
 * (/ui/api/self), and whether it may show that node its token.
 *
 * The addresses it polls come from other nodes' reports, so anyone who can
 * get an address into one (a misconfigured --advertise, a node of another
 * group) could be asked. The token goes only:
 * - to the nodes this node knows to be of its group on its own authority:
 *   its fail-over members, its upstream, the master its members or
 *   upstream name, and the replicas streaming from it (they proved the
 *   token to connect), see `groupAddresses`;
 * - or, on a node with --tls-ca, to any node whose certificate that CA
 *   signed (the CA is what makes a node a peer there).
 * Other nodes are asked without it: they answer if they need no token,
 * and are shown as refusing otherwise.
 *
 * A node with TLS asks over https, checking certificates against --tls-ca
 * (or the system's CAs): the token never crosses the network in clear.
 */
export interface ReportFetchOptions {
  authToken?: string
  /** The node's TLS (--tls-cert/--tls-key/--tls-ca); undefined without. */
  tls?: PeerTls
  /** The addresses this node knows to be of its group, read at each poll. */
  groupAddresses(): Set<string>
}

/** A report that did not arrive within the poll's timeout. */
class PollTimeout extends Error {
  override name = 'TimeoutError'
}

/** Thrown when a node wanted the token and was not given it (it is not known to be of this group). */
export class TokenWithheld extends Error {}

/** Whether the node at `address` may be shown the token (see above). */
export function trustsWithToken(options: ReportFetchOptions, address: string): boolean {
  return options.tls?.ca !== undefined || options.groupAddresses().has(address)
}

/** `maxReportBytes`: reports are a node's status plus a few counters; anything larger is not one. */
export function reportFetcher(options: ReportFetchOptions, maxReportBytes: number) {
  return (address: string, timeoutMs: number): Promise<SelfReport> => {
    const trusted = trustsWithToken(options, address)
    const headers: Record<string, string> = {
      accept: 'application/json',
      ...bearerHeaders(trusted ? options.authToken : undefined),
    }
    return getJson(address, headers, options.tls, timeoutMs, maxReportBytes).then((body) => {
      if (body.status === 401 && options.authToken && !trusted) {
        throw new TokenWithheld('wants the token; not sent to a node outside this node’s group')
      }
      if (body.status !== 200) throw new Error(`HTTP ${body.status}`)
      return JSON.parse(body.text) as SelfReport
    })
  }
}

function getJson(
  address: string,
  headers: Record<string, string>,
  tls: PeerTls | undefined,
  timeoutMs: number,
  maxReportBytes: number,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const onResponse = (res: IncomingMessage) => {
      const chunks: Buffer[] = []
      let bytes = 0
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length
        if (bytes > maxReportBytes) {
          req.destroy(new Error(`report larger than ${maxReportBytes} bytes`))
          return
        }
        chunks.push(chunk)
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    }
    const url = `${tls ? 'https' : 'http'}://${address}/ui/api/self`
    // With TLS the peer's certificate is checked, host name or IP included,
    // against --tls-ca or the system's CAs (rejectUnauthorized is the default).
    const req = tls
      ? httpsRequest(url, { headers, ca: tls.ca, cert: tls.cert, key: tls.key }, onResponse)
      : httpRequest(url, { headers }, onResponse)
    // One deadline for the whole exchange, connect to last byte. A timer of
    // its own, not an AbortSignal.timeout: a signal per poll and the
    // listeners it hangs on the request and socket were a fair share of a
    // tick's work on both ends.
    const timer = setTimeout(() => req.destroy(new PollTimeout(`no answer in ${timeoutMs} ms`)), timeoutMs)
    timer.unref()
    req.on('close', () => clearTimeout(timer))
    req.on('error', reject)
    req.end()
  })
}

/** What groupAddresses reads of the node. */
interface GroupSource {
  address: string
  upstream: string | null
  config: { cluster: string[]; replicaof?: string; peers?: string[] }
  masterAddress(): string | null
  upstreamSide: { replicas(): { addr: string }[] }
  failover: { status(): { members: { route: string }[]; master: { addr: string | null } } } | null
}

/**
 * The nodes this node knows to be of its group on its own authority (not
 * from what other nodes report): itself, its fail-over members and its
 * multi-master --peers as configured, its upstream, the master its members
 * or its upstream name (they proved the token on their links), and its
 * replicas.
 */
export function groupAddresses(node: GroupSource): Set<string> {
  const out = new Set<string>([node.address, ...node.config.cluster, ...(node.config.peers ?? [])])
  const add = (addr: string | null | undefined) => {
    if (addr) out.add(addr)
  }
  add(node.config.replicaof)
  add(node.upstream)
  add(node.masterAddress())
  for (const r of node.upstreamSide.replicas()) add(r.addr)
  const failover = node.failover?.status()
  for (const m of failover?.members ?? []) add(m.route)
  add(failover?.master.addr)
  return out
}
