/**
 * What the harness reads from a Redis replica's INFO text while it takes a
 * full sync: whether its link to the master is up, whether it is still
 * receiving or loading the master's RDB, and how many keys it holds.
 */

/** INFO's `field:value` lines as a map; section headers (`# Replication`) and blank lines skipped. */
export function parseRedisInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>()
  for (const raw of text.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw
    if (line === '' || line.startsWith('#')) continue
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    fields.set(line.slice(0, colon), line.slice(colon + 1))
  }
  return fields
}

/** Keys over every database of INFO keyspace (`db0:keys=N,expires=...`); 0 when no database holds any. */
export function redisKeyCount(info: Map<string, string>): number {
  let keys = 0
  for (const [field, value] of info) {
    if (!/^db\d+$/.test(field)) continue
    const m = /(?:^|,)keys=(\d+)(?:,|$)/.exec(value)
    if (!m) throw new Error(`INFO keyspace line ${field}:${value} has no keys=N`)
    keys += Number(m[1])
  }
  return keys
}

interface RedisReplicaState {
  /** master_link_status:up: the replica has the master's data and follows its stream. */
  linkUp: boolean
  /** master_sync_in_progress:1: the RDB is still arriving. */
  syncing: boolean
  /** loading:1 (INFO persistence): the RDB is being loaded into memory. */
  loading: boolean
  keys: number
}

/** The replica's state from one INFO reply holding the replication, persistence and keyspace sections. */
export function redisReplicaState(info: Map<string, string>): RedisReplicaState {
  const role = info.get('role')
  if (role !== 'slave') throw new Error(`INFO says role:${role ?? '(none)'}, not a replica`)
  return {
    linkUp: info.get('master_link_status') === 'up',
    syncing: info.get('master_sync_in_progress') === '1',
    loading: info.get('loading') === '1',
    keys: redisKeyCount(info),
  }
}

/** True once the replica's link is up, nothing is arriving or loading, and it holds at least `keys` keys. */
export function redisReplicaSynced(state: RedisReplicaState, keys: number): boolean {
  return state.linkUp && !state.syncing && !state.loading && state.keys >= keys
}
