import { TandemError } from '@tandem/client'
import { DATA_FORMAT } from '@tandem/protocol'
import { afterAll, describe, expect, it } from 'vitest'
import { FaultProxy } from '../helpers/fault-proxy.js'
import { waitFor } from '../helpers/wait.js'
import { packr, WebSocket } from '../single-node/raw-client.js'
import { Cluster, statusOf, waitCaughtUp } from './cluster.js'

/**
 * Acks from downstreams decide when a w=N write and `wait` return, so they
 * must never say more than is true: an ack counts only on a link that
 * streams the master's current history, only up to what that link was
 * sent, never past the master's head, and only while the link is open; a
 * replica acks only what it has durably applied on the current history.
 */

/** A hand-made replication link (what a forged or buggy downstream can send). */
class RawReplicationLink {
  readonly messages: { type: string; [field: string]: unknown }[] = []
  private constructor(readonly ws: InstanceType<typeof WebSocket>) {
    ws.on('message', (data: Buffer) => this.messages.push(packr.unpack(data) as { type: string }))
    ws.on('error', () => {})
  }

  static open(address: string): Promise<RawReplicationLink> {
    const ws = new WebSocket(`ws://${address}/replication`, { perMessageDeflate: false })
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new RawReplicationLink(ws)))
      ws.once('error', reject)
    })
  }

  send(message: unknown): void {
    this.ws.send(packr.pack(message))
  }

  received(type: string): Promise<unknown> {
    return waitFor(() => this.messages.find((m) => m.type === type), { what: `a ${type} message` })
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) return resolve()
      this.ws.once('close', () => resolve())
      this.ws.terminate()
    })
  }
}

/**
 * What a downstream adds to its hello to pass the handshake: these nodes run
 * without --auth-token, so any nonce with a null proof will do; the record
 * format it reads is this build's.
 */
const NO_TOKEN = { nonce: Buffer.alloc(32, 1), proof: null, format: DATA_FORMAT }

async function expectTimeout(write: Promise<unknown>): Promise<void> {
  const err = await write.then(
    () => null,
    (e: unknown) => e,
  )
  expect(err, 'the write was acknowledged by replicas that do not hold it').toBeInstanceOf(TandemError)
  expect((err as TandemError).code).toBe('TIMEOUT')
}

describe('replica acknowledgements', () => {
  const cluster = new Cluster()
  const links: RawReplicationLink[] = []
  afterAll(async () => {
    await Promise.all(links.map((l) => l.close()))
    await cluster.teardown()
  })

  it('a forged ack counts at most up to what the link was sent: later w:1 writes and wait do not see it', async () => {
    const master = await cluster.start()
    const db = await cluster.client({ servers: [master.address] })
    for (let i = 0; i < 10; i++) await db.put(`k${i}`, 'v')

    // An empty downstream gets a full sync, then says it holds seq 1e12.
    const forger = await RawReplicationLink.open(master.address)
    links.push(forger)
    forger.send({ type: 'hello', nodeId: 'forger', addr: '127.0.0.1:1', history: [], lastSeq: 0, ...NO_TOKEN })
    await forger.received('snapshotEnd')
    forger.send({ type: 'ack', seq: 1e12 })
    const status = await waitFor(
      async () => {
        const s = await statusOf(master)
        return s.replicas.find((r) => r.nodeId === 'forger' && r.ackedSeq > 0) ? s : null
      },
      { what: 'the forged ack to be taken' },
    )
    // Never past the head: it was sent the snapshot at seq 10 and nothing more.
    expect(status.replicas.find((r) => r.nodeId === 'forger')?.ackedSeq).toBe(10)

    // The next write goes to the forger, which does not ack it.
    await expectTimeout(db.put('after', 'v', { w: 1, timeoutMs: 500 }))
    expect(await db.wait(1, 300)).toBe(0)
  })

  it("an ack from a second link claiming a replica's id leaves with that link and never adds to it", async () => {
    const master = await cluster.start()
    const replica = await cluster.start(['--replicaof', master.address])
    const db = await cluster.client({ servers: [master.address] })
    for (let i = 0; i < 10; i++) await db.put(`k${i}`, 'v', { w: 1, timeoutMs: 5000 })
    await waitCaughtUp(master, [replica])
    const replicaId = (await statusOf(replica)).nodeId
    await replica.kill('SIGSTOP')

    // A second link says it is the same replica, resumes at the head and acks far beyond it.
    const m = await statusOf(master)
    const impostor = await RawReplicationLink.open(master.address)
    links.push(impostor)
    impostor.send({
      type: 'hello',
      nodeId: replicaId,
      addr: '127.0.0.1:1',
      history: m.history,
      lastSeq: m.seq,
      ...NO_TOKEN,
    })
    await impostor.received('continue')
    impostor.send({ type: 'ack', seq: 1e12 })
    await waitFor(
      async () =>
        (await statusOf(master)).replicas.filter((r) => r.nodeId === replicaId && r.ackedSeq > 0).length === 2,
      { what: "both links' acks to be taken" },
    )
    // Two links, one replica: w:2 cannot be met by them.
    await expectTimeout(db.put('two', 'v', { w: 2, timeoutMs: 500 }))
    for (const r of (await statusOf(master)).replicas) expect(r.ackedSeq).toBeLessThanOrEqual(m.seq + 1)

    // Once the impostor leaves, only the real (stopped) replica's acks are left.
    await impostor.close()
    await waitFor(async () => (await statusOf(master)).replicas.length === 1, { what: 'the impostor link to go' })
    await expectTimeout(db.put('after', 'v', { w: 1, timeoutMs: 500 }))

    await replica.kill('SIGCONT')
    await db.put('resumed', 'v', { w: 1, timeoutMs: 5000 })
  })

  it('a returning old master acks nothing while it full-syncs, and the new master never counts past its head', async () => {
    // Manual mode: N was a replica of O, is promoted (epoch 2 at seq 31)
    // while O goes on alone in epoch 1 to seq 230. O then follows N and
    // must roll back 31..230 and take a full sync. Until it holds N's
    // entries, N's w:1 writes have no replica.
    const old = await cluster.start()
    const next = await cluster.start(['--replicaof', old.address])
    const toOld = await cluster.client({ servers: [old.address], direct: true })
    const toNext = await cluster.client({ servers: [next.address], direct: true })
    for (let i = 0; i < 30; i++) await toOld.put(`a${i}`, 'v', { w: 1, timeoutMs: 5000 })
    await toNext.replicaof(null)
    for (let i = 0; i < 200; i++) await toOld.put(`b${i}`, 'v')
    expect((await statusOf(old)).seq).toBe(230)
    const nextSeq = (await statusOf(next)).seq
    expect(nextSeq).toBe(30)

    // O follows N through a proxy that answers the handshake and then holds
    // N's stream back: O's full sync has begun and does not progress.
    const proxy = await new FaultProxy('127.0.0.1', next.port).start()
    proxy.holdStreams('/replication')
    await toOld.replicaof(proxy.address)
    const oldId = (await statusOf(old)).nodeId
    await waitFor(async () => (await statusOf(next)).replicas.some((r) => r.nodeId === oldId), {
      what: 'O to say hello to N',
    })
    await expectTimeout(toNext.put('during', 'v', { w: 1, timeoutMs: 1000 }))
    let status = await statusOf(next)
    for (const r of status.replicas) expect(r.ackedSeq).toBeLessThanOrEqual(status.seq)

    // Once O has the data, its acks count again, but never past N's head.
    proxy.release()
    await waitCaughtUp(next, [old])
    await toNext.put('synced', 'v', { w: 1, timeoutMs: 5000 })
    status = await statusOf(next)
    for (const r of status.replicas) expect(r.ackedSeq).toBeLessThanOrEqual(status.seq)
    const rollbacks = (await statusOf(old)).rollbacks as { entries: number }
    expect(rollbacks.entries).toBe(200)

    // And with O stopped, nothing acknowledges N's next write.
    await old.kill('SIGSTOP')
    await expectTimeout(toNext.put('stopped', 'v', { w: 1, timeoutMs: 800 }))
    await old.kill('SIGCONT')
    await proxy.close()
  })
})
