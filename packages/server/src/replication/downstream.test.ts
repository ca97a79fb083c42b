import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeFrame, encodeFrame } from '@tandem/protocol'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocketServer } from 'ws'
import { encodeEntry, OP_PUT } from '../storage/log-entry.js'
import { logOrderWins } from '../storage/resolver.js'
import { packChunk } from '../storage/snapshot-chunk.js'
import { Store } from '../storage/store.js'
import { DEFAULT_TUNING } from '../tuning.js'
import { systemClock } from '../util/clock.js'
import { silentLogger } from '../util/logger.js'
import { Downstream, type DownstreamHost } from './downstream.js'

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

/** Waits for `check` to hold, polling, or fails after `ms`. */
async function waitFor(check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 5))
  }
}

/** A host for a Downstream of `store` that does nothing with what it is told. */
function hostOf(store: Store): DownstreamHost {
  return {
    store,
    logger: silentLogger,
    clock: systemClock,
    tuning: DEFAULT_TUNING,
    address: '127.0.0.1:1',
    respAddress: null,
    maxFrameBytes: 1 << 20,
    silenceTimeoutMs: 10_000,
    countSync() {},
    onRollback() {},
    onMaster() {},
    onFullSyncStart() {},
    resolverFor: () => logOrderWins,
  }
}

describe('downstream link', () => {
  it('does not finish a full sync after one of its chunks was refused: the next link asks for a full sync again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tandem-downstream-test-'))
    const store = await Store.open({ dataDir: dir, sync: 'none', logRetention: 1000 })
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    cleanups.push(() => store.close())

    // A scripted upstream: on the first link, a full sync whose second chunk
    // says it holds 2 records but holds 1, then snapshotEnd.
    const hellos: number[] = []
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/replication' })
    cleanups.push(() => new Promise<void>((r) => wss.close(() => r())))
    await new Promise((r) => wss.once('listening', r))
    const record = (s: string) => Buffer.from([0, ...Buffer.from(s)])
    wss.on('connection', (ws) => {
      ws.send(encodeFrame({ type: 'challenge', nonce: Buffer.alloc(32, 7) }))
      ws.on('message', (data) => {
        const m = decodeFrame(data as Buffer) as { type: string; lastSeq: number }
        if (m.type !== 'hello') return
        hellos.push(m.lastSeq)
        if (hellos.length > 1) return
        // Neither end has a token: the welcome carries no proof.
        ws.send(encodeFrame({ type: 'welcome', proof: null }))
        const history = [{ epoch: 1, startSeq: 1, by: 'upstream' }]
        ws.send(encodeFrame({ type: 'fullsync', seq: 5, history, master: null, rollbackAfter: null }))
        ws.send(encodeFrame({ type: 'snapshot', chunk: packChunk([[Buffer.from('a'), record('1')]], 0), count: 1 }))
        ws.send(encodeFrame({ type: 'snapshot', chunk: packChunk([[Buffer.from('b'), record('2')]], 0), count: 2 }))
        ws.send(encodeFrame({ type: 'snapshotEnd', seq: 5 }))
      })
    })
    const host = hostOf(store)
    const { port } = wss.address() as { port: number }
    const downstream = new Downstream(`127.0.0.1:${port}`, host)
    cleanups.push(() => downstream.stop())

    await waitFor(() => hellos.length >= 2)
    expect(hellos).toEqual([0, 0])
    expect(store.lastSeq).toBe(0)
    expect(await store.get('b')).toBeUndefined()
  })
  it('acks once for the frames that one commit applies, never past what it holds', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tandem-downstream-test-'))
    const store = await Store.open({ dataDir: dir, sync: 'always', logRetention: 1000 })
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    cleanups.push(() => store.close())

    // A scripted upstream: a partial resync from seq 1, then 300 frames of
    // one entry each, written in one burst.
    const FRAMES = 300
    const history = [{ epoch: 1, startSeq: 1, by: 'upstream' }]
    const acks: { seq: number; held: number }[] = []
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/replication' })
    cleanups.push(() => new Promise<void>((r) => wss.close(() => r())))
    await new Promise((r) => wss.once('listening', r))
    wss.on('connection', (ws) => {
      ws.send(encodeFrame({ type: 'challenge', nonce: Buffer.alloc(32, 7) }))
      ws.on('message', (data) => {
        const m = decodeFrame(data as Buffer) as { type: string; seq: number }
        // What the store holds when the ack arrives: an ack never says more.
        if (m.type === 'ack') acks.push({ seq: m.seq, held: store.lastSeq })
        if (m.type !== 'hello') return
        ws.send(encodeFrame({ type: 'welcome', proof: null }))
        ws.send(encodeFrame({ type: 'continue', fromSeq: 1, history, master: null }))
        for (let seq = 1; seq <= FRAMES; seq++) {
          const entry = encodeEntry({
            seq,
            epoch: 1,
            origin: 'upstream',
            originSeq: seq,
            hlc: seq,
            ops: [[OP_PUT, `k${seq}`, `v${seq}`]],
          })
          ws.send(encodeFrame({ type: 'entries', entries: [entry], head: FRAMES }))
        }
      })
    })
    const { port } = wss.address() as { port: number }
    const downstream = new Downstream(`127.0.0.1:${port}`, {
      ...hostOf(store),
      tuning: { ...DEFAULT_TUNING, replAckIntervalMs: 60_000 },
    })
    cleanups.push(() => downstream.stop())

    await waitFor(() => acks.some((a) => a.seq === FRAMES))
    expect(await store.get(`k${FRAMES}`)).toBeDefined()
    const commits = store.commitStats.groups
    // The ack of `continue`, then one for each commit at most, not one a frame.
    expect(acks.length).toBeLessThanOrEqual(commits + 1)
    expect(acks.length).toBeLessThan(FRAMES / 2)
    for (const a of acks) expect(a.seq).toBeLessThanOrEqual(a.held)
    for (let i = 1; i < acks.length; i++) expect(acks[i].seq).toBeGreaterThanOrEqual(acks[i - 1].seq)
  })
})
