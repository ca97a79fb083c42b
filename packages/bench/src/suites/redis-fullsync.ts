import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import type { Redis } from 'ioredis'
import { keyName } from '../keys.js'
import { cpuSeconds, peakRssBytes } from '../measures/proc.js'
import { parseRedisInfo, redisReplicaState, redisReplicaSynced } from '../measures/redis-info.js'
import type { RedisFullSyncResult } from '../report/result.js'
import { connect, redisServerVersion, startRedisServer } from '../topology/redis.js'
import type { ServerProcess } from '../topology/server-process.js'
import type { StartedServer } from '../topology/topology.js'
import { loadInBatches, round } from './common.js'

/**
 * The Redis side of the fullsync suite: the same keys and values copied by
 * Redis's diskless full sync. A master with `repl-diskless-sync yes` and no
 * delay streams its RDB straight to the socket; the replica, started empty,
 * is pointed at it with REPLICAOF and timed until its INFO says the link is
 * up, nothing is arriving or loading, and it holds every key. The replica
 * loads the RDB the default way (`repl-diskless-load disabled`: written to
 * its disk, then loaded).
 */

interface RedisFullSyncOptions {
  keys: number
  valueSize: number
  batch: number
  appendfsync: 'always' | 'everysec' | 'no'
  authToken?: string
  /** Give up on the sync after this long. */
  timeoutMs: number
}

const LOAD_CONNECTIONS = 4

export async function redisFullSync(
  o: RedisFullSyncOptions,
  note: (line: string) => void,
  /** Where the two servers are listed while they run (a topology's processes, stopped on an interrupt). */
  processes: StartedServer[],
): Promise<RedisFullSyncResult> {
  const version = await redisServerVersion()
  if (!version) throw new Error('redis-server is not on the PATH')
  const root = await mkdtemp(join(tmpdir(), 'tandem-bench-redis-fullsync-'))
  const started: ServerProcess[] = []
  try {
    const persistence = ['--appendonly', 'yes', '--appendfsync', o.appendfsync, '--save', '']
    const master = await startRedisServer(
      root,
      'redis master',
      'master',
      [...persistence, '--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0'],
      o.authToken,
    )
    started.push(master.process)
    processes.push(master.process)
    note(
      `fullsync: loading ${o.keys.toLocaleString('en-US')} keys of ${o.valueSize} bytes into Redis ${master.address}`,
    )
    const load = await loadRedisKeys(master.address, o)
    note(`fullsync: Redis loaded at ${load.keysPerSec.toLocaleString('en-US')} keys/s`)
    const replica = await startRedisServer(
      root,
      'redis replica (full sync)',
      'replica',
      [...persistence, '--repl-diskless-load', 'disabled'],
      o.authToken,
    )
    started.push(replica.process)
    processes.push(replica.process)
    const replicaPid = replica.process.pid
    const masterPid = master.process.pid
    const client = connect(replica.address, o.authToken)
    try {
      const [host, port] = master.address.split(':')
      const replicaCpu0 = replicaPid ? await cpuSeconds(replicaPid) : undefined
      const masterCpu0 = masterPid ? await cpuSeconds(masterPid) : undefined
      const t0 = performance.now()
      await client.call('REPLICAOF', host, port)
      const deadline = t0 + o.timeoutMs
      for (;;) {
        const info = parseRedisInfo(String(await client.call('INFO', 'replication', 'persistence', 'keyspace')))
        if (redisReplicaSynced(redisReplicaState(info), o.keys)) break
        if (performance.now() > deadline) {
          throw new Error(`the Redis replica did not sync ${o.keys} keys within ${o.timeoutMs} ms`)
        }
        await new Promise((r) => setTimeout(r, 10))
      }
      const syncMs = performance.now() - t0
      const replicaCpu1 = replicaPid ? await cpuSeconds(replicaPid) : undefined
      const masterCpu1 = masterPid ? await cpuSeconds(masterPid) : undefined
      const replicaRss = replicaPid ? await peakRssBytes(replicaPid) : undefined
      const masterRss = masterPid ? await peakRssBytes(masterPid) : undefined
      const cores = (a: number | undefined, b: number | undefined) =>
        a === undefined || b === undefined ? null : round((b - a) / (syncMs / 1000), 2)
      const dataMB = (o.keys * (keyName(0).length + o.valueSize)) / 2 ** 20
      return {
        version,
        settings: `repl-diskless-sync yes, repl-diskless-sync-delay 0, repl-diskless-load disabled, appendonly yes, appendfsync ${o.appendfsync}`,
        syncMs: round(syncMs),
        keysPerSec: Math.round((o.keys / syncMs) * 1000),
        mbPerSec: round((dataMB / syncMs) * 1000),
        replicaPeakRssMB: replicaRss === undefined ? null : round(replicaRss / 2 ** 20),
        masterPeakRssMB: masterRss === undefined ? null : round(masterRss / 2 ** 20),
        replicaCpuCores: cores(replicaCpu0, replicaCpu1),
        masterCpuCores: cores(masterCpu0, masterCpu1),
        load,
      }
    } finally {
      client.disconnect()
    }
  } finally {
    // The replica first: one left running would dial its master's port again,
    // which another server may take next.
    for (const p of [...started].reverse()) await p.stop()
    for (const p of started) processes.splice(processes.indexOf(p), 1)
    await rm(root, { recursive: true, force: true })
  }
}

/**
 * keyName(0..keys-1) with distinct incompressible values, as tandem's
 * master is loaded: MSETs of `batch` keys, one in flight per connection.
 */
async function loadRedisKeys(
  address: string,
  o: RedisFullSyncOptions,
): Promise<{ batch: number; connections: number; ms: number; keysPerSec: number }> {
  const clients: Redis[] = Array.from({ length: LOAD_CONNECTIONS }, () => connect(address, o.authToken))
  let ms: number
  try {
    ms = await loadInBatches(clients, o, async (c, keys, values) => {
      const args: (string | Buffer)[] = []
      for (let i = 0; i < keys.length; i++) args.push(keys[i], values[i])
      await c.mset(...args)
    })
  } finally {
    for (const c of clients) c.disconnect()
  }
  return { batch: o.batch, connections: LOAD_CONNECTIONS, ms: round(ms), keysPerSec: Math.round((o.keys / ms) * 1000) }
}
