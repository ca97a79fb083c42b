import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTestCa } from '../helpers/test-ca.js'
import { waitFor } from '../helpers/wait.js'
import { cli, has, startRespNode } from './helpers.js'

/**
 * RESP over TLS: a node with --tls-cert/--tls-key serves its RESP port over
 * TLS only (redis-cli --tls), and REPLICAOF to another node's TLS RESP port
 * asks it over TLS, checked against --tls-ca, for its tandem address.
 */
describe.skipIf(!has('redis-cli') || !has('openssl'))('RESP over TLS', () => {
  let ca: ReturnType<typeof makeTestCa>
  let nodes: Awaited<ReturnType<typeof startRespNode>>[]

  beforeAll(async () => {
    ca = makeTestCa()
    const tls = ['--tls-cert', ca.cert, '--tls-key', ca.key, '--tls-ca', ca.ca, '--sync', 'none']
    nodes = await Promise.all([startRespNode(tls), startRespNode(tls)])
  })
  afterAll(async () => {
    await Promise.all((nodes ?? []).map((n) => n.stop()))
    ca?.remove()
  })

  const tlsCli = (port: number, args: string[]) => cli(port, ['--tls', '--cacert', ca.ca, ...args])

  it('serves redis-cli --tls; a plain-TCP client gets no reply', () => {
    expect(tlsCli(nodes[0].port, ['ping']).stdout).toBe('PONG\n')
    expect(tlsCli(nodes[0].port, ['set', 'k', 'v']).stdout).toBe('OK\n')
    expect(tlsCli(nodes[0].port, ['get', 'k']).stdout).toBe('v\n')
    expect(cli(nodes[0].port, ['ping']).stdout).not.toContain('PONG')
  })

  it('REPLICAOF a TLS RESP port: the replica finds the tandem address over TLS and streams', async () => {
    expect(tlsCli(nodes[1].port, ['replicaof', '127.0.0.1', String(nodes[0].port)]).stdout).toBe('OK\n')
    await waitFor(() => tlsCli(nodes[1].port, ['info', 'replication']).stdout.includes('master_link_status:up'), {
      what: 'the TLS replica link up',
      timeoutMs: 30_000,
    })
    expect(tlsCli(nodes[0].port, ['set', 'after', 'x']).stdout).toBe('OK\n')
    expect(tlsCli(nodes[0].port, ['wait', '1', '10000']).stdout).toBe('1\n')
    await waitFor(() => tlsCli(nodes[1].port, ['get', 'after']).stdout === 'x\n', { what: 'the write on the replica' })
    expect(tlsCli(nodes[1].port, ['get', 'k']).stdout).toBe('v\n')
  })
})
