import { TandemClient } from '@tandem/client'
import { afterEach, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { type NodeProcess, startNode } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'
import { HandRolledSocket, pack, RawClient } from './raw-client.js'

/**
 * Connection slots and frames still arriving are bounded: a socket that
 * never authenticates is closed after --auth-timeout and gives up its slot
 * to one that does; a frame must arrive whole within --frame-timeout; and
 * frames still arriving hold at most --max-partial-frame-bytes across all
 * connections. The node reports what it holds (status `clients`).
 */

const KiB = 1024
const MiB = 1024 * KiB
const CLOSE = { unauthorized: 4401, policy: 1008, tryAgainLater: 1013 }

interface Clients {
  connections: number
  unauthenticated: number
  partialFrameBytes: number
  peakPartialFrameBytes: number
}

async function clientsOf(node: NodeProcess, token?: string): Promise<Clients> {
  const res = await fetch(`http://${node.address}/status`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  })
  return ((await res.json()) as { clients: Clients }).clients
}

describe('connection slots and partial frames', () => {
  const cleanups: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })

  async function node(args: string[]): Promise<NodeProcess> {
    const dir = tempDir()
    cleanups.push(() => dir.remove())
    const n = await startNode(dir.path, args)
    cleanups.push(() => n.stop())
    return n
  }

  async function socket(n: NodeProcess, headers?: Record<string, string>): Promise<HandRolledSocket> {
    const s = await HandRolledSocket.open(n.address, headers)
    cleanups.push(() => s.destroy())
    return s
  }

  it('closes a socket that does not authenticate within --auth-timeout, and keeps one that did', async () => {
    const n = await node(['--auth-token', 'secret', '--auth-timeout', '1000'])
    const idle = await socket(n)
    const authed = await RawClient.open(n.address)
    cleanups.push(() => authed.terminate())
    expect((await authed.request({ id: 1, op: 'auth', token: 'secret' })).result).toBe(true)
    expect(await idle.closed()).toBe(CLOSE.unauthorized)
    // The deadline has passed for both: the authenticated one still answers.
    expect((await authed.request({ id: 2, op: 'ping' })).result).toBe('pong')
    await waitFor(async () => (await clientsOf(n, 'secret')).unauthenticated === 0, { what: 'its slot to be freed' })
  })

  it('unauthenticated sockets holding every slot do not lock out a client with the token', async () => {
    const n = await node(['--auth-token', 'secret', '--max-connections', '10', '--auth-timeout', '60000'])
    const squatters: HandRolledSocket[] = []
    for (let i = 0; i < 10; i++) squatters.push(await socket(n))
    // Another one without the token is refused: the node is full.
    await expect(HandRolledSocket.open(n.address)).rejects.toThrow(/503/)
    // One with the token takes the oldest squatter's slot.
    const cli = await runCli(['--server', n.address, '--auth-token', 'secret', 'put', 'k', 'v'])
    expect(cli, cli.stderr).toMatchObject({ code: 0, stdout: 'OK\n' })
    expect(await squatters[0].closed()).toBe(CLOSE.unauthorized)
    const db = await TandemClient.connect({ servers: [n.address], authToken: 'secret' })
    cleanups.push(() => db.close())
    expect(await db.get('k')).toBe('v')
  })

  it('closes sockets whose frames still arriving would take the node past --max-partial-frame-bytes', async () => {
    const budget = 4 * MiB
    const n = await node(['--max-partial-frame-bytes', String(budget), '--frame-timeout', '120000'])
    const db = await TandemClient.connect({ servers: [n.address] })
    cleanups.push(() => db.close())
    const senders: HandRolledSocket[] = []
    for (let i = 0; i < 5; i++) {
      const s = await socket(n)
      senders.push(s)
      // 1.5 MiB of a 2 MiB frame, then nothing more.
      s.startFrame(2 * MiB, 1.5 * MiB)
      await waitFor(
        async () =>
          !s.open || (await clientsOf(n)).partialFrameBytes >= Math.min(budget - 1.5 * MiB, (i + 1) * 1.4 * MiB),
        { what: `the node to count frame ${i}` },
      )
    }
    const closed = senders.filter((s) => !s.open)
    expect(closed.length).toBeGreaterThanOrEqual(2)
    for (const s of closed) expect(s.closeCode).toBe(CLOSE.tryAgainLater)
    const clients = await clientsOf(n)
    expect(clients.partialFrameBytes).toBeLessThanOrEqual(budget)
    expect(clients.peakPartialFrameBytes).toBeLessThanOrEqual(budget + 64 * KiB)
    // Everyone else is served.
    await db.put('k', 'v'.repeat(MiB))
    expect((await db.get('k'))?.length).toBe(MiB)
  })

  it('counts a fragmented message as arriving until its last fragment, pongs and pings between them notwithstanding', async () => {
    const budget = MiB
    const n = await node(['--max-partial-frame-bytes', String(budget), '--frame-timeout', '120000'])
    const s = await socket(n)
    // 200 KiB fragments, each followed by a pong and a ping: 2 MiB in all, twice the budget.
    const fragment = Buffer.alloc(200 * KiB, 0xc0)
    for (let i = 0; i < 10 && s.open; i++) {
      s.sendFrame(i === 0 ? 0x2 : 0x0, fragment, false)
      s.sendFrame(0xa, Buffer.alloc(0))
      s.sendFrame(0x9, Buffer.from('still here'))
      await waitFor(async () => !s.open || (await clientsOf(n)).peakPartialFrameBytes >= (i + 1) * 190 * KiB, {
        what: `the node to count fragment ${i}`,
      })
    }
    expect(await s.closed()).toBe(CLOSE.tryAgainLater)
    await waitFor(async () => (await clientsOf(n)).partialFrameBytes === 0, { what: 'its bytes to be forgotten' })
    // A message fragmented the same way but within the budget is served.
    const ok = await socket(n)
    const put = pack({ id: 1, op: 'put', key: 'k', value: 'v' })
    ok.sendFrame(0x2, put.subarray(0, 3), false)
    ok.sendFrame(0xa, Buffer.alloc(0))
    ok.sendFrame(0x0, put.subarray(3))
    const db = await TandemClient.connect({ servers: [n.address] })
    cleanups.push(() => db.close())
    await waitFor(async () => (await db.get('k')) === 'v', { what: 'the fragmented put to be applied' })
  })

  it('closes a socket whose frame does not arrive whole within --frame-timeout, and forgets its bytes', async () => {
    const n = await node(['--frame-timeout', '1000'])
    const stalled = await socket(n)
    stalled.startFrame(MiB, 100 * KiB)
    await waitFor(async () => (await clientsOf(n)).partialFrameBytes >= 90 * KiB, {
      what: 'the partial frame to count',
    })
    expect(await stalled.closed()).toBe(CLOSE.policy)
    await waitFor(async () => (await clientsOf(n)).partialFrameBytes === 0, { what: 'its bytes to be forgotten' })
    // A whole frame sent within the deadline is served.
    const raw = await RawClient.open(n.address)
    cleanups.push(() => raw.terminate())
    expect((await raw.request({ id: 1, op: 'put', key: 'big', value: 'x'.repeat(900 * KiB) })).error).toBeUndefined()
  })
})
