import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, describe, expect, it } from 'vitest'
import { NodeProcess } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { makeTestCa } from '../helpers/test-ca.js'
import { waitFor } from '../helpers/wait.js'
import { EventStream } from './event-stream.js'

/**
 * Where the console's watcher sends the node's token. It polls every
 * address the group's reports name, and those come from other nodes: the
 * token goes only to nodes this node knows to be of its group (members,
 * upstream, its replicas), and over https on a node with TLS.
 */

interface View {
  nodes: { address: string; reachable: boolean; role: string | null; error: string | null }[]
}

const TOKEN = 'console-trust-token'

describe('console watcher: who is shown the token', () => {
  const nodes: NodeProcess[] = []
  const cleanups: (() => void)[] = []
  const streams: EventStream[] = []
  afterAll(async () => {
    for (const s of streams) s.close()
    await Promise.all(nodes.map((n) => n.stop()))
    for (const c of cleanups) c()
  })

  async function start(args: string[]): Promise<NodeProcess> {
    const dir = tempDir()
    cleanups.push(dir.remove)
    const node = new NodeProcess(dir.path, args, { TANDEM_AUTH_TOKEN: TOKEN })
    nodes.push(node)
    return node.start()
  }

  function lastView(stream: EventStream): View | undefined {
    return stream.views().at(-1) as unknown as View | undefined
  }

  // Rule: a node named only in another node's report is polled without the token; the node's own replica gets it.
  it('does not send the token to an address another node reported', async () => {
    // A listener that records what it is sent, at an address a replica of a
    // replica advertises (as a misconfigured or hostile --advertise would).
    const seen: (string | undefined)[] = []
    const spy: Server = createServer((req, res) => {
      seen.push(req.headers.authorization)
      res.writeHead(401, { 'content-type': 'application/json' })
      res.end('{}')
    })
    await new Promise<void>((resolve) => spy.listen(0, '127.0.0.1', resolve))
    cleanups.push(() => spy.close())
    const spyAddress = `127.0.0.1:${(spy.address() as AddressInfo).port}`

    const master = await start([])
    const replica = await start(['--replicaof', master.address])
    await start(['--replicaof', replica.address, '--advertise', spyAddress])

    const stream = new EventStream()
    streams.push(stream)
    await stream.open(master.address, TOKEN)
    await waitFor(
      () => {
        const view = lastView(stream)
        const r = view?.nodes.find((n) => n.address === replica.address)
        return seen.length >= 2 && r?.reachable === true
      },
      { what: 'the watcher polling the reported address twice and its own replica', timeoutMs: 20_000 },
    )
    // The replica streaming from the master needs the token and got it.
    expect(lastView(stream)?.nodes.find((n) => n.address === replica.address)?.role).toBe('replica')
    // The reported address was asked, never with the token.
    expect(seen.every((h) => h === undefined)).toBe(true)
    const shown = lastView(stream)?.nodes.find((n) => n.address === spyAddress)
    expect(shown?.reachable).toBe(false)
    expect(shown?.error).toMatch(/token/)
  })

  // Rule: a node with TLS polls over https, checking certificates against --tls-ca.
  it('polls over https on a node with TLS', async () => {
    const ca = makeTestCa()
    cleanups.push(ca.remove)
    const tls = ['--tls-cert', ca.cert, '--tls-key', ca.key, '--tls-ca', ca.ca]
    const master = await start(tls)
    const replica = await start([...tls, '--replicaof', master.address])
    const stream = new EventStream()
    streams.push(stream)
    await stream.open(master.address, TOKEN, { ca: readFileSync(ca.ca) })
    await waitFor(() => lastView(stream)?.nodes.find((n) => n.address === replica.address)?.reachable === true, {
      what: 'the TLS replica polled over https',
      timeoutMs: 20_000,
    })
  })
})
