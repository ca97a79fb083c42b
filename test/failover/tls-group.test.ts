import { readFileSync } from 'node:fs'
import type { NodeStatus } from '@tandem/client'
import { afterAll, describe, expect, it } from 'vitest'
import { makeTestCa } from '../helpers/test-ca.js'
import { waitFor } from '../helpers/wait.js'
import { FailoverGroup } from './group.js'

/**
 * A fail-over group whose members listen with TLS only and, with
 * --tls-ca, accept cluster and replication links only from a certificate
 * that CA signed: heartbeats, votes and w: 'majority' acks all travel over
 * wss://, so the group elects a master, acknowledges majority writes and
 * fails over only if its member links speak TLS with their certificates.
 */
describe('a fail-over group over TLS', () => {
  const certs = makeTestCa()
  const group = new FailoverGroup()
  afterAll(async () => {
    await group.teardown()
    certs.remove()
  })

  it('elects, acknowledges w: majority and fails over with every member link on TLS', async () => {
    const tls = ['--tls-cert', certs.cert, '--tls-key', certs.key, '--tls-ca', certs.ca]
    await group.start({ size: 3, args: [...tls, '--failover-timeout', '2000'] })
    const db = await group.client({ tls: { ca: readFileSync(certs.ca) }, timeoutMs: 15_000 })

    const first = await waitFor(
      () =>
        db.put('before', 'v1', { w: 'majority', timeoutMs: 3000 }).then(
          () => db.status(),
          () => false as const,
        ),
      { what: 'a master elected over TLS to acknowledge a w: majority write', timeoutMs: 30_000 },
    )
    const old = group.nodes.findIndex((n) => n.address === (first as NodeStatus).address)
    expect(old, `no member is at ${(first as NodeStatus).address}`).toBeGreaterThanOrEqual(0)

    await group.nodes[old].kill('SIGKILL')
    const second = await waitFor(
      () =>
        db.put('after', 'v2', { w: 'majority', timeoutMs: 3000 }).then(
          () => db.status(),
          () => false as const,
        ),
      { what: 'a new master elected over TLS to acknowledge a w: majority write', timeoutMs: 30_000 },
    )
    expect((second as NodeStatus).address).not.toBe(group.nodes[old].address)
    expect((second as NodeStatus).epoch).toBeGreaterThan((first as NodeStatus).epoch)
    expect(await db.get('before')).toBe('v1')
    expect(await db.get('after')).toBe('v2')
  })
})
