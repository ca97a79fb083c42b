import { randomBytes } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { TandemClient } from '@tandem/client'
import { decodeFrame, encodeFrame } from '@tandem/protocol'
import { encodeEntry, OP_PUT } from '@tandem/server'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocketServer } from 'ws'
import { type NodeProcess, startNode } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'
import { statusOf } from './peers.js'

/**
 * Rule: entries frames that reach a peer link together join the one queued
 * before them and go to the group committer as one write, in their order;
 * every entry is applied once, and the acks still count every frame applied
 * (`frames`, which the pusher's window counts). A pusher written by hand
 * sends 300 frames of one entry each in one burst: before, each was a task
 * in the link's inbox and a write of its own in the node's committer.
 */
describe('multi-master: entries frames that arrive together', () => {
  const cleanups: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })

  it('are one write in the committer, every entry applied in order and every frame acked', async () => {
    const frames = 300
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    cleanups.push(() => new Promise<void>((resolve) => wss.close(() => resolve())))
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()))
    const origin = randomBytes(16).toString('hex')
    const acks: { vv: Record<string, number>; frames?: number }[] = []
    let sent = false
    wss.on('connection', (ws) => {
      ws.on('error', () => {})
      ws.send(encodeFrame({ type: 'challenge', nonce: randomBytes(32) }))
      ws.on('message', (data) => {
        const message = decodeFrame(data as Buffer) as { type: string; vv: Record<string, number>; frames?: number }
        if (message.type === 'ack') acks.push(message)
        if (message.type !== 'hello' || sent) return
        sent = true
        ws.send(encodeFrame({ type: 'welcome', proof: null }))
        ws.send(
          encodeFrame({
            type: 'continue',
            fromSeq: 1,
            nodeId: 'fake-pusher',
            origin,
            vv: {},
            time: Date.now(),
            incarnation: 'fake-run',
          }),
        )
        // Each entry writes key k (the last one written wins) and a key of its own.
        const hlc = Date.now() * 1024
        const socket = (ws as unknown as { _socket: import('node:net').Socket })._socket
        socket.cork()
        for (let i = 1; i <= frames; i++) {
          const entry = encodeEntry({
            seq: i,
            epoch: 0,
            origin,
            originSeq: i,
            hlc: hlc + i,
            ops: [
              [OP_PUT, 'k', `v${i}`],
              [OP_PUT, `k${i}`, `v${i}`],
            ],
          })
          ws.send(encodeFrame({ type: 'entries', entries: [entry], head: i, vv: { [origin]: i } }))
        }
        socket.uncork()
      })
    })
    const dir = tempDir('tandem-mm-joined-')
    cleanups.push(() => dir.remove())
    const port = (wss.address() as AddressInfo).port
    const node: NodeProcess = await startNode(dir.path, [
      '--mode',
      'multi',
      '--conflict',
      'lww',
      '--peers',
      `127.0.0.1:${port}`,
    ])
    cleanups.push(() => node.stop())

    await waitFor(async () => (await statusOf(node)).multi!.vv[origin] === frames, {
      what: 'the node to hold every entry the pusher sent',
      timeoutMs: 60_000,
    })
    await waitFor(() => acks.some((a) => a.frames === frames), {
      what: 'an ack that counts every frame applied',
      timeoutMs: 10_000,
    })
    const status = await statusOf(node)
    expect(status.multi!.peers[0].link).toBe('streaming')
    expect(status.multi!.duplicates).toBe(0)
    // Most joined the frame queued before them (at most linkInboxDepth, 64, a write).
    expect(status.multi!.peers[0].joinedFrames).toBeGreaterThanOrEqual(frames / 2)
    // No ack counts more frames than were sent, nor goes back.
    for (let i = 0; i < acks.length; i++) {
      expect(acks[i].frames ?? 0).toBeLessThanOrEqual(frames)
      if (i > 0) expect(acks[i].frames ?? 0).toBeGreaterThanOrEqual(acks[i - 1].frames ?? 0)
    }
    const db = await TandemClient.connect({ servers: [node.address], direct: true })
    cleanups.push(() => db.close())
    // Applied in order: the last entry's value of k stands, and every entry's own key is there.
    expect(await db.get('k')).toBe(`v${frames}`)
    expect(await db.get('k1')).toBe('v1')
    expect(await db.get(`k${frames}`)).toBe(`v${frames}`)
  })
})
