import { afterEach, describe, expect, it } from 'vitest'
import type { HistoryEpoch } from '../storage/store.js'
import { silentLogger } from '../util/logger.js'
import { type FailoverHost, FailoverManager } from './failover.js'
import { Topology } from './topology.js'

/** A member with an in-memory store and a clock the test moves by hand. */
function member(options: { lastSeq?: number; history?: HistoryEpoch[]; master?: boolean; witness?: boolean } = {}) {
  const clock = { t: 10_000 }
  const meta = new Map<string, unknown>()
  const history = options.history ?? [{ epoch: 1, startSeq: 1, by: 'm' }]
  let role: 'master' | 'replica' = options.master ? 'master' : 'replica'
  const store = {
    nodeId: 'me',
    lastSeq: options.lastSeq ?? 10,
    history,
    get epoch() {
      return history[history.length - 1]?.epoch ?? 0
    },
    getMeta: async (k: string) => meta.get(k),
    setMeta: async (k: string, v: unknown) => void meta.set(k, v),
    idle: async () => {},
  }
  const steppedDown: number[] = []
  const host = {
    store,
    logger: silentLogger,
    nodeId: 'me',
    address: '127.0.0.1:1',
    respAddress: null,
    topology: new Topology([]),
    roles: {
      get role() {
        return role
      },
      takeOver: async () => {
        role = 'master'
      },
      follow: async () => {},
      stepDown: (epoch: number) => {
        role = 'replica'
        steppedDown.push(epoch)
      },
      stopFollowing: async () => {},
      following: () => null,
    },
  } as unknown as FailoverHost
  const fm = new FailoverManager(
    host,
    {
      auto: true,
      witness: options.witness ?? false,
      heartbeatMs: 100,
      electionTimeoutMs: 1000,
      leaseMs: 700,
    },
    () => clock.t,
  )
  return { fm, clock, meta, steppedDown, store }
}

const vote = (epoch: number, lastEpoch: number, lastSeq: number, force = false) =>
  ({ id: 1, type: 'vote', epoch, candidateId: 'cand', lastEpoch, lastSeq, force }) as const

describe('fail-over rules', () => {
  const open: FailoverManager[] = []
  afterEach(() => {
    for (const fm of open.splice(0)) fm.close()
  })
  const started = async (m: ReturnType<typeof member>) => {
    await m.fm.start()
    open.push(m.fm)
    return m
  }

  it('rule 3: a member that still hears the master does not vote', async () => {
    const m = await started(member())
    await m.fm.onRequest({ id: 1, type: 'heartbeat', epoch: 1, masterId: 'm', masterAddr: 'x:1', seq: 10 })
    m.clock.t += 500
    expect((await m.fm.onRequest(vote(2, 1, 10))).ok).toBe(false)
    m.clock.t += 600 // 1100 ms of silence: the master is lost
    expect((await m.fm.onRequest(vote(2, 1, 10))).ok).toBe(true)
  })

  it('rule 1: one durable vote per epoch', async () => {
    const m = await started(member())
    m.clock.t += 5000
    expect((await m.fm.onRequest(vote(2, 1, 10))).ok).toBe(true)
    expect(m.meta.get('vote')).toEqual({ epoch: 2, for: 'cand' })
    m.clock.t += 5000
    expect((await m.fm.onRequest({ ...vote(2, 1, 10), candidateId: 'other' })).ok).toBe(false)
  })

  it('rule 2: no vote for a candidate whose log is behind', async () => {
    const m = await started(member({ lastSeq: 50 }))
    m.clock.t += 5000
    expect((await m.fm.onRequest(vote(2, 1, 49))).ok).toBe(false)
    expect((await m.fm.onRequest(vote(3, 1, 50))).ok).toBe(true)
  })

  it('rule 2 compares the epoch of the last entry first', async () => {
    const m = await started(member({ lastSeq: 50 }))
    m.clock.t += 5000
    // A shorter log from a newer epoch is more recent.
    expect((await m.fm.onRequest(vote(3, 2, 20))).ok).toBe(true)
  })

  it('a witness votes without a log check', async () => {
    const m = await started(member({ lastSeq: 50, witness: true }))
    m.clock.t += 5000
    expect((await m.fm.onRequest(vote(2, 0, 0))).ok).toBe(true)
  })

  it('rule 4: a master takes writes only while its lease holds', async () => {
    const m = await started(member({ master: true }))
    // A group of one is its own majority: each heartbeat round renews the lease.
    await (m.fm as unknown as { sendHeartbeats(): Promise<void> }).sendHeartbeats()
    expect(() => m.fm.assertCanWrite()).not.toThrow()
    m.clock.t += 701
    expect(() => m.fm.assertCanWrite()).toThrow(/lease/)
  })

  it('rule 5: a master that hears of a newer epoch steps down at once', async () => {
    const m = await started(member({ master: true }))
    const reply = await m.fm.onRequest({
      id: 1,
      type: 'heartbeat',
      epoch: 2,
      masterId: 'other',
      masterAddr: 'x:2',
      seq: 11,
    })
    expect(reply.ok).toBe(true)
    expect(m.steppedDown).toEqual([2])
  })

  it('a heartbeat from an older epoch is refused with the newer epoch', async () => {
    const m = await started(member({ history: [{ epoch: 3, startSeq: 1, by: 'me' }] }))
    const reply = await m.fm.onRequest({
      id: 1,
      type: 'heartbeat',
      epoch: 2,
      masterId: 'old',
      masterAddr: 'x:3',
      seq: 1,
    })
    expect(reply).toMatchObject({ ok: false, epoch: 3 })
  })
})
