import type { TandemClient } from '@tandem/client'
import { afterEach, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { PeerGroup } from './peers.js'

/**
 * Active-active fail-over: both masters take writes; one is killed with
 * SIGKILL. The survivor goes on taking reads and writes with no election.
 * Writes acknowledged by the dead node that had reached the survivor are
 * all there; those that had not are the loss the seed names ("if the
 * active system fails before replication") and are counted; with w: 1
 * (acknowledged only once a peer holds them) none is lost.
 */
const groups: PeerGroup[] = []
afterEach(async () => {
  await Promise.all(groups.splice(0).map((g) => g.teardown()))
})

interface Load {
  acknowledged: string[]
  failed: number
  stop: boolean
}

function load(db: TandemClient, prefix: string, w?: number): { state: Load; done: Promise<void> } {
  const state: Load = { acknowledged: [], failed: 0, stop: false }
  const done = (async () => {
    let n = 0
    const lanes = [...Array(4).keys()].map(async (lane) => {
      while (!state.stop) {
        const key = `${prefix}-${lane}-${n++}`
        try {
          await db.put(key, key, w === undefined ? {} : { w, timeoutMs: 3000 })
          state.acknowledged.push(key)
        } catch {
          state.failed++
          await new Promise((resolve) => setTimeout(resolve, 20))
        }
      }
    })
    await Promise.all(lanes)
  })()
  return { state, done }
}

describe('active-active fail-over', () => {
  it('the survivor of a SIGKILL keeps taking reads and writes; acknowledged writes that reached it are there; with w: 1 none is lost', async () => {
    const group = new PeerGroup()
    groups.push(group)
    await group.start({ size: 2, conflict: 'lww' })
    const onDead = await group.client(0, { timeoutMs: 3000 })
    const onDeadSync = await group.client(0, { timeoutMs: 5000 })
    const onSurvivor = await group.client(1, { timeoutMs: 3000 })
    const a = load(onDead, 'dead')
    const aSync = load(onDeadSync, 'dead-w1', 1)
    const b = load(onSurvivor, 'survivor')
    await waitFor(() => a.state.acknowledged.length > 200 && aSync.state.acknowledged.length > 50, {
      what: 'writes on both masters',
    })
    const beforeKill = b.state.acknowledged.length
    await group.nodes[0].kill('SIGKILL')
    // No election: the survivor goes on, at once.
    await waitFor(() => b.state.acknowledged.length > beforeKill + 200, {
      what: 'writes on the survivor after the kill',
    })
    a.state.stop = true
    aSync.state.stop = true
    b.state.stop = true
    await Promise.all([a.done, aSync.done, b.done])

    const survivor = await group.client(1)
    const has = async (keys: string[]) => {
      const values = await survivor.mget(keys)
      return keys.filter((_, i) => values[i] !== undefined)
    }
    // Every write the survivor acknowledged is there.
    expect((await has(b.state.acknowledged)).length).toBe(b.state.acknowledged.length)
    // w: 1 writes were acknowledged only once the survivor held them: none lost.
    expect((await has(aSync.state.acknowledged)).length).toBe(aSync.state.acknowledged.length)
    // w: 0 writes: those that had not reached the survivor are lost; counted, not hidden.
    const reached = await has(a.state.acknowledged)
    const lost = a.state.acknowledged.length - reached.length
    console.info(
      `active-active fail-over: ${a.state.acknowledged.length} w:0 writes acknowledged by the killed master, ${lost} had not reached the survivor; ${aSync.state.acknowledged.length} w:1 writes, 0 lost; survivor took ${b.state.acknowledged.length - beforeKill} writes after the kill`,
    )
    // And it serves reads: a write of the dead master that reached it reads back.
    if (reached.length > 0) expect(await survivor.get(reached[0])).toBe(reached[0])

    // The dead master comes back and catches up; both converge.
    await group.nodes[0].start()
    await group.waitConverged()
  })

  // Rule: with --sync always (the default) a master acknowledges a write
  // only once it is on its own disk, peers or not: killed while cut off
  // from its peer, it comes back with every write it acknowledged and
  // sends them on, so both masters hold them.
  it('a master killed while cut off from its peer keeps every write it acknowledged, and its peer gets them once it is back', async () => {
    const group = new PeerGroup()
    groups.push(group)
    await group.start({ size: 2, conflict: 'lww' })
    group.cut(0, 1)
    // Long enough that no write is given up on (TIMEOUT) under load: each is answered or fails with its node.
    const onVictim = await group.client(0, { timeoutMs: 30_000 })
    const victim = load(onVictim, 'alone')
    const survivor = load(await group.client(1, { timeoutMs: 30_000 }), 'other')
    await waitFor(() => victim.state.acknowledged.length > 300 && survivor.state.acknowledged.length > 50, {
      what: 'writes on both masters while they are cut off',
    })
    // Killed with its writers' puts in flight.
    await group.nodes[0].kill('SIGKILL')
    victim.state.stop = true
    survivor.state.stop = true
    await Promise.all([victim.done, survivor.done])
    expect(victim.state.failed).toBeGreaterThan(0)

    await group.nodes[0].start()
    group.healAll()
    await group.waitConverged()
    const written = [...victim.state.acknowledged, ...survivor.state.acknowledged]
    for (const i of [0, 1]) {
      const values = await (await group.client(i)).mget(written)
      const wrong = written.filter((key, k) => values[k] !== key)
      expect(wrong, `acknowledged writes missing or wrong on node ${i}`).toEqual([])
    }
  })

  it('a client given both masters moves its writes to the other when one dies, with no election', async () => {
    const group = new PeerGroup()
    groups.push(group)
    await group.start({ size: 2, conflict: 'lww' })
    // The first write must be taken by node 0, the first server given. A
    // group client writes to the first peer that answers within its
    // discovery grace, and under load node 1 can answer first: connect
    // until writes go to node 0.
    const origin0 = (await group.status(0)).multi?.origin
    const db = await waitFor(
      async () => {
        const client = await group.groupClient({ timeoutMs: 5000 })
        if ((await client.put('before', '1')).origin === origin0) return client
        await client.close()
        return undefined
      },
      { what: 'a client whose writes go to node 0' },
    )
    await group.nodes[0].kill('SIGKILL')
    const result = await db.put('after', '2')
    expect(result.origin).toBe((await group.status(1)).multi!.origin)
    expect(await (await group.client(1)).get('after')).toBe('2')
  })
})
