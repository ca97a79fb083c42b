import { EventEmitter } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DATA_FORMAT, decodeFrame, encodeFrame } from '@tandem/protocol'
import { afterEach, describe, expect, it } from 'vitest'
import type { WebSocket } from 'ws'
import { OP_PUT } from '../storage/log-entry.js'
import { Store } from '../storage/store.js'
import { systemClock } from '../util/clock.js'
import { silentLogger } from '../util/logger.js'
import { AckTracker } from './acks.js'
import { DEFAULT_UPSTREAM_OPTIONS, Upstream } from './upstream.js'

/**
 * A downstream's socket whose peer reads nothing until told to: frames are
 * taken, and their send callbacks (the bytes reaching the kernel) held
 * until flush(). A frame's bytes are copied when its callback runs, as the
 * kernel takes them: the sender may reuse its memory after that (see
 * FrameSlabs), so what is checked is what the socket wrote.
 */
class StuckSocket extends EventEmitter {
  readonly OPEN = 1
  readyState = 1
  /** Bytes handed to send() and not yet flushed. */
  unflushed = 0
  readonly frames: Buffer[] = []
  private held: (() => void)[] = []

  send(frame: Buffer, done?: () => void): void {
    const at = this.frames.push(frame) - 1
    this.unflushed += frame.length
    this.held.push(() => {
      this.frames[at] = Buffer.from(frame)
      this.unflushed -= frame.length
      done?.()
    })
  }

  flush(): void {
    for (const done of this.held.splice(0)) done()
  }

  pause(): void {}
  resume(): void {}
  close(): void {
    this.readyState = 3
    this.emit('close')
  }
  terminate(): void {
    this.close()
  }
}

/**
 * Waits until `check` holds (the feed reads LevelDB on its thread pool
 * during the handshake), or fails after 10 s. (The server's tests cannot
 * use the fixtures' waitFor: the bench depends on the server.)
 */
async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

describe('upstream backpressure', () => {
  it('stops feeding a downstream that reads nothing at its high-water mark, and resumes on drain', async () => {
    // Rule: a feed stops reading the log while its socket holds more than
    // highWaterBytes unflushed, so a downstream too slow to keep up costs
    // the upstream a bounded buffer, not the whole stream.
    const dir = mkdtempSync(join(tmpdir(), 'tandem-upstream-test-'))
    const store = await Store.open({ dataDir: dir, sync: 'none', logRetention: 100_000 })
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    cleanups.push(() => store.close())
    await store.write([[OP_PUT, 'first', 'x']])

    const highWaterBytes = 64 * 1024
    const batchBytes = 16 * 1024
    const upstream = new Upstream(
      {
        store,
        logger: silentLogger,
        acks: new AckTracker(),
        masterAddress: () => null,
        respAddress: () => null,
        countSync() {},
        onNewerEpoch() {},
        clock: systemClock,
      },
      { ...DEFAULT_UPSTREAM_OPTIONS, highWaterBytes, batchBytes, heartbeatMs: 60_000, replTimeoutMs: 60_000 },
    )
    cleanups.push(() => upstream.close())
    const ws = new StuckSocket()
    upstream.accept(ws as unknown as WebSocket)
    // Neither end has a token: the hello's proof is null (see peer-auth.ts).
    const nonce = Buffer.alloc(32, 1)
    const hello = {
      type: 'hello',
      nodeId: 'replica',
      addr: '127.0.0.1:1',
      history: store.history,
      lastSeq: 1,
      format: DATA_FORMAT,
      nonce,
      proof: null,
    }
    ws.emit('message', encodeFrame(hello), true)
    await until(() => ws.frames.length >= 3, 'the handshake')
    const handshake = ws.frames.slice(0, 3).map((f) => (decodeFrame(f) as { type: string }).type)
    expect(handshake).toEqual(['challenge', 'welcome', 'continue'])

    // 200 writes of 4 KiB: 800 KiB for a downstream that reads nothing.
    const value = 'v'.repeat(4096)
    const writes = 200
    await Promise.all(Array.from({ length: writes }, (_, i) => store.write([[OP_PUT, `k${i}`, value]])))
    await until(() => ws.unflushed >= highWaterBytes, 'the feed to reach its high-water mark')
    // At most the mark plus the one frame that crossed it (a frame stops
    // after the entry that takes it past batchBytes).
    const bound = highWaterBytes + batchBytes + value.length + 1024
    expect(ws.unflushed).toBeLessThanOrEqual(bound)

    // Each time the peer reads what it was sent, the feed sends more, never
    // past the bound, until the downstream has every entry once, in order.
    const sent = () =>
      ws.frames
        .map((f) => decodeFrame(f) as { type: string; entries?: unknown[] })
        .reduce((n, m) => n + (m.type === 'entries' ? (m.entries?.length ?? 0) : 0), 0)
    while (sent() < writes) {
      ws.flush()
      await until(() => ws.unflushed > 0 || sent() === writes, 'the feed to send more once drained')
      expect(ws.unflushed).toBeLessThanOrEqual(bound)
    }
    expect(sent()).toBe(writes)
  })
})
