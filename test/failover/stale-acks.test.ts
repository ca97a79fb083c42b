import { TandemClient, TandemError } from '@tandem/client'
import { afterAll, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { FailoverGroup, statusOf } from './group.js'

describe('acknowledgements after a fail-over', () => {
  const group = new FailoverGroup()
  const clients: TandemClient[] = []
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()))
    await group.teardown()
  })

  it("a returning old master with a divergent tail acknowledges none of the new master's writes while it full-syncs", async () => {
    // Rules 2 and 5 with the acks they rest on: a w:'majority' write is
    // acknowledged only once a majority of the group holds it. The old
    // master comes back holding a tail the new history dropped; until its
    // full sync has finished, it holds none of the new master's entries and
    // must ack none of them, whatever its own log's end says.
    await group.start({ size: 3, args: ['--failover-timeout', '2000'] })
    const old = await group.waitForMaster()
    const a = group.index(old)
    const db = await group.client()
    for (let i = 0; i < 20; i++) await db.put(`base${i}`, 'v', { w: 'majority', timeoutMs: 5000 })

    // Cut off, the old master takes writes until its lease lapses: a tail nobody else has.
    // (Connected first: the lease leaves little time once the links are cut.)
    const direct = await TandemClient.connect({ servers: [old.address], direct: true, timeoutMs: 2000 })
    clients.push(direct)
    group.isolate(a)
    // A put that timed out on the client may still have been taken: the
    // rollback holds every acknowledged one, and may hold such a put too.
    const acknowledged = new Set<string>()
    let sent = 0
    for (;;) {
      const keys = Array.from({ length: 20 }, (_, i) => `tail${sent + i}`)
      sent += keys.length
      const ok = await Promise.all(
        keys.map((key) =>
          direct.put(key, 'v').then(
            () => acknowledged.add(key),
            () => false,
          ),
        ),
      )
      if (!ok.every(Boolean)) break
    }
    const tail = acknowledged.size
    expect(tail).toBeGreaterThan(5)
    const oldSeq = (await statusOf(old)).seq

    const others = group.nodes.filter((_, i) => i !== a)
    const next = await group.waitForMaster(others, 'a new master among the other two')
    const m = group.index(next)
    const third = others.find((n) => n !== next)!
    await third.kill('SIGKILL')
    expect((await statusOf(next)).seq).toBeLessThan(oldSeq - 3)

    // The old master rejoins; its full sync from the new master begins and is held up.
    group.proxies[a][m].holdStreams('/replication')
    group.healAll()
    const oldId = (await statusOf(old)).nodeId
    await waitFor(async () => (await statusOf(next)).replicas.some((r) => r.nodeId === oldId), {
      what: 'the old master to say hello to the new one',
    })
    const toNext = await TandemClient.connect({ servers: [next.address], direct: true, timeoutMs: 5000 })
    clients.push(toNext)
    // Seqs the old master's divergent tail also has: its own lastSeq is past them.
    for (let i = 0; i < 3; i++) {
      const err = await toNext.put(`during${i}`, 'v', { w: 'majority', timeoutMs: 700 }).then(
        () => null,
        (e: unknown) => e,
      )
      expect(err, `write ${i} was acknowledged by a majority that does not hold it`).toBeInstanceOf(TandemError)
      expect((err as TandemError).code).toBe('TIMEOUT')
    }
    const status = await statusOf(next)
    for (const r of status.replicas) expect(r.ackedSeq).toBeLessThanOrEqual(status.seq)

    // Once the full sync goes through, the old master holds the writes and acks them.
    group.proxies[a][m].release()
    await waitFor(async () => (await statusOf(old)).seq === (await statusOf(next)).seq, {
      what: 'the old master to catch up',
    })
    await toNext.put('synced', 'v', { w: 'majority', timeoutMs: 5000 })
    expect(await toNext.get('during2')).toBe('v')
    const rolledBack = group.rollbackEntries(a).flatMap((e) => e.ops.map((op) => op.key))
    expect(rolledBack.filter((key) => !key.startsWith('tail'))).toEqual([])
    expect([...acknowledged].filter((key) => !rolledBack.includes(key))).toEqual([])
    expect(new Set(rolledBack).size).toBe(rolledBack.length)
  })
})
