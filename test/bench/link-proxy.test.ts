import { Worker } from 'node:worker_threads'
import { LinkProxy } from '@tandem/bench/fixtures'
import { afterEach, describe, expect, it } from 'vitest'
import { waitFor } from '../helpers/wait.js'

// Two peers on a thread of their own: an echo server, and a client that
// sends 8 bytes through the proxy, waits for them to come back and sends
// again, counting each round trip in shared memory (readable while this
// thread is busy).
const PEERS = `
const { parentPort, workerData } = require('node:worker_threads')
const net = require('node:net')
const trips = new Int32Array(workerData.shared)
const echo = net.createServer((s) => { s.setNoDelay(true); s.on('data', (d) => s.write(d)); s.on('error', () => {}) })
echo.listen(0, '127.0.0.1', () => parentPort.postMessage({ echoPort: echo.address().port }))
parentPort.on('message', ({ proxyPort, stop }) => {
  if (stop) { echo.close(); process.exit(0) }
  const c = net.createConnection({ host: '127.0.0.1', port: proxyPort })
  c.setNoDelay(true)
  c.on('error', () => {})
  let got = 0
  c.on('data', (d) => {
    got += d.length
    if (got < 8) return
    got -= 8
    Atomics.add(trips, 0, 1)
    c.write(Buffer.alloc(8))
  })
  c.write(Buffer.alloc(8))
})
`

describe('LinkProxy (the multimaster suite peer links)', () => {
  const cleanup: (() => Promise<unknown>)[] = []
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f()
  })

  it("forwards while the bench's main thread is busy: a busy load generator adds nothing to a +0 ms link", async () => {
    const shared = new SharedArrayBuffer(4)
    const trips = new Int32Array(shared)
    const peers = new Worker(PEERS, { eval: true, workerData: { shared } })
    cleanup.push(() => peers.terminate())
    const echoPort = await new Promise<number>((resolve) => peers.once('message', (m) => resolve(m.echoPort)))
    const proxy = await new LinkProxy('127.0.0.1', echoPort).start()
    cleanup.push(() => proxy.close())
    peers.postMessage({ proxyPort: proxy.port })
    await waitFor(() => Atomics.load(trips, 0) >= 10, { what: 'round trips through the proxy', timeoutMs: 30_000 })

    // This thread is held (as the load generator holds it with --workers 0) until the peers
    // complete 200 more round trips through the proxy, or 10 s pass. A proxy forwarding on this
    // thread lets at most the one message already in flight through.
    const from = Atomics.load(trips, 0)
    const deadline = Date.now() + 10_000
    while (Atomics.load(trips, 0) - from < 200 && Date.now() < deadline) {}
    expect(Atomics.load(trips, 0) - from).toBeGreaterThanOrEqual(200)
  })

  it('cuts, heals and closes twice', async () => {
    const shared = new SharedArrayBuffer(4)
    const trips = new Int32Array(shared)
    const peers = new Worker(PEERS, { eval: true, workerData: { shared } })
    cleanup.push(() => peers.terminate())
    const echoPort = await new Promise<number>((resolve) => peers.once('message', (m) => resolve(m.echoPort)))
    const proxy = await new LinkProxy('127.0.0.1', echoPort).start()
    peers.postMessage({ proxyPort: proxy.port })
    await waitFor(() => Atomics.load(trips, 0) >= 10, { what: 'round trips through the proxy', timeoutMs: 30_000 })
    await proxy.cut()
    // The peers' connection is gone; a new one after heal() carries round trips again.
    const cutAt = Atomics.load(trips, 0)
    await proxy.heal()
    peers.postMessage({ proxyPort: proxy.port })
    await waitFor(() => Atomics.load(trips, 0) >= cutAt + 10, { what: 'round trips after heal', timeoutMs: 30_000 })
    await proxy.close()
    await proxy.close()
  })
})
