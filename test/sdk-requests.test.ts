import { TandemClient, type TandemError } from '@tandem/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type NodeProcess, startNode } from './helpers/node-process.js'
import { tempDir } from './helpers/temp-dir.js'

/** The error a promise rejects with (it must reject). */
async function failure(p: Promise<unknown>): Promise<TandemError> {
  return p.then(
    () => {
      throw new Error('expected a failure, got a result')
    },
    (err) => err as TandemError,
  )
}

/** Whether a call threw at once, or returned a promise that rejected or resolved. */
async function settledHow(call: () => Promise<unknown>): Promise<'threw' | 'rejected' | 'resolved'> {
  let p: Promise<unknown>
  try {
    p = call()
  } catch {
    return 'threw'
  }
  return p.then(
    () => 'resolved',
    () => 'rejected',
  )
}

describe('SDK requests: deadlines, the queue bound and bad arguments', () => {
  const dir = tempDir()
  let node: NodeProcess

  beforeAll(async () => {
    node = await startNode(dir.path)
  })
  afterAll(async () => {
    await node?.stop()
    dir.remove()
  })

  it('fails calls a paused node never answers with TIMEOUT, saying when a write may have been applied', async () => {
    const db = await TandemClient.connect({ servers: [node.address] })
    await node.kill('SIGSTOP')
    try {
      const [put, get] = await Promise.all([
        failure(db.put('paused', 'v', { timeoutMs: 300 })),
        failure(db.get('paused', { timeoutMs: 300 })),
      ])
      expect(put).toMatchObject({ code: 'TIMEOUT' })
      expect(put.message).toBe('no reply to put within 300 ms; the write may or may not have been applied')
      expect(get).toMatchObject({ code: 'TIMEOUT', message: 'no reply to get within 300 ms' })
    } finally {
      await node.kill('SIGCONT')
    }
    // The late replies are ignored, and the connection serves new calls.
    await db.put('after', 'pause')
    expect(await db.get('after')).toBe('pause')
    await db.close()
  })

  it('refuses a livenessTimeoutMs under the nodes keepalive (other than 0, which turns the check off)', async () => {
    for (const bad of [500, -1, Number.NaN]) {
      await expect(TandemClient.connect({ servers: [node.address], livenessTimeoutMs: bad })).rejects.toThrow(
        /livenessTimeoutMs must be 0 \(off\) or at least 1000 ms/,
      )
    }
    const off = await TandemClient.connect({ servers: [node.address], livenessTimeoutMs: 0 })
    await off.put('liveness-off', 'ok')
    expect(await off.get('liveness-off')).toBe('ok')
    await off.close()
  })

  it('refuses timeouts that are not a finite number of ms above 0, on the client and on each call', async () => {
    const bad = [Number.NaN, Number.POSITIVE_INFINITY, 0, -5, '100']
    for (const ms of bad) {
      await expect(
        TandemClient.connect({ servers: [node.address], timeoutMs: ms as unknown as number }),
      ).rejects.toThrow(/^timeoutMs must be a finite number of ms above 0/)
      await expect(
        TandemClient.connect({ servers: [node.address], connectTimeoutMs: ms as unknown as number }),
      ).rejects.toThrow(/^connectTimeoutMs must be a finite number of ms above 0/)
    }
    // A call with one is rejected before it is sent, and leaves no slot of
    // maxQueued taken: the one slot still takes the next call.
    const db = await TandemClient.connect({ servers: [node.address], maxQueued: 1 })
    for (const ms of bad) {
      const timeoutMs = ms as unknown as number
      expect(await settledHow(() => db.put('timeout-bad', String(ms), { timeoutMs }))).toBe('rejected')
      await expect(db.get('timeout-bad', { timeoutMs })).rejects.toThrow(TypeError)
      await expect(db.ping({ timeoutMs })).rejects.toThrow(/timeoutMs must be a finite number of ms above 0/)
    }
    expect(await db.get('timeout-bad')).toBeUndefined()
    await db.put('timeout-good', 'v', { timeoutMs: 5000 })
    expect(await db.get('timeout-good', { timeoutMs: 5000 })).toBe('v')
    await db.close()
  })

  it('refuses calls past maxQueued with BUSY, and counts settled calls out again', async () => {
    const db = await TandemClient.connect({ servers: [node.address], maxQueued: 2 })
    await node.kill('SIGSTOP')
    try {
      const waiting = [failure(db.put('q1', 'v', { timeoutMs: 300 })), failure(db.get('q2', { timeoutMs: 300 }))]
      expect(await failure(db.get('q3'))).toMatchObject({ code: 'BUSY' })
      expect((await Promise.all(waiting)).map((e) => e.code)).toEqual(['TIMEOUT', 'TIMEOUT'])
    } finally {
      await node.kill('SIGCONT')
    }
    // Both timed-out calls left the count: two more fit.
    await Promise.all([db.put('q4', 'v'), db.put('q5', 'v')])
    expect(await db.get('q5')).toBe('v')
    await db.close()
  })

  it('reports why a call was never sent (the node is gone), not a bare timeout', async () => {
    const other = tempDir()
    const gone = await startNode(other.path)
    const db = await TandemClient.connect({ servers: [gone.address], connectTimeoutMs: 200 })
    await gone.stop()
    const err = await failure(db.put('nowhere', 'v', { timeoutMs: 600 }))
    expect(err.code).toBe('UNAVAILABLE')
    expect(err.message).toContain(gone.address)
    await db.close()
    other.remove()
  })

  it('rejects bad arguments (never throws synchronously) and fails calls on a closed client with CLOSED', async () => {
    const db = await TandemClient.connect({ servers: [node.address] })
    const badKey = db.put(42 as unknown as string, 'v')
    await expect(badKey).rejects.toThrow(new TypeError('key must be a string, got number'))
    await expect(db.put('k', 7 as unknown as string)).rejects.toThrow(
      new TypeError('value must be a string or Uint8Array, got number'),
    )
    await expect(db.get(null as unknown as string)).rejects.toThrow(TypeError)
    await expect(db.del({} as unknown as string)).rejects.toThrow(TypeError)
    // options: null (plain JavaScript's "no options") and a method called
    // without its client are rejections too, as for the async calls.
    const none = null as unknown as undefined
    for (const call of [
      () => db.put('k', 'v', none),
      () => db.get('k', none),
      () => db.del('k', none),
      () => db.mget(['k'], none),
      () => db.batch([], none),
    ]) {
      expect(await settledHow(call)).toBe('rejected')
    }
    const { put, get, del } = db
    expect(await settledHow(() => put('k', 'v'))).toBe('rejected')
    expect(await settledHow(() => get('k'))).toBe('rejected')
    expect(await settledHow(() => del('k'))).toBe('rejected')
    await db.close()
    expect(await failure(db.get('k'))).toMatchObject({ code: 'CLOSED' })
  })
})
