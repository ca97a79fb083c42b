import { randomBytes } from 'node:crypto'
import { encodeFrame } from '@tandem/protocol'
import { afterEach, describe, expect, it } from 'vitest'
import type { WebSocket } from 'ws'
import { waitFor } from '../helpers/wait.js'
import { type LinkMessage, startHandPusher } from './hand-pusher.js'
import { statusOf } from './peers.js'

/**
 * Rule: a node compares a peer's digest with its own only when both are of
 * the same hash (heartbeats say which: `digestHash`; a build that does not
 * say hashes with SHA-256, 1). A pusher written by hand heartbeats the
 * node's own version vector with a digest that is not the node's: of this
 * build's hash that is divergence (digestAlarm), of the older one it is a
 * peer in a rolling upgrade, shown as such in status and no alarm.
 */
describe("multi-master: a peer's digest of another hash", () => {
  const cleanups: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })

  for (const [what, digestHash] of [
    ['an older build (heartbeats name no hash)', undefined],
    ['this build (digestHash 2)', 2],
  ] as const) {
    it(`from ${what}: ${digestHash === undefined ? 'not compared, no alarm' : 'compared, alarm'}`, async () => {
      const origin = randomBytes(16).toString('hex')
      const acks: LinkMessage[] = []
      let socket: WebSocket | null = null
      const node = await startHandPusher({
        origin,
        prefix: 'tandem-mm-digest-hash-',
        cleanups,
        onMessage: (message) => {
          if (message.type === 'ack') acks.push(message)
        },
        burst: (ws) => {
          socket = ws
        },
      })
      await waitFor(() => acks.length > 0 && socket !== null, { what: 'an ack from the node', timeoutMs: 20_000 })
      const vv = acks[acks.length - 1].vv ?? {}
      const digest = 'ffffffffffffffff'
      const timer = setInterval(() => {
        const heartbeat = { type: 'heartbeat', time: Date.now(), vv, digest, rows: {} }
        socket?.send(encodeFrame(digestHash === undefined ? heartbeat : { ...heartbeat, digestHash }))
      }, 100)
      cleanups.push(() => clearInterval(timer))

      // The heartbeat's digest is taken, and compared or not, in one step.
      await waitFor(async () => (await statusOf(node)).multi?.peers[0]?.digest === digest, {
        what: "the node to take the pusher's heartbeat",
        timeoutMs: 20_000,
      })
      const status = await statusOf(node)
      const multi = status.multi
      if (!multi) throw new Error('not a multi-master status')
      expect(multi.digestHash).toBe(2)
      expect(multi.peers[0].digestHash).toBe(digestHash ?? 1)
      expect(multi.digest).not.toBe(digest)
      expect(multi.vv).toEqual(vv)
      if (digestHash === undefined) {
        expect(multi.digestAlarm).toBeNull()
      } else {
        expect(multi.digestAlarm).toContain(digest)
      }
    })
  }
})
