import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { TandemClient } from '@tandem/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { REPO_ROOT } from '../helpers/node-process.js'
import { PrometheusText } from '../helpers/prometheus.js'
import { waitFor } from '../helpers/wait.js'
import { Cluster, statusOf } from '../replication/cluster.js'
import { respPortOf } from '../resp/helpers.js'
import { command, RawResp } from '../resp/raw.js'

/**
 * /metrics as Prometheus reads it: parsed strictly (test/helpers/prometheus.ts),
 * every family typed as what it is, request latency as a histogram per op
 * counting each answered request once (WebSocket API and RESP), replication
 * lag per replica, Node.js's own metrics and the build info.
 */
describe('/metrics', () => {
  const cluster = new Cluster()
  let masterAddr = ''
  let respPort = 0

  beforeAll(async () => {
    const master = await cluster.start(['--resp-port', '0'])
    masterAddr = master.address
    respPort = respPortOf(master)
    await cluster.start(['--replicaof', master.address])
  })
  afterAll(() => cluster.teardown())

  async function scrape(address = masterAddr): Promise<PrometheusText> {
    const res = await fetch(`http://${address}/metrics`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    return new PrometheusText(await res.text())
  }

  // Rule: every *_total family is a counter, and the figures kept elsewhere are typed as what they are.
  it('types counters as counters and gauges as gauges', async () => {
    const db = await TandemClient.connect({ servers: [masterAddr] })
    await db.put('typed', 'x')
    await db.close()
    const m = await scrape()
    const totals = [...m.families.values()].filter((f) => f.name.endsWith('_total') && f.name.startsWith('tandem_'))
    expect(totals.map((f) => f.name)).toEqual(
      expect.arrayContaining([
        'tandem_requests_total',
        'tandem_errors_total',
        'tandem_commit_groups_total',
        'tandem_commit_writes_total',
        'tandem_full_syncs_total',
        'tandem_served_full_syncs_total',
        'tandem_rollbacks_total',
        'tandem_elections_started_total',
        'tandem_resp_commands_total',
        'tandem_slow_sync_reads_total',
        'tandem_sync_read_fallbacks_total',
      ]),
    )
    for (const f of totals) expect(f.type, f.name).toBe('counter')
    for (const name of [
      'tandem_seq',
      'tandem_epoch',
      'tandem_connections',
      'tandem_commit_queued',
      'tandem_keys',
      'tandem_disk_bytes',
      'tandem_log_oldest_seq',
      'tandem_log_newest_seq',
      'tandem_log_entries',
    ]) {
      expect(m.family(name).type, name).toBe('gauge')
    }
    for (const f of m.families.values()) expect(f.help, `${f.name} has a HELP line`).toBeTruthy()
    // The master served the replica's full sync (the replica was started
    // listening, not synced: the sync may still be under way).
    await waitFor(async () => ((await scrape()).value('tandem_served_full_syncs_total') ?? 0) >= 1, {
      what: 'the master to serve the replica its full sync',
    })
    expect((await scrape()).value('tandem_served_full_syncs_total')).toBe(1)
  })

  // Rule: each answered request is observed once in tandem_request_duration_seconds, under its op.
  it('has a request latency histogram per op that counts each request once', async () => {
    const before = await scrape()
    const count = (m: PrometheusText, op: string) => m.value('tandem_request_duration_seconds_count', { op }) ?? 0
    const db = await TandemClient.connect({ servers: [masterAddr] })
    for (let i = 0; i < 25; i++) await db.put(`lat${i}`, 'v')
    await Promise.all(Array.from({ length: 40 }, (_, i) => db.get(`lat${i % 25}`)))
    await db.close()
    const resp = await RawResp.open(respPort)
    await resp.write(Buffer.concat([command('SET', 'r1', 'v'), command('SET', 'r2', 'v'), command('GET', 'r1')]))
    await resp.until((t) => t === '+OK\r\n+OK\r\n$1\r\nv\r\n')
    resp.close()

    const after = await scrape()
    expect(after.family('tandem_request_duration_seconds').type).toBe('histogram')
    expect(count(after, 'put') - count(before, 'put')).toBe(27)
    expect(count(after, 'get') - count(before, 'get')).toBe(41)
    const series = after.histogram('tandem_request_duration_seconds')
    const put = series.find((s) => s.labels.op === 'put')
    expect(put?.buckets.length).toBeGreaterThan(10)
    expect(put?.sum).toBeGreaterThan(0)
    // Requests counted and requests timed agree for ops that cannot fail here.
    expect(after.value('tandem_requests_total', { op: 'put' })).toBe(count(after, 'put'))
  })

  // Rule: every group a node writes is timed in tandem_write_stage_seconds, and a replica times the frames it applies.
  it('times the stages of the write path', async () => {
    const replica = cluster.nodes[1]
    const stage = (m: PrometheusText, s: string) => m.value('tandem_write_stage_seconds_count', { stage: s }) ?? 0
    const [before, replicaBefore] = [await scrape(), await scrape(replica.address)]
    const db = await TandemClient.connect({ servers: [masterAddr] })
    for (let i = 0; i < 10; i++) await db.put(`stage${i}`, 'v')
    const seq = (await db.status()).seq
    await db.close()
    await waitFor(async () => (await statusOf(replica)).seq >= seq, { what: 'the replica to apply the puts' })
    const [after, replicaAfter] = [await scrape(), await scrape(replica.address)]
    expect(after.family('tandem_write_stage_seconds').type).toBe('histogram')
    // Ten awaited puts are ten groups at least (other writes may make more).
    for (const s of ['queue', 'read', 'build', 'write']) {
      expect(stage(after, s) - stage(before, s), s).toBeGreaterThanOrEqual(10)
    }
    // The replica applied the puts in frames: each frame timed in its queue, its wait for its group's hand-off and its commit.
    const frames = stage(replicaAfter, 'remote_commit') - stage(replicaBefore, 'remote_commit')
    expect(frames).toBeGreaterThanOrEqual(1)
    expect(stage(replicaAfter, 'remote_queue') - stage(replicaBefore, 'remote_queue')).toBe(frames)
    expect(stage(replicaAfter, 'remote_wait') - stage(replicaBefore, 'remote_wait')).toBe(frames)
    // Peer stages are a multi-master node's alone.
    expect(stage(replicaAfter, 'peer_lag')).toBe(0)
  })

  // Rule: a watch's events frames are timed from their first event's commit to their hand-off (watch_send).
  it('times the frames a watch sends', async () => {
    const stage = (m: PrometheusText, s: string) => m.value('tandem_write_stage_seconds_count', { stage: s }) ?? 0
    const db = await TandemClient.connect({ servers: [masterAddr] })
    const watch = db.watch({ prefix: 'wstage:' })
    await waitFor(() => watch.seq !== null, { what: 'the watch to start' })
    const before = await scrape()
    for (let i = 0; i < 10; i++) await db.put(`wstage:${i}`, 'v')
    const keys: string[] = []
    const following = (async () => {
      for await (const event of watch) if (keys.push(event.key) === 10) break
    })()
    await waitFor(() => keys.length === 10, { what: 'the watch to show the ten puts' })
    await following
    expect(keys).toEqual([...Array(10).keys()].map((i) => `wstage:${i}`))
    watch.close()
    await db.close()
    const after = await scrape()
    // Ten events, each frame of them timed once: ten frames at most (one a put), one at least.
    const frames = stage(after, 'watch_send') - stage(before, 'watch_send')
    expect(frames).toBeGreaterThanOrEqual(1)
    expect(frames).toBeLessThanOrEqual(10)
    // Entries frames to peers are a multi-master origin's alone.
    expect(stage(after, 'peer_send')).toBe(0)
  })

  // Rule: replication lag is a gauge per replica on the upstream, and its own on the replica.
  it('reports replication lag per replica', async () => {
    const replica = cluster.nodes[1]
    const replicaId = (await statusOf(replica)).nodeId
    await waitFor(async () => (await scrape()).value('tandem_replica_lag_entries', { replica: replicaId }) === 0, {
      what: 'the replica caught up in the lag gauge',
    })
    const m = await scrape()
    expect(m.family('tandem_replica_lag_entries').type).toBe('gauge')
    expect(m.value('tandem_replica_lag_ms', { replica: replicaId, addr: replica.address })).toBeGreaterThanOrEqual(0)
    expect(m.value('tandem_replica_acked_seq', { replica: replicaId })).toBe((await statusOf(cluster.nodes[0])).seq)
    const onReplica = await scrape(replica.address)
    expect(onReplica.value('tandem_upstream_link_up')).toBe(1)
    expect(onReplica.value('tandem_full_syncs_total')).toBe(1)
    expect(onReplica.value('tandem_ready')).toBe(1)
  })

  // Rule: Node.js's default metrics and the build info are there.
  it('has Node.js runtime metrics and tandem_build_info', async () => {
    const m = await scrape()
    const version = JSON.parse(readFileSync(join(REPO_ROOT, 'packages/server/package.json'), 'utf8')).version
    expect(m.value('tandem_build_info', { version, node: process.version })).toBe(1)
    expect(m.family('tandem_build_info').type).toBe('gauge')
    expect(m.family('nodejs_eventloop_lag_seconds').type).toBe('gauge')
    expect(m.family('nodejs_heap_size_used_bytes').type).toBe('gauge')
    expect(m.family('process_cpu_seconds_total').type).toBe('counter')
    expect(m.value('process_resident_memory_bytes')).toBeGreaterThan(0)
    expect(m.family('nodejs_gc_duration_seconds').type).toBe('histogram')
  })
})

describe('the strict Prometheus parser', () => {
  // Rule: the parser used above rejects what a scraper would, so the tests above can fail on format.
  it.each([
    ['no TYPE line', 'x 1\n'],
    ['a gauge typed twice', '# TYPE x gauge\n# TYPE x gauge\nx 1\n'],
    ['a bad escape', '# TYPE x gauge\nx{a="\\q"} 1\n'],
    ['a negative counter', '# TYPE x_total counter\nx_total -1\n'],
    ['a series twice', '# TYPE x gauge\nx{a="1"} 1\nx{a="1"} 2\n'],
    ['a value prom-client writes for NaN', '# TYPE x gauge\nx Nan\n'],
    ['no final newline', '# TYPE x gauge\nx 1'],
    ['a histogram without +Inf', '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n'],
    [
      'a histogram whose count is not its +Inf bucket',
      '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n',
    ],
    ['buckets that go down', '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n'],
    ['samples of a family split by another', '# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x="1"} 1\n'],
  ])('rejects %s', (_what, text) => {
    expect(() => new PrometheusText(text)).toThrow()
  })
})
