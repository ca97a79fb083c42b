import { createRequire } from 'node:module'
import { join } from 'node:path'
import { TandemClient } from '@tandem/client'
import { DATA_FORMAT } from '@tandem/protocol'
import { afterEach, describe, expect, it } from 'vitest'
import { runNodeBin } from '../helpers/cli.js'
import { freePort } from '../helpers/fault-proxy.js'
import { type NodeProcess, REPO_ROOT, SERVER_BIN, startNode } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'
import { packr, WebSocket } from '../single-node/raw-client.js'

const { Level } = createRequire(join(REPO_ROOT, 'packages/server/package.json'))('level') as typeof import('level')

/**
 * Records carry a format version (protocol data-format.ts). A build must not
 * misread records of a format it does not know: a data dir written by a
 * newer build is refused at start, and a node refuses a replica or a peer
 * that reads only an older format than the records it would send.
 */

type Message = { type: string; reason?: string; message?: string }

/** Dials PATH on ADDRESS, answers the challenge with HELLO (no token: null proof), returns what came back. */
async function handshake(address: string, path: string, hello: Record<string, unknown>): Promise<Message[]> {
  const ws = new WebSocket(`ws://${address}${path}`, { perMessageDeflate: false })
  const messages: Message[] = []
  let closed = false
  ws.on('message', (data: Buffer) => {
    const message = packr.unpack(data) as Message
    messages.push(message)
    if (message.type === 'challenge') ws.send(packr.pack({ ...hello, nonce: Buffer.alloc(32, 1), proof: null }))
  })
  ws.on('close', () => {
    closed = true
  })
  ws.on('error', () => {})
  try {
    await waitFor(() => closed || messages.some((m) => m.type === 'refuse' || m.type === 'continue'), {
      what: 'the handshake to end',
    })
    return messages
  } finally {
    ws.terminate()
  }
}

const nodes: NodeProcess[] = []
const dirs: { remove(): void }[] = []
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()))
  for (const d of dirs.splice(0)) d.remove()
})

async function node(args: string[] = []): Promise<NodeProcess> {
  const dir = tempDir('tandem-format-')
  dirs.push(dir)
  const n = await startNode(dir.path, args)
  nodes.push(n)
  return n
}

describe('record format versions', () => {
  it('a master refuses a replica that reads only an older format, and serves one that reads its own', async () => {
    const master = await node()
    const replica = { type: 'hello', nodeId: 'old-replica', addr: '127.0.0.1:1', history: [], lastSeq: 0 }

    const old = await handshake(master.address, '/replication', replica)
    const refusal = old.find((m) => m.type === 'refuse')
    expect(refusal?.reason).toBe('format')
    expect(refusal?.message).toMatch(new RegExp(`up to format 1 and this node writes format ${DATA_FORMAT}`))
    expect(old.some((m) => m.type === 'snapshot' || m.type === 'fullsync')).toBe(false)

    const current = await handshake(master.address, '/replication', { ...replica, format: DATA_FORMAT })
    expect(current.find((m) => m.type === 'refuse')).toBeUndefined()
  })

  it('a multi-master node refuses a peer that reads only an older format', async () => {
    const peer = await node(['--mode', 'multi', '--peers', `127.0.0.1:${await freePort()}`])
    const hello = {
      type: 'hello',
      nodeId: 'old-peer',
      origin: 'a'.repeat(32),
      addr: '127.0.0.1:1',
      conflict: 'lww',
      vv: {},
      time: Date.now(),
    }
    const old = await handshake(peer.address, '/peer', hello)
    expect(old.find((m) => m.type === 'refuse')?.reason).toBe('format')
    const current = await handshake(peer.address, '/peer', { ...hello, format: DATA_FORMAT })
    expect(current.find((m) => m.type === 'refuse')).toBeUndefined()
  })

  it('a data dir written by a newer format is refused at start (exit 2) and left as it was', async () => {
    const dir = tempDir('tandem-format-')
    dirs.push(dir)
    const first = await startNode(dir.path)
    const db = await TandemClient.connect({ servers: [first.address] })
    await db.put('kept', 'value')
    await db.close()
    await first.stop()

    const level = new Level<string, unknown>(join(dir.path, 'db'), { valueEncoding: 'json' })
    const meta = level.sublevel<string, unknown>('meta', { valueEncoding: 'json' })
    expect(await meta.get('format'), 'a new data dir is marked with the format it is written in').toBe(DATA_FORMAT)
    await meta.put('format', DATA_FORMAT + 1)
    await level.close()

    const refused = await runNodeBin(SERVER_BIN, ['--port', '0', '--data-dir', dir.path])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toMatch(new RegExp(`records of format ${DATA_FORMAT + 1}, written by a newer tandem`))

    // Nothing was changed by the refusal. Without a format (a data dir from
    // before it was kept) the node starts, reads the data and marks the dir.
    const again = new Level<string, unknown>(join(dir.path, 'db'), { valueEncoding: 'json' })
    let againMeta = again.sublevel<string, unknown>('meta', { valueEncoding: 'json' })
    expect(await againMeta.get('format')).toBe(DATA_FORMAT + 1)
    await againMeta.del('format')
    await again.close()
    const restarted = await startNode(dir.path)
    const db2 = await TandemClient.connect({ servers: [restarted.address] })
    expect(await db2.get('kept')).toBe('value')
    await db2.close()
    await restarted.stop()
    const marked = new Level<string, unknown>(join(dir.path, 'db'), { valueEncoding: 'json' })
    againMeta = marked.sublevel<string, unknown>('meta', { valueEncoding: 'json' })
    expect(await againMeta.get('format')).toBe(DATA_FORMAT)
    await marked.close()
  })
})
