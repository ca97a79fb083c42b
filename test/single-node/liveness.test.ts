import { TandemClient } from '@tandem/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type NodeProcess, startNode } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'

/**
 * The SDK's liveness check: a node that answers nothing, not even a
 * WebSocket ping, while requests wait for it is taken as gone; a node that
 * is merely slow to answer (a w:N write waiting for replicas) answers the
 * ping and keeps its connection.
 */
describe('SDK liveness check against a real node', () => {
  const dir = tempDir()
  let node: NodeProcess
  let db: TandemClient

  beforeAll(async () => {
    node = await startNode(dir.path)
    db = await TandemClient.connect({ servers: [node.address], livenessTimeoutMs: 1000, timeoutMs: 60_000 })
  })
  afterAll(async () => {
    await db?.close()
    await node?.stop()
    dir.remove()
  })

  it('keeps a node that is silent but alive: a w:1 write with no replica ends in the server TIMEOUT', async () => {
    // The node holds the reply for 3 s (three liveness periods) and answers pings meanwhile.
    const outcome = await db.put('waits', 'v', { w: 1, timeoutMs: 3000 }).then(
      () => 'ACKED',
      (err: { code?: string; message: string }) => `${err.code}: ${err.message}`,
    )
    expect(outcome).toMatch(/^TIMEOUT: /)
    expect(outcome).not.toMatch(/ping/)
    expect(await db.get('waits')).toBe('v')
  })

  it('keeps a node whose reply came while this process was stalled: the reply sitting in the socket counts', async () => {
    // The node answers TIMEOUT after 1.5 s; this process stalls from 50 ms
    // to 2.05 s, so the reply sits unread when the liveness check next runs
    // (before the socket is read) and finds 2 s of silence. The client's own
    // call timer is 60 s + 1 s away.
    const outcome = db.put('stalled', 'v', { w: 1, timeoutMs: 1500 }).then(
      () => 'ACKED',
      (err: { code?: string; message: string }) => `${err.code}: ${err.message}`,
    )
    await new Promise((resolve) => setTimeout(resolve, 50))
    await new Promise<void>((resolve) =>
      setImmediate(() => {
        const until = performance.now() + 2000
        while (performance.now() < until) {
          // A stalled event loop, as a long synchronous task or a paused VM would leave it.
        }
        resolve()
      }),
    )
    expect(await outcome).toMatch(/^TIMEOUT: write \d+ is committed on this node but reached 0 of 1 replicas/)
  })

  it('gives up on a paused node: the write in flight fails UNCERTAIN long before its own timeout, and the client reconnects after SIGCONT', async () => {
    await db.put('before', '1')
    await node.kill('SIGSTOP')
    // timeoutMs 60 s and the test's own limit of 30 s: only the liveness check can end this write.
    const outcome = await db.put('during', '2').then(
      () => 'ACKED',
      (err: { code?: string; message: string }) => `${err.code}: ${err.message}`,
    )
    expect(outcome).toMatch(/^UNCERTAIN: .*answered nothing, not even a ping sent \d+ ms ago/)
    await node.kill('SIGCONT')
    await db.put('after', '3')
    expect(await db.get('before')).toBe('1')
    expect(await db.get('after')).toBe('3')
  }, 30_000)

  it('gives up on a paused node even while this process is busy most of the time', async () => {
    await node.kill('SIGSTOP')
    try {
      let outcome: string | null = null
      db.put('busy-client', 'x').then(
        () => {
          outcome = 'ACKED'
        },
        (err: { code?: string }) => {
          outcome = err.code ?? 'ERROR'
        },
      )
      // Busy 560 ms, free for one turn, over and over: every liveness check
      // runs late. Bounded by the test's own limit.
      while (outcome === null) {
        await new Promise<void>((resolve) =>
          setImmediate(() => {
            const until = performance.now() + 560
            while (performance.now() < until) {
              // busy
            }
            resolve()
          }),
        )
        await new Promise((resolve) => setTimeout(resolve, 1))
      }
      expect(outcome).toBe('UNCERTAIN')
    } finally {
      await node.kill('SIGCONT')
    }
  }, 30_000)
})

describe('SDK liveness check against a node that holds back its socket', () => {
  const dir = tempDir()
  let node: NodeProcess
  let db: TandemClient

  beforeAll(async () => {
    // 16 requests in flight per connection: the node stops reading the
    // socket beyond that, so the client's own pings cannot get through.
    node = await startNode(dir.path, ['--max-in-flight', '16'])
    db = await TandemClient.connect({ servers: [node.address], livenessTimeoutMs: 1000, timeoutMs: 60_000 })
  })
  afterAll(async () => {
    await db?.close()
    await node?.stop()
    dir.remove()
  })

  it('keeps it while it owes replies: every w:1 write ends in the server TIMEOUT, none UNCERTAIN', async () => {
    // 40 writes on one connection, each held 2.5 s by the node: 16 in flight,
    // the rest unread in the paused socket, then 16 more, and so on.
    const outcomes = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        db.put(`held-${i}`, 'v', { w: 1, timeoutMs: 2500 }).then(
          () => 'ACKED',
          (err: { code?: string }) => err.code ?? 'ERROR',
        ),
      ),
    )
    expect(outcomes).toEqual(Array.from({ length: 40 }, () => 'TIMEOUT'))
  }, 30_000)
})
