import { TandemClient, type TandemError, type Topology } from '@tandem/client'
import { afterAll, describe, expect, it } from 'vitest'
import { FailoverGroup, statusOf } from './failover/group.js'
import { startNode } from './helpers/node-process.js'
import { tempDir } from './helpers/temp-dir.js'
import { waitFor } from './helpers/wait.js'

describe('TandemClient events', () => {
  const group = new FailoverGroup()
  afterAll(() => group.teardown())

  // An application sees a fail-over: the old master's connection lost,
  // then a topology event naming the new master with the new epoch.
  it('reports disconnect and a topology event with the new master and epoch across a fail-over', async () => {
    await group.start({ size: 3 })
    const db = await TandemClient.connect({ servers: group.nodes.map((n) => n.address), timeoutMs: 5000 })
    const topologies: Topology[] = []
    const reconnecting: string[] = []
    const disconnects: [string, TandemError][] = []
    const errors: TandemError[] = []
    db.on('topology', (t) => topologies.push(t))
    db.on('reconnecting', (a) => reconnecting.push(a))
    db.on('disconnect', (a, err) => disconnects.push([a, err]))
    db.on('error', (err) => errors.push(err))
    try {
      await db.put('before', '1')
      // The master to kill is the one the client has an event for, in the
      // epoch its status shows: on a loaded machine a second election can
      // follow the group's start, so the first master found may not last.
      const { master, first } = await waitFor(
        async () => {
          await db.put('before', '1').catch(() => {})
          const master = await group.waitForMaster()
          const first = await statusOf(master)
          const seen = topologies.some((t) => t.master === master.address && t.epoch === first.epoch)
          return seen ? { master, first } : undefined
        },
        { what: 'a topology event for the current master in its status epoch', timeoutMs: 30_000 },
      )

      await master.kill('SIGKILL')
      // Writes go on until the new master takes one.
      await waitFor(
        () =>
          db.put('after', '2').then(
            () => true,
            () => false,
          ),
        { what: 'a write on the new master', timeoutMs: 30_000 },
      )
      const survivor = await group.waitForMaster(group.nodes.filter((n) => n !== master))
      const now = await statusOf(survivor)
      expect(now.epoch).toBeGreaterThan(first.epoch)
      // A loaded machine can hold a second election after the first (the
      // survivor again, in a later epoch): wait for the event that names the
      // survivor in the epoch its status shows, whichever that is by then.
      const news = await waitFor(
        async () => {
          await db.put('probe', 'x').catch(() => {})
          const current = await statusOf(survivor)
          return topologies.find((t) => t.master === survivor.address && t.epoch === current.epoch)
        },
        { what: 'a topology event naming the new master in its status epoch', timeoutMs: 30_000 },
      )
      expect(news.epoch).toBeGreaterThanOrEqual(now.epoch)
      // Each event names the one before it: after the kill the chain goes on
      // from the killed master, through any master of an epoch in between
      // (a second election when the first winner lost its lease), to the survivor.
      for (const [i, t] of topologies.entries()) {
        const before = topologies[i - 1]
        expect(t.previous).toEqual(before ? { master: before.master, epoch: before.epoch } : null)
      }
      const afterKill = topologies.find((t) => t.previous?.master === master.address)
      expect(afterKill?.previous).toEqual({ master: master.address, epoch: first.epoch })
      expect(afterKill?.epoch).toBeGreaterThan(first.epoch)
      expect(disconnects.map(([a]) => a)).toContain(master.address)
      // Looking for the master, the client tried the lost node again.
      expect(reconnecting).toContain(master.address)
      expect(errors.length).toBeGreaterThan(0)
      expect(errors.every((e) => typeof e.code === 'string')).toBe(true)
    } finally {
      await db.close()
    }
  })
})

describe('TandemClient close', () => {
  // The node is stopped (SIGSTOP) while 100 calls wait for it: they stay in
  // flight until it is continued. A draining close waits for all of them.
  it('close({ drain: true }) resolves all of 100 calls in flight, then closes; new calls fail with CLOSED', async () => {
    const dir = tempDir()
    const node = await startNode(dir.path)
    // No liveness timeout: a stopped node must not be taken for a lost one here.
    const db = await TandemClient.connect({ servers: [node.address], livenessTimeoutMs: 0, timeoutMs: 60_000 })
    try {
      await db.put('seed', 'x')
      process.kill(node.pid as number, 'SIGSTOP')
      let settled = 0
      const calls = Array.from({ length: 100 }, (_, i) => {
        const call = i % 2 === 0 ? db.put(`k${i}`, `v${i}`) : db.get('seed')
        return call.finally(() => settled++)
      })
      const closed = db.close({ drain: true })
      expect(db.state).toBe('closing')
      await expect(db.get('seed')).rejects.toMatchObject({ code: 'CLOSED' })
      expect(settled).toBe(0)
      process.kill(node.pid as number, 'SIGCONT')
      const results = await Promise.allSettled(calls)
      expect(results.filter((r) => r.status === 'rejected')).toEqual([])
      await closed
      expect(db.state).toBe('closed')
      const check = await TandemClient.connect({ servers: [node.address] })
      expect(await check.mget(['k0', 'k98'])).toEqual(['v0', 'v98'])
      await check.close()
    } finally {
      process.kill(node.pid as number, 'SIGCONT')
      await db.close()
      await node.stop()
      dir.remove()
    }
  })

  it('close() without drain fails calls in flight with CLOSED; Symbol.asyncDispose drains', async () => {
    const dir = tempDir()
    const node = await startNode(dir.path)
    try {
      const db = await TandemClient.connect({ servers: [node.address], livenessTimeoutMs: 0 })
      process.kill(node.pid as number, 'SIGSTOP')
      const calls = Array.from({ length: 10 }, () => db.get('k'))
      await db.close()
      for (const r of await Promise.allSettled(calls))
        expect(r).toMatchObject({ status: 'rejected', reason: { code: 'CLOSED' } })
      process.kill(node.pid as number, 'SIGCONT')

      const disposed = await TandemClient.connect(`tandem://${node.address}?livenessTimeoutMs=0`)
      process.kill(node.pid as number, 'SIGSTOP')
      const put = disposed.put('disposed', 'yes')
      const done = disposed[Symbol.asyncDispose]()
      process.kill(node.pid as number, 'SIGCONT')
      await expect(put).resolves.toMatchObject({ seq: expect.any(Number) })
      await done
      expect(disposed.state).toBe('closed')
    } finally {
      process.kill(node.pid as number, 'SIGCONT')
      await node.stop()
      dir.remove()
    }
  })
})
