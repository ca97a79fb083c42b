import { TandemError } from '@tandem/client'
import { decodeFrame } from '@tandem/protocol'
import { afterEach, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'
import { firstDifference, lwwModel, PeerGroup, scanNode, unionOfWrites, writesOffline } from './peers.js'

/**
 * Rule 8 of the multi-master notes: an HLC bounded by --max-clock-offset.
 * A peer whose clock runs 5 s ahead (an injected offset) must not win
 * conflicts by it: its entries stamped ahead are not applied (its link
 * pauses and says why), and it refuses writes itself. A 100 ms skew is
 * within the bound: last-writer-wins still converges, to the reference model.
 */
const groups: PeerGroup[] = []
afterEach(async () => {
  await Promise.all(groups.splice(0).map((g) => g.teardown()))
})

describe('clocks and --max-clock-offset', () => {
  it('a peer 5 s ahead is refused: its writes stamped ahead wait, it does not win, and it takes no writes', async () => {
    const group = new PeerGroup()
    groups.push(group)
    await group.start({
      size: 2,
      conflict: 'lww',
      clockOffsetOf: (i) => (i === 1 ? 5000 : 0),
      waitWritable: false,
    })
    // Cut off from the start, the fast node reaches no peer and takes writes after its start-up grace.
    group.isolate(1)
    const fast = await group.client(1)
    const slow = await group.client(0)
    // Both reach no peer: each takes writes once its start-up grace is over.
    const putWhenWritable = (db: typeof fast, value: string) =>
      waitFor(
        async () => {
          try {
            await db.put('k', value)
            return true
          } catch (err) {
            if (err instanceof TandemError && err.code === 'UNAVAILABLE') return false
            throw err
          }
        },
        { what: `a node to take ${value}` },
      )
    await putWhenWritable(fast, 'from the fast clock')
    await putWhenWritable(slow, 'from the right clock')

    group.healAll()
    // The right node pauses its link from the fast one, and says why.
    await waitFor(async () => (await group.status(0)).multi!.peers[0].clockPauses > 0, {
      what: 'the link from the fast node to pause',
    })
    const status = (await group.status(0)).multi!
    expect(status.peers[0].reason).toMatch(/ahead/)
    // Its write stamped 5 s ahead has not won on the right node.
    expect(await slow.get('k')).toBe('from the right clock')
    // The fast node sees its clock is ahead of its peer and refuses writes.
    await waitFor(async () => (await group.status(1)).multi!.clockFence !== null, { what: 'the fast node to fence' })
    await expect(fast.put('x', 'y')).rejects.toMatchObject({ code: 'CLOCKSKEW' })
    expect((await group.status(1)).readOnly).toBe(true)
    // The right node measured the offset.
    await waitFor(async () => ((await group.status(0)).multi!.peers[0].clockOffsetMs ?? 0) > 4000, {
      what: 'the offset to be measured',
    })
    expect((await group.status(0)).multi!.clockFence).toBeNull()
  })

  it('equal clocks and a link that holds back the clock probe answers past the bound: no CLOCKSKEW, during or after', async () => {
    // A probe proves only that the peer's offset lies between the answer's
    // stamp minus the time the answer arrived and minus the time the probe
    // left. Answers held back 1.5 s (a stalled process or path; 80% of the
    // default --max-clock-offset is 400 ms) widen that range, never shift it:
    // half the round trip is not skew, and the node must keep taking writes.
    const group = new PeerGroup()
    groups.push(group)
    await group.start({ size: 2, conflict: 'lww' })
    const [db0, db1] = [await group.client(0), await group.client(1)]
    // Node 0's link from node 1: count the clock answers node 1's feed sends on it, held back or not.
    const proxy = group.proxies[0][1]!
    const answers = { delayed: 0, prompt: 0 }
    proxy.onTargetMessage = (payload, delayed) => {
      if ((decodeFrame(payload) as { type?: unknown }).type !== 'clock') return
      if (delayed) answers.delayed++
      else answers.prompt++
    }
    // The tap reads connections from their start: the link redials through it.
    proxy.cut('refuse')
    proxy.heal()
    await waitFor(async () => answers.prompt > 0 && (await group.status(0)).multi!.peers[0].link === 'streaming', {
      what: "node 0's link to node 1 to stream again through the tap",
    })
    const refusal = (write: Promise<unknown>) =>
      write.then(
        () => null,
        (err: unknown) => (err instanceof TandemError ? err.code : String(err)),
      )

    proxy.delay(1500, 'fromTarget')
    // Two answers held back: node 0 has taken at least one of them in.
    await waitFor(() => answers.delayed >= 2, { what: 'two clock answers held back 1.5 s to reach node 0' })
    const during = (await group.status(0)).multi!
    expect(during.clockFence).toBeNull()
    expect(during.peers[0].clockOffsetMs).not.toBeNull()
    expect(during.peers[0].clockOffsetMs!).toBeGreaterThan(-0.8 * during.maxClockOffsetMs)
    expect(await refusal(db0.put('during', 'the stall'))).toBeNull()

    // The link resumes; its next answers come promptly.
    proxy.delay(0, 'fromTarget')
    const prompt = answers.prompt
    await waitFor(() => answers.prompt > prompt, { what: 'a clock answer to reach node 0 promptly again' })
    expect(await refusal(db0.put('after', 'from node 0'))).toBeNull()
    expect(await refusal(db1.put('after1', 'from node 1'))).toBeNull()
    expect((await group.status(0)).multi!.clockFence).toBeNull()
    expect((await group.status(1)).multi!.clockFence).toBeNull()
    await group.waitConverged()
    for (const db of [db0, db1]) {
      expect(await db.get('during')).toBe('the stall')
      expect(await db.get('after')).toBe('from node 0')
      expect(await db.get('after1')).toBe('from node 1')
    }
  })

  it('with a 100 ms skew, last-writer-wins converges to the reference model', async () => {
    const group = new PeerGroup()
    groups.push(group)
    await group.start({ size: 2, conflict: 'lww', clockOffsetOf: (i) => (i === 1 ? 100 : 0) })
    const dbs = [await group.client(0), await group.client(1)]
    const writes: Promise<unknown>[] = []
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < 2; i++) {
        const key = `k${round % 7}`
        writes.push(round % 5 === 4 ? dbs[i].del(key) : dbs[i].put(key, `n${i}-r${round}`))
      }
      if (round % 10 === 0) await Promise.all(writes)
    }
    await Promise.all(writes)
    await group.waitConverged()
    const scans = await Promise.all(group.nodes.map((n) => scanNode(n)))
    expect(firstDifference(scans[1], scans[0])).toBeNull()
    await group.stopAll()
    const logs = await Promise.all(group.dirs.slice(0, 2).map((d) => writesOffline(d.path, 'lww')))
    expect(firstDifference(scans[0], lwwModel(unionOfWrites(logs)))).toBeNull()
  })

  it('entries a clock pause refused arrive once the clocks agree: the link ends and resumes from what the node holds', async () => {
    // Rule 8 without a gap: the fast node's feed sends on past the entry the
    // paused link refuses (its cursor moves past it, and a feed sends
    // nothing its peer is known to hold). Nothing may stay lost on that
    // link: the pause ends the socket, and the next dial says what the node
    // holds, so the feed sends the refused entries again.
    const group = new PeerGroup()
    groups.push(group)
    await group.start({
      size: 2,
      conflict: 'lww',
      clockOffsetOf: () => 0,
      // The fast node tolerates the offset itself, so it takes writes while
      // its clock runs ahead; small frames make its feed send many frames
      // past the refused entry before the link ends.
      argsOf: (i) => (i === 1 ? ['--max-clock-offset', '20s', '--tune', 'replBatchEntries=20'] : []),
    })
    const fast = await group.client(1)
    const slow = await group.client(0)
    await fast.put('before', 'in step')
    await waitFor(async () => (await slow.get('before')) === 'in step', { what: 'the first write to reach node 0' })

    group.setClock(1, 6000)
    const writes = 300
    let next = 0
    const worker = async () => {
      while (next < writes) {
        const i = next++
        await fast.put(`ahead:${i}`, `v${i}`)
      }
    }
    await Promise.all([...Array(8)].map(worker))
    await waitFor(async () => (await group.status(0)).multi!.peers[0].clockPauses > 0, {
      what: 'node 0 to pause its link from the fast node',
    })
    group.setClock(1, 0)

    // Once node 0's clock reaches the stamps, every write is there, on both nodes alike.
    await group.waitConverged()
    for (let i = 0; i < writes; i++) expect(await slow.get(`ahead:${i}`)).toBe(`v${i}`)
    const [scan0, scan1] = await Promise.all(group.nodes.map((n) => scanNode(n)))
    expect(firstDifference(scan0, scan1)).toBeNull()
    expect(scan0.size).toBe(writes + 1)
    // The link streams again: the pause was not a lasting refusal of the peer.
    await waitFor(async () => (await group.status(0)).multi!.peers[0].link === 'streaming', {
      what: "node 0's link from the fast node to stream again",
    })
  })
})
