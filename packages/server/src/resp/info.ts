import { createHash } from 'node:crypto'
import { arch, release, type } from 'node:os'
import type { TandemNode } from '../node.js'
import { splitHostPort } from './address.js'
import type { Reply } from './encoder.js'

/**
 * INFO and ROLE in Redis's exact formats, filled from the node's status.
 *
 * The mapping: Redis's replication offset is tandem's seq (master_repl_offset,
 * a replica's offset = the seq it acknowledged); a replication id is a hash
 * of the epoch (a fail-over starts a new epoch, as it starts a new
 * replication id in Redis), master_replid2 the previous epoch's and
 * second_repl_offset the seq the current epoch began at; the backlog is the
 * log kept for partial resync.
 */

/** The Redis version tandem answers like (clients pick features by it). */
export const REDIS_VERSION = '7.0.0'

interface InfoContext {
  node: TandemNode
  version: string
  respPort: number
  connectedClients: number
  maxClients: number
  totalConnections: number
  totalCommands: number
  logRetention: number
  /** Keys held, for the Keyspace section (counted only when that section is asked for). */
  keys?: number
}

const DEFAULT_SECTIONS = ['server', 'clients', 'persistence', 'stats', 'replication']
const ALL_SECTIONS = [...DEFAULT_SECTIONS, 'keyspace']

/** The sections INFO's arguments ask for, in output order. */
export function infoSections(args: string[]): string[] {
  if (args.length === 0 || args.some((a) => a === 'default')) return DEFAULT_SECTIONS
  if (args.some((a) => a === 'all' || a === 'everything')) return ALL_SECTIONS
  return ALL_SECTIONS.filter((s) => args.includes(s))
}

function replid(by: string, epoch: number, startSeq: number): string {
  return createHash('sha1').update(`${by}/${epoch}/${startSeq}`).digest('hex')
}

const ZERO_ID = '0'.repeat(40)

function replicaState(link: string | undefined): string {
  if (link === 'streaming') return 'online'
  if (link === 'fullsync') return 'send_bulk'
  return 'wait_bgsave'
}

export function renderInfo(ctx: InfoContext, sections: string[]): string {
  const out: string[] = []
  for (const section of sections) {
    const lines = SECTIONS[section]?.(ctx)
    if (lines) out.push([`# ${section[0].toUpperCase()}${section.slice(1)}`, ...lines].join('\r\n'))
  }
  return out.length === 0 ? '' : `${out.join('\r\n\r\n')}\r\n`
}

const SECTIONS: Record<string, (ctx: InfoContext) => string[]> = {
  server: (ctx) => {
    const uptime = Math.floor((ctx.node.clock.wall() - ctx.node.startedAt) / 1000)
    return [
      `redis_version:${REDIS_VERSION}`,
      `redis_mode:${ctx.node.role === 'witness' ? 'sentinel' : 'standalone'}`,
      `tandem_version:${ctx.version}`,
      `tandem_node_id:${ctx.node.nodeId}`,
      `tandem_address:${ctx.node.address}`,
      `os:${type()} ${release()} ${arch()}`,
      'arch_bits:64',
      `process_id:${process.pid}`,
      `run_id:${createHash('sha1').update(ctx.node.nodeId).digest('hex')}`,
      `tcp_port:${ctx.respPort}`,
      `server_time_usec:${ctx.node.clock.wall() * 1000}`,
      `uptime_in_seconds:${uptime}`,
      `uptime_in_days:${Math.floor(uptime / 86400)}`,
    ]
  },
  clients: (ctx) => [
    `connected_clients:${ctx.connectedClients}`,
    `maxclients:${ctx.maxClients}`,
    'blocked_clients:0',
    'tracking_clients:0',
  ],
  persistence: (ctx) => [
    'loading:0',
    'async_loading:0',
    'rdb_changes_since_last_save:0',
    'rdb_bgsave_in_progress:0',
    'aof_enabled:1',
    'aof_rewrite_in_progress:0',
    'aof_last_write_status:ok',
    `tandem_sync:${ctx.node.config.sync}`,
  ],
  stats: (ctx) => [
    `total_connections_received:${ctx.totalConnections}`,
    `total_commands_processed:${ctx.totalCommands}`,
  ],
  replication: (ctx) => replicationLines(ctx),
  keyspace: (ctx) => (ctx.keys ? [`db0:keys=${ctx.keys},expires=0,avg_ttl=0`] : []),
}

function replicationLines(ctx: InfoContext): string[] {
  const node = ctx.node
  const status = node.status()
  if (node.role === 'witness') return ['role:sentinel']
  const writer = takesWrites(node)
  const lines = [`role:${writer ? 'master' : 'slave'}`]
  if (!writer) {
    const master = upstreamRespAddress(node)
    const link = node.downstream
    const up = link?.state === 'streaming'
    const lastHeard = link && link.lastHeardAt > 0 ? Math.floor((ctx.node.clock.now() - link.lastHeardAt) / 1000) : -1
    lines.push(
      `master_host:${master.host}`,
      `master_port:${master.port}`,
      `master_link_status:${up ? 'up' : 'down'}`,
      `master_last_io_seconds_ago:${lastHeard}`,
      `master_sync_in_progress:${link?.state === 'fullsync' ? 1 : 0}`,
      `slave_read_repl_offset:${status.seq}`,
      `slave_repl_offset:${status.seq}`,
    )
    if (!up) lines.push(`master_link_down_since_seconds:${lastHeard}`)
    lines.push('slave_priority:100', 'slave_read_only:1', 'replica_announced:1')
  }
  const replicas = node.upstreamSide.replicas()
  lines.push(`connected_slaves:${replicas.length}`)
  replicas.forEach((r, i) => {
    const { host, port } = splitHostPort(r.respAddr ?? r.addr)
    const lag = Math.floor(r.lagMs / 1000)
    lines.push(
      `slave${i}:ip=${host},port=${r.respAddr ? port : 0},state=${replicaState(r.link)},offset=${r.ackedSeq},lag=${lag}`,
    )
  })
  const history = node.store.history
  const current = history[history.length - 1]
  const previous = history[history.length - 2]
  const logStart = typeof status.logStart === 'number' ? status.logStart : 1
  lines.push(
    'master_failover_state:no-failover',
    `master_replid:${current ? replid(current.by, current.epoch, current.startSeq) : ZERO_ID}`,
    `master_replid2:${previous ? replid(previous.by, previous.epoch, previous.startSeq) : ZERO_ID}`,
    `master_repl_offset:${status.seq}`,
    `second_repl_offset:${previous && current ? current.startSeq : -1}`,
    'repl_backlog_active:1',
    `repl_backlog_size:${ctx.logRetention}`,
    `repl_backlog_first_byte_offset:${logStart}`,
    `repl_backlog_histlen:${Math.max(0, status.seq - logStart + 1)}`,
  )
  return lines
}

/**
 * Where a replica's upstream serves RESP: the master of its fail-over group
 * (members know each other's RESP addresses), else what the upstream said
 * in the handshake. An upstream without a RESP port is shown with port 0.
 */
function upstreamRespAddress(node: TandemNode): { host: string; port: number } {
  const failover = node.failover
  if (failover) {
    const masterId = failover.status().master.nodeId
    const peer = failover.cluster.others().find((p) => p.nodeId === masterId)
    if (peer?.respAddr) return splitHostPort(peer.respAddr)
  }
  if (node.downstream?.upstreamRespAddr) return splitHostPort(node.downstream.upstreamRespAddr)
  const upstream = node.upstream ?? node.masterAddress()
  if (upstream) return { host: splitHostPort(upstream).host, port: 0 }
  return { host: '?', port: 0 }
}

/** A master, or a multi-master peer: both take writes, and Redis tools call that role master. */
function takesWrites(node: TandemNode): boolean {
  return node.role === 'master' || node.role === 'peer'
}

/** ROLE: master with its replicas, slave with its upstream and link state, or sentinel for a witness. */
export function roleReply(node: TandemNode, groupName: string): Reply {
  if (node.role === 'witness') return ['sentinel', [groupName]]
  const seq = node.store.lastSeq
  if (takesWrites(node)) {
    return [
      'master',
      seq,
      node.upstreamSide.replicas().map((r) => {
        const { host, port } = splitHostPort(r.respAddr ?? r.addr)
        return [host, String(r.respAddr ? port : 0), String(r.ackedSeq)]
      }),
    ]
  }
  const { host, port } = upstreamRespAddress(node)
  const state = node.downstream?.state
  const linkState =
    state === 'streaming'
      ? 'connected'
      : state === 'fullsync' || state === 'handshake'
        ? 'sync'
        : node.downstream
          ? 'connecting'
          : 'connect'
  return ['slave', host, port, linkState, seq]
}
