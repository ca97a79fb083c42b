import { Packr } from '@tandem/protocol'
import { describe, expect, it } from 'vitest'
import { cyclicBatch } from '../helpers/cyclic-batch.js'
import { useNodeAndClient } from '../helpers/node-and-client.js'
import { PrometheusText } from '../helpers/prometheus.js'
import { waitFor } from '../helpers/wait.js'
import { RawClient } from './raw-client.js'

/**
 * Rule: tandem speaks plain msgpack. A frame holding one of msgpackr's own
 * extension types (structured clone, Set, typed array, ...) or a msgpackr
 * record is malformed msgpack: the node closes that socket with 1007
 * (README, error codes), counts it as INVALID, stores nothing of it, and
 * serves everyone else.
 */
describe('msgpackr extensions from a client', () => {
  const one = useNodeAndClient()

  // What a msgpackr client could send with its own types on.
  const rich = new Packr({ useRecords: false, moreTypes: true })
  const records = new Packr({ useRecords: true })

  const FRAMES: [string, () => Buffer, string | null][] = [
    ['a structured-clone cycle (ext 0x69/0x70)', cyclicBatch, null],
    [
      'a typed array value (ext 0x74)',
      () => rich.pack({ id: 1, op: 'put', key: 'typed', value: new Uint8Array([1]) }),
      'typed',
    ],
    ['a Set of keys (ext 0x73)', () => rich.pack({ id: 1, op: 'mget', keys: new Set(['a']) }), null],
    ['a msgpackr record (fixext 0x72)', () => records.pack({ id: 1, op: 'put', key: 'record', value: 'v' }), 'record'],
  ]

  it('closes the socket with 1007 on each, stores nothing, and keeps serving', async () => {
    const bystander = await RawClient.open(one.node.address)
    let id = 100
    for (const [what, frame, key] of FRAMES) {
      const raw = await RawClient.open(one.node.address)
      raw.sendRaw(frame())
      const closed = await raw.closed(30_000)
      expect(closed.code, what).toBe(1007)
      expect(closed.reason, what).toMatch(/^malformed msgpack: (extension type|msgpackr record)/)
      expect(one.node.running, what).toBe(true)
      if (key !== null) expect(await one.db.get(key), what).toBeUndefined()
      const reply = await bystander.request({ id: ++id, op: 'put', key: 'after', value: what })
      expect(reply.error, what).toBeUndefined()
      expect(await one.db.get('after'), what).toBe(what)
    }
    bystander.terminate()

    const invalid = await waitFor(
      async () => {
        const text = await (await fetch(`http://${one.node.address}/metrics`)).text()
        const n = new PrometheusText(text).value('tandem_errors_total', { code: 'INVALID' })
        return n === FRAMES.length ? n : undefined
      },
      { what: 'each refused frame counted as INVALID in /metrics', timeoutMs: 30_000 },
    )
    expect(invalid).toBe(FRAMES.length)
  })
})
