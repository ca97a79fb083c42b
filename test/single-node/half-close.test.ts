import { TandemClient } from '@tandem/client'
import { afterEach, describe, expect, it } from 'vitest'
import { type NodeProcess, startNode } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'
import { HandRolledSocket, pack } from './raw-client.js'

/**
 * Rule: a client that half-closes its socket (a TCP FIN, no WebSocket
 * close frame) sends nothing more; the node ends its side, and a client
 * that does not read what the node still has to send does not keep its
 * connection slot, nor the replies held for it, for ever: once the node's
 * writes to it make no progress for clientCloseGraceMs, the socket is
 * dropped. Before, the node ended its side and waited for a flush that
 * never came: the connection stayed counted with its reply bytes.
 */

const KiB = 1024
const MiB = 1024 * KiB

interface Clients {
  connections: number
  replyBytes: number
}

async function clientsOf(node: NodeProcess): Promise<Clients> {
  return ((await (await fetch(`http://${node.address}/status`)).json()) as { clients: Clients }).clients
}

describe('a half-closed client that never reads', () => {
  const cleanups: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })

  it('is dropped, slot and reply bytes freed, once its replies cannot be written', async () => {
    const dir = tempDir()
    cleanups.push(() => dir.remove())
    // A reply budget above what loopback's socket buffers take, so that
    // replies stay held in the node once the client stops reading.
    const node = await startNode(dir.path, ['--max-reply-buffer-bytes', String(64 * MiB)])
    cleanups.push(() => node.stop())

    const db = await TandemClient.connect({ servers: [node.address] })
    cleanups.push(() => db.close())
    await db.put('big', 'v'.repeat(MiB - KiB))

    const client = await HandRolledSocket.open(node.address)
    cleanups.push(() => client.destroy())
    // From here on the client reads nothing.
    client.socket.pause()
    const gets = Array.from({ length: 24 }, (_, i) => ({ id: 2 + i, op: 'get', key: 'big' }))
    client.sendFrame(0x2, pack(gets))
    await waitFor(async () => (await clientsOf(node)).replyBytes > 8 * MiB, {
      what: 'the node to hold replies the client does not read',
      timeoutMs: 30_000,
    })
    expect((await clientsOf(node)).connections).toBe(2)

    // FIN: the client will send nothing more, and still reads nothing.
    client.socket.end()
    const after = await waitFor(
      async () => {
        const c = await clientsOf(node)
        return c.connections === 1 ? c : undefined
      },
      { what: 'the node to drop the half-closed connection', timeoutMs: 30_000 },
    )
    expect(after.replyBytes).toBe(0)
  })
})
