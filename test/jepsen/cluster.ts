import type { ConnectOptions, TandemClient } from '@tandem/client'
import type { NodeStatus, Value } from '@tandem/protocol'
import { FailoverGroup, statusOf } from '../failover/group.js'
import type { FaultProxy } from '../helpers/fault-proxy.js'
import type { NodeProcess } from '../helpers/node-process.js'

/**
 * What the fault suite needs of a group of nodes, whatever its mode: real
 * processes, a FaultProxy on every member-to-member link (proxies[i][j]:
 * from i to j; clients reach every node directly), clients, and the
 * evidence a check reads afterwards. The master-replica fail-over group is
 * one Topology; a multi-master mesh plugs in as another (its links through
 * proxies the same way), and then runs the set workload (convergence, no
 * resurrected delete) rather than the register one.
 */
export interface Cluster {
  readonly nodes: NodeProcess[]
  readonly proxies: FaultProxy[][]
  readonly dataDirs: string[]
  client(options?: Partial<ConnectOptions>): Promise<TandemClient>
  isWitness(i: number): boolean
  /** Entries in node i's rollback files. */
  rollbackEntries(i: number): RollbackEntry[]
  rollbackGaps(i: number): { fromSeq: number; toSeq: number; why: string }[]
  /** Waits until every data node holds the same data. */
  waitConverged(timeoutMs?: number): Promise<Map<string, Value>>
  teardown(): Promise<void>
}

export interface RollbackEntry {
  seq: number
  epoch: number
  ops: { type: string; key: string; value?: unknown }[]
}

export interface TopologyOptions {
  size: number
  args: string[]
  env: (i: number) => Record<string, string>
  dataDir?: (i: number) => string
}

export interface Topology {
  name: string
  /** One node takes writes at a time, so the register workload's histories must be linearizable. */
  singleWriter: boolean
  start(options: TopologyOptions): Promise<Cluster>
  /** Resolves once the group can take writes again (after faults are healed). */
  waitWritable(cluster: Cluster, timeoutMs: number): Promise<void>
}

/** A `--cluster --failover auto` group: a master with its lease, replicas that elect a new one. */
export const failoverTopology: Topology = {
  name: 'failover',
  singleWriter: true,
  async start(options) {
    const group = new FailoverGroup()
    try {
      await group.start({ size: options.size, args: options.args, env: options.env, dataDir: options.dataDir })
      await group.waitForMaster(group.nodes, 'a first master', 30_000)
    } catch (err) {
      await group.teardown()
      throw err
    }
    return group
  },
  async waitWritable(cluster, timeoutMs) {
    await (cluster as FailoverGroup).waitForMaster(cluster.nodes, 'a writable master after healing', timeoutMs)
  },
}

/** A node's status, or null when it does not answer in time (killed, paused, cut off from the test? never: clients reach nodes directly). */
export async function tryStatus(node: NodeProcess, timeoutMs: number): Promise<NodeStatus | null> {
  if (!node.running) return null
  return statusOf(node, { timeoutMs }).catch(() => null)
}
