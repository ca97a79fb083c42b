import type { TandemNode } from '../node.js'

/**
 * The replication group as Redis tools see it: who the master is and where
 * each member serves the Redis protocol. INFO replication, ROLE and the
 * Sentinel commands all read it from here.
 *
 * RESP addresses travel with the handshakes tandem already has: a fail-over
 * member says its RESP address in its reply to every member's hello (so
 * each member knows every other's), a replica says it in its replication
 * hello, and an upstream in its continue/fullsync answer. A node without
 * --resp-port has none, and is listed without a RESP address.
 */
export interface GroupMember {
  nodeId: string | null
  /** HOST:PORT of its RESP port, when known. */
  respAddr: string | null
  role: 'master' | 'replica' | 'witness'
  /** This node's link to it is up (always true for this node itself). */
  connected: boolean
  /** Ms since it last answered this node, when known. */
  lastReplyMsAgo: number | null
  self: boolean
}

interface GroupView {
  /** The master as this node knows it, with its RESP address (null when unknown). */
  master: { nodeId: string | null; respAddr: string | null; heard: boolean } | null
  /** Members with data other than the master: fail-over members, and replicas of this node when it is the master. */
  replicas: GroupMember[]
  /** Every fail-over member but this node (they all answer Sentinel commands). */
  others: GroupMember[]
  /** Fail-over members, this node included. */
  size: number
  /** Votes needed to elect a master. */
  quorum: number
  epoch: number
}

export function groupView(node: TandemNode): GroupView {
  const failover = node.failover
  const self: GroupMember = {
    nodeId: node.nodeId,
    respAddr: node.respAddress,
    role: node.role === 'master' ? 'master' : node.role === 'witness' ? 'witness' : 'replica',
    connected: true,
    lastReplyMsAgo: 0,
    self: true,
  }
  const others: GroupMember[] = []
  let master: GroupView['master'] = null
  if (failover) {
    const status = failover.status()
    const masterId = status.master.nodeId
    for (const peer of failover.cluster.others()) {
      const member = status.members.find((m) => m.route === peer.route)
      others.push({
        nodeId: peer.nodeId,
        respAddr: peer.respAddr,
        role: peer.witness ? 'witness' : peer.nodeId !== null && peer.nodeId === masterId ? 'master' : 'replica',
        connected: peer.connected,
        lastReplyMsAgo: member?.lastReplyMsAgo ?? null,
        self: false,
      })
    }
    if (node.role === 'master') master = { nodeId: node.nodeId, respAddr: node.respAddress, heard: true }
    else if (masterId !== null) {
      const peer = others.find((m) => m.nodeId === masterId)
      master = { nodeId: masterId, respAddr: peer?.respAddr ?? null, heard: failover.knownMaster() !== null }
    }
  } else if (node.role === 'master') {
    master = { nodeId: node.nodeId, respAddr: node.respAddress, heard: true }
  } else if (node.downstream && node.upstream !== null && node.masterAddress() === node.upstream) {
    // A replica of the master itself knows the master's RESP address from the handshake.
    master = { nodeId: null, respAddr: node.downstream.upstreamRespAddr, heard: node.downstream.state === 'streaming' }
  }
  const replicas = [...others, self].filter((m) => m.role === 'replica')
  if (node.role === 'master') {
    for (const r of node.upstreamSide.replicas()) {
      if (replicas.some((m) => m.nodeId === r.nodeId)) continue
      replicas.push({
        nodeId: r.nodeId,
        respAddr: r.respAddr ?? null,
        role: 'replica',
        connected: r.link === 'streaming',
        lastReplyMsAgo: null,
        self: false,
      })
    }
  }
  const size = failover ? failover.cluster.size : 1
  return { master, replicas, others, size, quorum: Math.floor(size / 2) + 1, epoch: node.store.epoch }
}
