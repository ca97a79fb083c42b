import { describe, expect, it } from 'vitest'
import { parseRedisInfo, redisKeyCount, redisReplicaState, redisReplicaSynced } from './redis-info.js'

// Trimmed from `INFO replication persistence keyspace` of redis-server 7.0 replicas.
const syncing = [
  '# Replication',
  'role:slave',
  'master_host:127.0.0.1',
  'master_port:40123',
  'master_link_status:down',
  'master_last_io_seconds_ago:-1',
  'master_sync_in_progress:1',
  'master_sync_total_bytes:-1',
  'master_sync_read_bytes:52428800',
  '',
  '# Persistence',
  'loading:0',
  'async_loading:0',
  '',
  '# Keyspace',
  '',
].join('\r\n')

const loading = syncing
  .replace('master_sync_in_progress:1', 'master_sync_in_progress:0')
  .replace('loading:0', 'loading:1')
  .replace('# Keyspace\r\n', '# Keyspace\r\ndb0:keys=420000,expires=0,avg_ttl=0\r\n')

const up = syncing
  .replace('master_link_status:down', 'master_link_status:up')
  .replace('master_sync_in_progress:1', 'master_sync_in_progress:0')
  .replace(
    '# Keyspace\r\n',
    '# Keyspace\r\ndb0:keys=1000000,expires=0,avg_ttl=0\r\ndb3:keys=5,expires=1,avg_ttl=100\r\n',
  )

describe('parseRedisInfo', () => {
  it('maps field:value lines, skipping section headers and blank lines; a value keeps its own colons', () => {
    const info = parseRedisInfo(
      '# Server\r\nredis_version:7.0.15\r\nexecutable:/usr/bin/redis-server\r\n\r\nconfig_file:C:\\x\r\n',
    )
    expect([...info]).toEqual([
      ['redis_version', '7.0.15'],
      ['executable', '/usr/bin/redis-server'],
      ['config_file', 'C:\\x'],
    ])
  })

  it('reads LF-only text the same', () => {
    expect(parseRedisInfo('role:slave\nloading:1\n').get('loading')).toBe('1')
  })
})

describe('redisKeyCount', () => {
  it('sums keys= over every dbN line, and is 0 with no database line', () => {
    expect(redisKeyCount(parseRedisInfo(up))).toBe(1_000_005)
    expect(redisKeyCount(parseRedisInfo(syncing))).toBe(0)
  })

  it('refuses a db line without keys= rather than count it as 0', () => {
    expect(() => redisKeyCount(parseRedisInfo('db0:expires=0\r\n'))).toThrow(/keys=N/)
    // 'subkeys=' is not 'keys='.
    expect(() => redisKeyCount(parseRedisInfo('db0:subkeys=5\r\n'))).toThrow(/keys=N/)
  })
})

describe('redisReplicaState / redisReplicaSynced', () => {
  it('is not synced while the RDB arrives, nor while it loads, nor with fewer keys than wanted', () => {
    const a = redisReplicaState(parseRedisInfo(syncing))
    expect(a).toEqual({ linkUp: false, syncing: true, loading: false, keys: 0 })
    expect(redisReplicaSynced(a, 1)).toBe(false)
    const b = redisReplicaState(parseRedisInfo(loading))
    expect(b).toEqual({ linkUp: false, syncing: false, loading: true, keys: 420_000 })
    expect(redisReplicaSynced(b, 420_000)).toBe(false)
    const c = redisReplicaState(parseRedisInfo(up))
    expect(c).toEqual({ linkUp: true, syncing: false, loading: false, keys: 1_000_005 })
    expect(redisReplicaSynced(c, 1_000_000)).toBe(true)
    expect(redisReplicaSynced(c, 1_000_006)).toBe(false)
  })

  it('refuses INFO of a node that is not a replica', () => {
    expect(() => redisReplicaState(parseRedisInfo('role:master\r\nloading:0\r\n'))).toThrow(/role:master/)
  })
})
