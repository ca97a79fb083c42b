import { afterAll, describe, expect, it } from 'vitest'
import { tempDir } from '../helpers/temp-dir.js'
import { setTestClock, testClockArgs } from '../helpers/test-clock.js'
import { waitFor } from '../helpers/wait.js'
import { Cluster, statusOf } from './cluster.js'

/**
 * Rule: --repl-timeout measures silence on the monotonic clock. A master
 * whose wall clock is stepped (NTP, an operator, a VM resumed) must neither
 * drop a replica early (a step forward makes an old "last heard" look
 * ancient) nor keep a dead one for as long as the step (a step back makes
 * it look fresh). The replica is stopped (SIGSTOP) before the step, so its
 * last message was heard on the old wall clock.
 */
describe('a master whose wall clock is stepped', () => {
  const cluster = new Cluster()
  const clockDir = tempDir('tandem-clock-step-')
  afterAll(async () => {
    await cluster.teardown()
    clockDir.remove()
  })

  for (const [direction, stepMs] of [
    ['back', -600_000],
    ['forward', 600_000],
  ] as const) {
    it(`${direction} drops a silent replica after --repl-timeout of real silence, not of the step`, async () => {
      const args = testClockArgs(clockDir.path, direction, 0)
      const master = await cluster.start(['--repl-timeout', '2000', ...args])
      const replica = await cluster.start(['--replicaof', master.address])
      const replicaId = (await statusOf(replica)).nodeId
      await waitFor(async () => (await statusOf(master)).replicas.some((r) => r.nodeId === replicaId), {
        what: 'the replica to stream',
      })

      await replica.kill('SIGSTOP')
      setTestClock(args[1], stepMs)
      try {
        // Before: a step back kept the replica for ten minutes; a step forward
        // dropped it at the next heartbeat, "silent for" about ten minutes.
        const warning = await master.waitForLog((l) => l.level === 'warn' && String(l.msg).includes(replicaId), 30_000)
        const silentMs = Number(/sent nothing for (\d+) ms/.exec(String(warning.msg))?.[1])
        expect(silentMs, String(warning.msg)).toBeGreaterThanOrEqual(2000)
        expect(silentMs, String(warning.msg)).toBeLessThan(60_000)
      } finally {
        await replica.kill('SIGCONT')
      }
    })
  }
})
