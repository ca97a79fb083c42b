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

  it('gives up on a paused node: the write in flight fails UNCERTAIN long before its own timeout, and the client reconnects after SIGCONT', async () => {
    await db.put('before', '1')
    await node.kill('SIGSTOP')
    // timeoutMs 60 s and the test's own limit of 30 s: only the liveness check can end this write.
    const outcome = await db.put('during', '2').then(
      () => 'ACKED',
      (err: { code?: string; message: string }) => `${err.code}: ${err.message}`,
    )
    expect(outcome).toMatch(/^UNCERTAIN: .*answered nothing, not even a ping/)
    await node.kill('SIGCONT')
    await db.put('after', '3')
    expect(await db.get('before')).toBe('1')
    expect(await db.get('after')).toBe('3')
  }, 30_000)
})
