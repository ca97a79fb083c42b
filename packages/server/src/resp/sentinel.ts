import { createHash } from 'node:crypto'
import type { TandemNode } from '../node.js'
import { splitHostPort } from './address.js'
import { MapReply, NULL_ARRAY, type Reply, SimpleString } from './encoder.js'
import { invalid } from './errors.js'
import { type GroupMember, groupView } from './group-view.js'

/**
 * The Redis Sentinel commands, answered by every node from its fail-over
 * group's state, so that Sentinel-aware clients (ioredis, redis-py) find
 * and follow the master with no tandem-specific code: the group's members
 * are its Sentinels, the group (`--group-name`) its one monitored master.
 * Field names and formats are Sentinel's; values that have no tandem
 * counterpart (link refcounts, script settings) are constants.
 */

/** Published on `+switch-master` when the master changes: `<name> <oldip> <oldport> <newip> <newport>`. */
export const SWITCH_MASTER = '+switch-master'

function runId(nodeId: string | null): string {
  return nodeId ? createHash('sha1').update(nodeId).digest('hex') : ''
}

function flags(base: string, member: { connected: boolean }): string {
  return member.connected ? base : `${base},s_down,disconnected`
}

function pairs(fields: [string, string | number][]): MapReply {
  return new MapReply(fields.map(([k, v]) => [k, String(v)]))
}

function masterEntry(node: TandemNode, name: string): MapReply | null {
  const view = groupView(node)
  if (!view.master?.respAddr) return null
  const { host, port } = splitHostPort(view.master.respAddr)
  const timeout = node.config.failoverTimeout
  return pairs([
    ['name', name],
    ['ip', host],
    ['port', port],
    ['runid', runId(view.master.nodeId)],
    ['flags', view.master.heard ? 'master' : 'master,s_down'],
    ['link-pending-commands', 0],
    ['link-refcount', 1],
    ['last-ping-sent', 0],
    ['last-ok-ping-reply', 0],
    ['last-ping-reply', 0],
    ['down-after-milliseconds', timeout],
    ['info-refresh', 0],
    ['role-reported', 'master'],
    ['role-reported-time', 0],
    ['config-epoch', view.epoch],
    ['num-slaves', view.replicas.length],
    ['num-other-sentinels', view.others.length],
    ['quorum', view.quorum],
    ['failover-timeout', timeout],
    ['parallel-syncs', 1],
  ])
}

function replicaEntry(member: GroupMember, master: string | null, node: TandemNode): MapReply | null {
  if (!member.respAddr) return null
  const { host, port } = splitHostPort(member.respAddr)
  const m = master ? splitHostPort(master) : { host: '?', port: 0 }
  const lag = member.lastReplyMsAgo ?? 0
  return pairs([
    ['name', member.respAddr],
    ['ip', host],
    ['port', port],
    ['runid', runId(member.nodeId)],
    ['flags', flags('slave', member)],
    ['link-pending-commands', 0],
    ['link-refcount', 1],
    ['last-ping-sent', 0],
    ['last-ok-ping-reply', lag],
    ['last-ping-reply', lag],
    ['down-after-milliseconds', node.config.failoverTimeout],
    ['info-refresh', 0],
    ['role-reported', 'slave'],
    ['role-reported-time', 0],
    ['master-link-down-time', 0],
    ['master-link-status', member.connected ? 'ok' : 'err'],
    ['master-host', m.host],
    ['master-port', m.port],
    ['slave-priority', 100],
    ['slave-repl-offset', member.self ? node.store.lastSeq : 0],
    ['replica-announced', 1],
  ])
}

function sentinelEntry(member: GroupMember, node: TandemNode): MapReply | null {
  if (!member.respAddr) return null
  const { host, port } = splitHostPort(member.respAddr)
  const ago = member.lastReplyMsAgo ?? 0
  return pairs([
    ['name', runId(member.nodeId)],
    ['ip', host],
    ['port', port],
    ['runid', runId(member.nodeId)],
    ['flags', flags('sentinel', member)],
    ['link-pending-commands', 0],
    ['link-refcount', 1],
    ['last-ping-sent', 0],
    ['last-ok-ping-reply', ago],
    ['last-ping-reply', ago],
    ['down-after-milliseconds', node.config.failoverTimeout],
    ['last-hello-message', ago],
    ['voted-leader', '?'],
    ['voted-leader-epoch', 0],
  ])
}

/** The master's RESP address as this node knows it, or null. */
export function masterRespAddress(node: TandemNode): string | null {
  return groupView(node).master?.respAddr ?? null
}

/** SENTINEL <subcommand> <args>. */
export function sentinelCommand(node: TandemNode, groupName: string, args: string[]): Reply {
  const sub = (args[0] ?? '').toLowerCase()
  const name = args[1]
  const known = name === groupName
  const noSuchMaster = () => invalid('No such master with that name')
  switch (sub) {
    case 'get-master-addr-by-name': {
      if (args.length !== 2) throw invalid(`wrong number of arguments for 'sentinel|get-master-addr-by-name' command`)
      const addr = known ? masterRespAddress(node) : null
      if (!addr) return NULL_ARRAY
      const { host, port } = splitHostPort(addr)
      return [host, String(port)]
    }
    case 'masters': {
      const entry = masterEntry(node, groupName)
      return entry ? [entry] : []
    }
    case 'master': {
      if (!known) throw noSuchMaster()
      const entry = masterEntry(node, groupName)
      if (!entry) throw invalid('the group has no master with a RESP address right now')
      return entry
    }
    case 'replicas':
    case 'slaves': {
      if (!known) throw noSuchMaster()
      const view = groupView(node)
      const master = view.master?.respAddr ?? null
      return view.replicas.map((m) => replicaEntry(m, master, node)).filter((e): e is MapReply => e !== null)
    }
    case 'sentinels': {
      if (!known) throw noSuchMaster()
      return groupView(node)
        .others.map((m) => sentinelEntry(m, node))
        .filter((e): e is MapReply => e !== null)
    }
    case 'myid':
      return runId(node.nodeId)
    case 'ckquorum': {
      if (!known) throw noSuchMaster()
      const view = groupView(node)
      const usable = view.others.filter((m) => m.connected).length + 1
      if (usable < view.quorum)
        throw invalid(`NOQUORUM ${usable} usable Sentinels. Not enough for the quorum (${view.quorum})`)
      return new SimpleString(`OK ${usable} usable Sentinels. Quorum and failover authorization can be reached`)
    }
    default:
      throw invalid(`Unknown sentinel subcommand '${args[0] ?? ''}'`)
  }
}
