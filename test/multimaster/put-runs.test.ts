import { TandemError, type WriteResult } from '@tandem/client'
import { afterEach, describe, expect, it } from 'vitest'
import { RawClient } from '../single-node/raw-client.js'
import { PeerGroup } from './peers.js'

/**
 * Plain puts that reach a multi-master node together (the SDK sends
 * concurrent calls in one frame) are submitted to its store as one run,
 * each still a write of its own: each put answers its own identity (this
 * node's origin, a counter and an HLC stamp of its own, and its seq), in
 * the order the calls were made, deletes among them keeping their place,
 * and the peer ends with the same last value of every key.
 */
describe('multi-master puts sent together (lww)', () => {
  let group: PeerGroup
  afterEach(() => group?.teardown())

  it('each answers its own identity, in the order they were sent, with deletes among them', async () => {
    group = await new PeerGroup().start({ size: 2, conflict: 'lww' })
    const origin = (await group.status(0)).multi?.origin
    const db = await group.client(0)
    await db.put('warm', 'x') // the client's session stamp is set: every later put carries `after`
    const calls: Promise<WriteResult | TandemError>[] = []
    const kinds: string[] = []
    for (let i = 0; i < 600; i++) {
      const key = `k${i % 37}`
      if (i % 50 === 21) {
        kinds.push(`del ${key}`)
        calls.push(db.del(key).catch((err: TandemError) => err))
      } else {
        kinds.push(`put ${key}`)
        calls.push(db.put(key, `v${i}`, { timeoutMs: 60_000 }).catch((err: TandemError) => err))
      }
    }
    const results = await Promise.all(calls)
    expect(results.filter((r) => r instanceof TandemError)).toEqual([])
    const written = results as WriteResult[]
    expect(new Set(written.map((r) => r.origin))).toEqual(new Set([origin]))
    // Counters, seqs and stamps are each the write's own, gapless counters, rising with the calls.
    const counters = written.map((r) => r.originSeq as number)
    for (let i = 1; i < counters.length; i++) expect(counters[i], `call ${i}`).toBe(counters[i - 1] + 1)
    for (let i = 1; i < written.length; i++) {
      expect(written[i].seq, `call ${i}`).toBeGreaterThan(written[i - 1].seq)
      expect(written[i].hlc as number, `call ${i}`).toBeGreaterThan(written[i - 1].hlc as number)
    }
    // A key holds its last write, on both nodes.
    await group.waitConverged()
    const other = await group.client(1)
    for (let k = 0; k < 37; k++) {
      const key = `k${k}`
      let last = -1
      for (let i = 0; i < kinds.length; i++) if (kinds[i].endsWith(` ${key}`)) last = i
      const expected = kinds[last].startsWith('del') ? undefined : `v${last}`
      expect(await db.get(key), key).toBe(expected)
      expect(await other.get(key), key).toBe(expected)
    }
  })
  // A put's session stamp (`after`) is taken as it joins the run: one stamped
  // too far ahead of this node's clock is refused alone (CLOCKSKEW), and the
  // puts sent with it, before and after, are written and answered.
  it('refuses alone a put whose session stamp runs too far ahead, the rest of its run written', async () => {
    group = await new PeerGroup().start({ size: 2, conflict: 'lww' })
    const raw = await RawClient.open(group.nodes[0].address)
    try {
      const HLC_COUNTER_SPAN = 1024
      const now = Date.now() * HLC_COUNTER_SPAN
      const ahead = (Date.now() + 3_600_000) * HLC_COUNTER_SPAN
      const stamps = [now, now, ahead, now, now]
      // Sent back to back: they reach the node together, one run as far as the socket's reads allow.
      for (let i = 0; i < stamps.length; i++) {
        raw.send({ id: i + 1, op: 'put', key: `s${i}`, value: `v${i}`, after: stamps[i] })
      }
      const replies = await Promise.all(stamps.map((_, i) => raw.reply(i + 1)))
      expect(replies.map((r) => r.error?.code ?? 'ok')).toEqual(['ok', 'ok', 'CLOCKSKEW', 'ok', 'ok'])
      const written = replies.filter((r) => r.error === undefined).map((r) => r.result as WriteResult)
      for (let i = 1; i < written.length; i++)
        expect(written[i].originSeq).toBe((written[i - 1].originSeq as number) + 1)
      const db = await group.client(0)
      expect(await Promise.all(stamps.map((_, i) => db.get(`s${i}`)))).toEqual(['v0', 'v1', undefined, 'v3', 'v4'])
      // The connection goes on.
      expect((await raw.request({ id: 99, op: 'put', key: 'after', value: 'x' })).error).toBeUndefined()
    } finally {
      raw.ws.close()
    }
  })
})
