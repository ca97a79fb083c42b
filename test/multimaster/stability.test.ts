import { TandemClient } from '@tandem/client'
import { afterEach, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { freePort } from '../helpers/fault-proxy.js'
import { NodeProcess } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'
import { PeerGroup, statusOf } from './peers.js'

/**
 * Rule 2 of the multi-master notes: a tombstone goes only once every member
 * holds it and this node holds every write that could lose to it. A member
 * is every origin this node knows of, and it knows its peers' origins from
 * the link handshake before any of their version vectors (rows) reach it:
 * a peer whose row it has never heard must hold collection up, or a put
 * that peer took before the delete comes back when it arrives.
 */
describe('causal stability (lww)', () => {
  let group: PeerGroup
  afterEach(() => group?.teardown())

  it('a peer known by its origin but never heard from holds collection up, so its older put loses when it arrives', async () => {
    group = await new PeerGroup().start({ size: 2, conflict: 'lww' })
    const originOf0 = (await group.status(0)).multi!.origin
    // From here on node 0's link to node 1 is cut: its acks, which carry its row, never arrive.
    group.cut(0, 1)

    // Node 1 restarts, which forgets every row it had heard. Its link to node 0
    // gets through the handshake (challenge, welcome, the clock probe's answer
    // and CONTINUE: node 1 learns node 0's origin) and then receives nothing:
    // neither node 0's heartbeats (its rows) nor its entries.
    await group.nodes[1].stop()
    const link = group.proxies[1][0]!
    link.heal()
    link.holdStreams('/peer', 4)
    await group.nodes[1].start()
    await waitFor(async () => (await group.status(1)).multi!.peers[0].origin === originOf0, {
      what: 'node 1 to learn node 0’s origin',
    })
    const a = await group.client(0)
    const put = await a.put('k', 'from node 0')

    const b = await group.client(1)
    const del = await waitFor(
      () =>
        b.del('k').then(
          (r) => r,
          () => undefined,
        ),
      { what: 'node 1 to take the delete' },
    )
    expect(del.hlc).toBeGreaterThan(put.hlc as number)

    // Several collection passes: node 0 has neither acknowledged the tombstone
    // nor said which writes it holds, so the tombstone stays.
    await waitFor(async () => (await group.status(1)).multi!.tombstones.count === 1, {
      what: 'node 1 to hold the tombstone',
    })
    const before = (await group.status(1)).multi!.tombstones.passes
    await waitFor(async () => (await group.status(1)).multi!.tombstones.passes >= before + 3, {
      what: 'three collection passes',
    })
    const held = (await group.status(1)).multi!
    expect(held.tombstones.collected).toBe(0)
    expect(held.tombstones.count).toBe(1)
    expect(held.tombstones.blockedBy).toContain(originOf0)
    expect(held.members).toContain(originOf0)

    link.release()
    group.healAll()
    const statuses = await group.waitConverged()
    expect(statuses[0].digest).toBe(statuses[1].digest)
    for (const i of [0, 1]) {
      const one = await group.client(i)
      expect(await one.get('k'), `node ${i}`).toBeUndefined()
    }
    // Once node 0 holds the tombstone and node 1 node 0's put, it goes on both.
    await waitFor(
      async () => {
        for (const i of [0, 1]) if ((await group.status(i)).multi!.tombstones.count !== 0) return false
        return true
      },
      { what: 'the tombstone to be collected on both nodes' },
    )
    for (const i of [0, 1]) {
      const one = await group.client(i)
      expect(await one.get('k'), `node ${i} after collection`).toBeUndefined()
    }
  })

  /**
   * A peer of --peers this node has never reached since it started has no
   * origin it can name, so status names it by its address (the operator
   * brings it back or drops the address) rather than by this node's own
   * origin, which `tandem forget` would refuse.
   */
  it('a peer never reached since the start holds collection up, and status names its address', async () => {
    const dir = tempDir('tandem-mm-unreached-')
    const dead = `127.0.0.1:${await freePort()}`
    const node = new NodeProcess(dir.path, ['--mode', 'multi', '--peers', dead, '--tune', 'peerStartupGraceMs=100'])
    try {
      await node.start()
      const held = await tombstoneHeld(node, 'the node to take writes alone')
      expect(held.collected).toBe(0)
      expect(held.blockedBy).toMatch(new RegExp(`^${dead.replaceAll('.', '\\.')} \\(in --peers, never reached`))
      expect(held.blockedBy).not.toContain((await statusOf(node)).multi!.origin)
      const text = await runCli(['--server', node.address, 'status'])
      expect(text.stdout).toContain(`collection waits for ${dead} (in --peers, never reached`)
    } finally {
      await node.stop()
      dir.remove()
    }
  })

  it('a peer known only because it dialled in is still a member after a restart, and holds collection up while it is down', async () => {
    // Node a lists no peers; node b dials it. Node a knows b only from b's
    // handshake and rows (b writes nothing, so b is in no version vector
    // of a's). After b dies and a restarts, a must still wait for b: b may
    // hold writes it took and never sent, older than a tombstone of a's.
    const dirs = [tempDir('tandem-mm-dialled-a-'), tempDir('tandem-mm-dialled-b-')]
    const a = new NodeProcess(dirs[0].path, ['--mode', 'multi', '--conflict', 'lww'])
    let b: NodeProcess | undefined
    try {
      await a.start()
      b = new NodeProcess(dirs[1].path, ['--mode', 'multi', '--conflict', 'lww', '--peers', a.address])
      await b.start()
      const originOfB = (await statusOf(b)).multi!.origin
      await waitFor(async () => (await statusOf(a)).multi!.members.includes(originOfB), {
        what: 'node a to learn node b as a member',
      })
      await b.kill('SIGKILL')
      await a.stop()
      await a.start()
      const status = await statusOf(a)
      expect(status.multi!.members).toContain(originOfB)
      expect(status.multi!.vv[originOfB] ?? 0).toBe(0)

      const held = await tombstoneHeld(a, 'node a to take writes')
      expect(held.collected).toBe(0)
      expect(held.blockedBy).toBe(originOfB)
    } finally {
      await b?.stop()
      await a.stop()
      for (const d of dirs) d.remove()
    }
  })
})

/**
 * Puts and deletes key k on `node` (once it takes writes: `what` says
 * which wait that is), and waits for collection to pass over the
 * tombstone at least twice: its tombstone counts as they stand then.
 */
async function tombstoneHeld(node: NodeProcess, what: string) {
  const db = await TandemClient.connect({ servers: [node.address], direct: true })
  try {
    await waitFor(
      () =>
        db.put('k', 'v').then(
          () => true,
          () => false,
        ),
      { what },
    )
    await db.del('k')
  } finally {
    await db.close()
  }
  return waitFor(
    async () => {
      const t = (await statusOf(node)).multi!.tombstones
      return t.count === 1 && t.passes >= 2 ? t : undefined
    },
    { what: 'collection passes over the tombstone' },
  )
}
