import { describe, expect, it } from 'vitest'
import { cyclicBatch } from '../helpers/cyclic-batch.js'
import { useNodeAndClient } from '../helpers/node-and-client.js'
import { PrometheusText } from '../helpers/prometheus.js'
import { waitFor } from '../helpers/wait.js'
import { RawClient } from './raw-client.js'

/**
 * Rule: whatever a client sends, a throw while the node handles it closes
 * that connection only (WebSocket 1011), logged and counted in
 * tandem_handler_errors_total; the node goes on serving everyone else.
 *
 * The input, on a test-only path: tandem refuses msgpackr's structured-clone
 * references (malformed msgpack, 1007: msgpack-extensions.test.ts), and no
 * plain msgpack input is known to make a handler throw. This node runs with
 * TANDEM_TEST_MSGPACKR_EXTENSIONS=1, which keeps msgpackr's own extension
 * readers, so a request can arrive as a cycle (ext 0x69 names a value, ext
 * 0x70 points back at it): a batch whose `ops` array holds an op whose own
 * `ops` is that same array. The check for bytes that are not UTF-8, which
 * walks a request's ops before validation, never ends on it (a stack
 * overflow, thrown out of the socket's 'data' handler). Before the guard,
 * that ended the node's process.
 */
describe('a throw while handling a client’s input', () => {
  const one = useNodeAndClient([], {}, { TANDEM_TEST_MSGPACKR_EXTENSIONS: '1' })

  it('closes that connection with 1011, logs and counts it, and serves the others', async () => {
    const bystander = await RawClient.open(one.node.address)
    const raw = await RawClient.open(one.node.address)
    raw.sendRaw(cyclicBatch())
    const closed = await raw.closed(30_000)
    expect(closed.code).toBe(1011)

    expect(one.node.running).toBe(true)
    await one.db.put('after', 'still serving')
    expect(await one.db.get('after')).toBe('still serving')
    expect((await bystander.request({ id: 7, op: 'get', key: 'after' })).result).toBe('still serving')
    bystander.terminate()

    const line = await one.node.waitForLog((l) => l.msg === 'a connection handler threw; that connection is closed')
    expect(line.link).toBe('client')
    const count = await waitFor(
      async () => {
        const text = await (await fetch(`http://${one.node.address}/metrics`)).text()
        return new PrometheusText(text).value('tandem_handler_errors_total', { link: 'client' })
      },
      { what: 'the throw counted in /metrics' },
    )
    expect(count).toBe(1)
  })
})
