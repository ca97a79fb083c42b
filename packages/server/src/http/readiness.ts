import { TandemError } from '@tandem/protocol'
import type { Config } from '../config.js'
import type { TandemNode } from '../node.js'

/**
 * GET /ready: whether this node can serve its role now, for load balancers
 * and orchestrators (a Kubernetes readiness probe). /health says the
 * process is alive; /ready says whether to send it traffic.
 *
 * - master: open and taking writes: in a fail-over group it holds its
 *   lease (a master that lost it answers NOMASTER);
 * - replica: streaming from its upstream (not connecting, in a handshake
 *   or in a full sync, whose data is incomplete until it ends) and no more
 *   than --max-lag ms behind;
 * - multi-master peer: taking writes (see Mesh.assertCanWrite);
 * - witness: open (it votes; it serves no data);
 * - any node: not while its disk is full (NOSPACE) or while it starts or
 *   shuts down.
 */
export interface Readiness {
  ready: boolean
  role: string
  /** Why not, when not ready. */
  reason?: string
  /** A replica's link state: connecting, handshake, fullsync, streaming, refused, stopped. */
  link?: string
  lagMs?: number
}

export function readiness(serverStatus: string, node: TandemNode, config: Config): Readiness {
  const role = node.role
  if (serverStatus !== 'open') return { ready: false, role, reason: `the node is ${serverStatus}` }
  const noSpace = node.store.noSpace
  if (noSpace) return { ready: false, role, reason: `NOSPACE: ${noSpace.message}` }
  const syncFailure = node.store.syncFailure
  if (syncFailure) return { ready: false, role, reason: `an fsync failed, writes refused: ${syncFailure.message}` }
  if (role === 'master') {
    const failover = node.failover
    if (failover && !failover.status().lease.held) {
      return { ready: false, role, reason: 'this master does not hold its fail-over lease' }
    }
    return { ready: true, role }
  }
  if (role === 'peer') {
    // A multi-master peer needs no election: it is ready when it takes writes, the same test its writes
    // meet (status readOnly): not while it waits after its start for a peer to answer, nor while its
    // clock, or peers holding more of its own writes than it does, fence it.
    try {
      node.mesh?.assertCanWrite()
    } catch (err) {
      const code = err instanceof TandemError ? err.code : 'INTERNAL'
      return { ready: false, role, reason: `${code}: ${(err as Error).message}` }
    }
    return { ready: true, role }
  }
  if (role === 'replica') {
    const link = node.downstream
    if (!link) return { ready: false, role, reason: 'this replica follows no upstream yet' }
    if (link.state !== 'streaming') {
      return { ready: false, role, link: link.state, reason: `the link to ${node.upstream} is ${link.state}` }
    }
    if (link.lagMs > config.maxLag) {
      return {
        ready: false,
        role,
        link: link.state,
        lagMs: link.lagMs,
        reason: `${link.lagMs} ms behind the upstream (--max-lag ${config.maxLag})`,
      }
    }
    return { ready: true, role, link: link.state, lagMs: link.lagMs }
  }
  return { ready: true, role }
}
