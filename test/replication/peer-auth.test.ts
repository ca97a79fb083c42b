import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { TandemClient, type Value } from '@tandem/client'
import { afterEach, describe, expect, it } from 'vitest'
import { FailoverGroup } from '../failover/group.js'
import { FakePeer } from '../helpers/fake-peer.js'
import { freePort } from '../helpers/fault-proxy.js'
import type { NodeProcess } from '../helpers/node-process.js'
import { waitFor } from '../helpers/wait.js'
import { Cluster, type FullStatus } from './cluster.js'

/**
 * Links between nodes authenticate both ends by a challenge-response on the
 * shared token, and a full sync never drops a replica's entries without a
 * rollback file. The impostor is a real WebSocket server bound where the
 * real node was (its port, after a kill -9), speaking tandem's protocol.
 */
const TOKEN = 'peer-auth-token-1d9c07a2f3'

async function status(node: NodeProcess, token?: string): Promise<FullStatus> {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {}
  const res = await fetch(`http://${node.address}/status`, { headers, signal: AbortSignal.timeout(5000) })
  if (!res.ok) throw new Error(`status of ${node.address}: HTTP ${res.status}`)
  return (await res.json()) as FullStatus
}

async function contents(node: NodeProcess, token?: string): Promise<Map<string, Value>> {
  const db = await TandemClient.connect({ servers: [node.address], direct: true, authToken: token })
  try {
    const out = new Map<string, Value>()
    for await (const [k, v] of db.scan()) out.set(k, v)
    return out
  } finally {
    await db.close()
  }
}

/** A master and its replica holding keys k00..k51, caught up; the master is then killed with SIGKILL. */
async function replicaOfDeadMaster(cluster: Cluster, token?: string) {
  const auth = token ? ['--auth-token', token] : []
  const master = await cluster.start(auth)
  const replica = await cluster.start(['--replicaof', master.address, ...auth])
  // Streaming before the writes, so that the replica's own log holds all 52.
  await waitFor(async () => (await status(replica, token)).link?.state === 'streaming', {
    what: 'the replica streaming',
  })
  const db = await cluster.client({ servers: [master.address], authToken: token })
  for (let i = 0; i < 52; i++) await db.put(`k${String(i).padStart(2, '0')}`, `v${i}`)
  await waitFor(async () => (await status(replica, token)).seq === 52, { what: 'the replica at seq 52' })
  await db.close()
  await master.kill('SIGKILL')
  return { master, replica }
}

describe('links between nodes authenticate both ends', () => {
  const cleanups: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })

  // Rule: a downstream never sends the token, and applies nothing from an upstream that cannot prove it holds it.
  it('an impostor at the dead master address learns nothing of the token and cannot make the replica apply anything', async () => {
    const cluster = new Cluster()
    cleanups.push(() => cluster.teardown())
    const { master, replica } = await replicaOfDeadMaster(cluster, TOKEN)
    const before = await contents(replica, TOKEN)
    const fullSyncs = (await status(replica, TOKEN)).sync.fullSyncs

    const fake = await new FakePeer({ port: master.port, proof: 'random' }).listen()
    cleanups.push(() => fake.close())
    // The replica keeps trying its upstream; three connections give it
    // three chances to be fooled.
    await waitFor(() => fake.connections >= 3 && fake.hellos >= 1, { what: 'the replica to dial the impostor 3 times' })

    expect(fake.saw(TOKEN), 'the token reached the impostor').toBe(false)
    const after = await status(replica, TOKEN)
    expect(after.seq).toBe(52)
    expect(after.epoch).toBe(1)
    expect(after.sync.fullSyncs).toBe(fullSyncs)
    expect(after.link?.state).not.toBe('streaming')
    expect(await contents(replica, TOKEN)).toEqual(before)
    expect(replica.logs.some((l) => String(l.msg).includes('could not prove it holds the auth token'))).toBe(true)
  })

  // Rule: a full sync writes every entry its snapshot does not cover to a rollback file before it clears the data.
  it('a forced full sync over a replica with entries keeps them in a rollback file', async () => {
    const cluster = new Cluster()
    cleanups.push(() => cluster.teardown())
    // Without a token there is nothing to authenticate with: anyone at the
    // master's address may feed the replica. What it held must survive.
    const { master, replica } = await replicaOfDeadMaster(cluster)
    const fake = await new FakePeer({ port: master.port, proof: 'null', forged: { forged: 'x' } }).listen()
    cleanups.push(() => fake.close())
    await waitFor(async () => (await status(replica)).rollbacks.count >= 1 && (await status(replica)).seq === 1, {
      what: 'the forged full sync to be applied after a rollback',
    })
    expect(await contents(replica)).toEqual(new Map([['forged', 'x']]))

    const dir = join(replica.dataDir, 'rollback')
    const files = readdirSync(dir)
    expect(files).toHaveLength(1)
    const lines = readFileSync(join(dir, files[0]), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(lines[0].rollback).toMatchObject({ fromSeq: 1, toSeq: 52 })
    const entries = lines.slice(1)
    expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: 52 }, (_, i) => i + 1))
    expect(entries.map((e) => e.ops[0])).toEqual(
      Array.from({ length: 52 }, (_, i) => ({ type: 'put', key: `k${String(i).padStart(2, '0')}`, value: `v${i}` })),
    )
    const st = await status(replica)
    expect(st.rollbacks).toMatchObject({ count: 1, entries: 52 })
  })

  // Rule: a fail-over member sends no token and no request but its hello to a member that has not proven itself.
  it('an impostor in place of a fail-over member gets no token and no vote or heartbeat', async () => {
    const group = await new FailoverGroup().start({ size: 3, args: ['--auth-token', TOKEN] })
    cleanups.push(() => group.teardown())
    const master = await waitFor(
      async () => {
        for (const n of group.nodes) if ((await status(n, TOKEN).catch(() => null))?.role === 'master') return n
        return undefined
      },
      { what: 'a master' },
    )
    const victim = group.nodes.findIndex((n) => n !== master)
    await group.nodes[victim].kill('SIGKILL')
    const fake = await new FakePeer({ port: await freePort(), proof: 'random' }).listen()
    cleanups.push(() => fake.close())
    for (let k = 0; k < 3; k++) if (k !== victim) group.proxies[k][victim].targetPort = fake.options.port

    await waitFor(() => fake.connections >= 3 || fake.clusterRequests > 0, {
      what: 'the members to dial the impostor 3 times',
    })
    expect(fake.clusterRequests, 'requests the impostor was sent past its hello').toBe(0)
    expect(fake.saw(TOKEN), 'the token reached the impostor').toBe(false)
    expect(master.logs.some((l) => String(l.msg).includes('could not prove it holds the auth token'))).toBe(true)
  })
})
