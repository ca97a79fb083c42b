import { randomBytes } from 'node:crypto'
import { TandemClient } from '@tandem/client'
import { encodeFrame } from '@tandem/protocol'
import { encodeEntry, OP_PUT } from '@tandem/server'
import { afterEach, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { type LinkMessage, startHandPusher } from './hand-pusher.js'
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
    const origin = randomBytes(16).toString('hex')
    const acks: LinkMessage[] = []
    const node = await startHandPusher({
      origin,
      prefix: 'tandem-mm-joined-',
      cleanups,
      onMessage: (message) => {
        if (message.type === 'ack') acks.push(message)
      },
      // Each entry writes key k (the last one written wins) and a key of its own.
      burst: (ws) => {
        const hlc = Date.now() * 1024
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
      },
    })

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
