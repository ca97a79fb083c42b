import type { ConnectOptions, TandemClient, Value } from '@tandem/client'
import { scanAll } from '../failover/group.js'
import type { FaultProxy } from '../helpers/fault-proxy.js'
import { waitFor } from '../helpers/wait.js'
import { PeerGroup } from '../multimaster/peers.js'
import type { Cluster, RollbackEntry, Topology, TopologyOptions } from './cluster.js'
import { tryStatus } from './cluster.js'

/**
 * A multi-master mesh (`--mode multi --conflict lww`) as a Topology of the
 * fault suite: every node takes writes, each peer link runs through a
 * FaultProxy (proxies[i][j]: the link on which i pulls from j), so the
 * nemesis cuts, delays and flaps links as it does a fail-over group's.
 *
 * Client c prefers node c mod n and moves on to the next one that takes
 * writes when it cannot reach it, so writes land on every node, and a
 * client's later write may land on another node than its earlier one.
 * Nothing is rolled back in this mode: a write acknowledged by one node
 * stays there and reaches the others, so the set workload must end with
 * every acknowledged add present and no acknowledged removal undone, on
 * every node, once the links heal.
 */
export const meshTopology: Topology = {
  name: 'mesh',
  // Every node takes writes: histories of one register are not linearizable by design.
  singleWriter: false,
  async start(options: TopologyOptions): Promise<Cluster> {
    const group = new PeerGroup()
    try {
      await group.start({
        size: options.size,
        conflict: 'lww',
        args: options.args,
        env: options.env,
        dataDir: options.dataDir,
      })
    } catch (err) {
      await group.teardown()
      throw err
    }
    return new MeshCluster(group)
  },
  async waitWritable(cluster, timeoutMs) {
    await waitFor(
      async () => {
        const statuses = await Promise.all(cluster.nodes.map((n) => tryStatus(n, 1000)))
        return statuses.every((s) => s !== null && !s.readOnly)
      },
      { what: 'every peer to take writes after healing', timeoutMs, intervalMs: 100 },
    )
  },
}

class MeshCluster implements Cluster {
  private clients = 0

  constructor(private readonly group: PeerGroup) {}

  get nodes() {
    return this.group.nodes
  }

  get proxies(): FaultProxy[][] {
    // A mesh: every pair of nodes has a link each way.
    return this.group.proxies as FaultProxy[][]
  }

  get dataDirs(): string[] {
    return this.group.dirs.map((d) => d.path)
  }

  client(options: Partial<ConnectOptions> = {}): Promise<TandemClient> {
    const n = this.group.nodes.length
    const first = this.clients++ % n
    const servers = [...Array(n).keys()].map((k) => this.group.nodes[(first + k) % n].address)
    return this.group.groupClient({ servers, ...options })
  }

  isWitness(): boolean {
    return false
  }

  rollbackEntries(): RollbackEntry[] {
    return []
  }

  rollbackGaps(): { fromSeq: number; toSeq: number; why: string }[] {
    return []
  }

  async waitConverged(timeoutMs = 60_000): Promise<Map<string, Value>> {
    await this.group.waitConverged(timeoutMs)
    return scanAll(this.group.nodes[0].address)
  }

  teardown(): Promise<void> {
    return this.group.teardown()
  }
}
