import type { TandemClient } from '@tandem/client'
import { afterAll, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import type { NodeProcess } from '../helpers/node-process.js'
import { waitFor } from '../helpers/wait.js'
import { Cluster, errorOf, statusOf } from './cluster.js'

describe('synchronous writes (w=N) and wait', () => {
  const cluster = new Cluster()
  afterAll(() => cluster.teardown())
  let master: NodeProcess
  let replicas: NodeProcess[]
  let db: TandemClient

  it('w: 3 with only 2 replicas fails with TIMEOUT, and the write stays on the master', async () => {
    // Rule: w=N answers only once N replicas acked; the write itself is not undone.
    master = await cluster.start()
    replicas = [
      await cluster.start(['--replicaof', master.address]),
      await cluster.start(['--replicaof', master.address]),
    ]
    await waitFor(async () => (await statusOf(master)).replicas.length === 2, { what: 'two replicas' })
    db = await cluster.client({ servers: [master.address] })
    const err = await errorOf(db.put('w3', 'stays', { w: 3, timeoutMs: 1000 }))
    expect(err?.code).toBe('TIMEOUT')
    expect(await db.get('w3')).toBe('stays')
    // ...and w: 2 succeeds with the same two replicas.
    await db.put('w2-probe', 'ok', { w: 2, timeoutMs: 5000 })
  })

  it('`tandem wait 2 --timeout 10000` prints 2 once both replicas hold the current seq', async () => {
    await db.batch(Array.from({ length: 100 }, (_, i) => ({ type: 'put' as const, key: `wait:${i}`, value: 'x' })))
    const result = await runCli(['--server', master.address, 'wait', '2', '--timeout', '10000'])
    expect(result.stderr).toBe('')
    expect(result.stdout.trim()).toBe('2')
    expect(result.code).toBe(0)
    // Asking for more replicas than there are prints how many made it and exits 3.
    const three = await runCli(['--server', master.address, 'wait', '3', '--timeout', '300'])
    expect(three.stdout.trim()).toBe('2')
    expect(three.code).toBe(3)
  })

  it('w: 2 writes acknowledged to the client are on both replicas when the master is killed', async () => {
    // Rule: a w=2 ack means two replicas durably applied that seq, so losing
    // the master right after loses none of them.
    const clients = await Promise.all(Array.from({ length: 4 }, () => cluster.client({ servers: [master.address] })))
    const acked = new Map<string, string>()
    let stop = false
    const writers = clients.flatMap((client, c) =>
      Array.from({ length: 4 }, async (_, f) => {
        for (let n = 0; !stop; n++) {
          const key = `ack:${c}.${f}.${n}`
          const value = `v${n}-${'x'.repeat(n % 50)}`
          try {
            await client.put(key, value, { w: 2, timeoutMs: 5000 })
            acked.set(key, value)
          } catch {
            // The master is gone; before the kill a write that timed out
            // on a loaded machine is only not counted, and the loop goes on
            // after a timer turn (a call that fails at once must not starve
            // the event loop, which would never see the master exit).
            if (stop || !master.running) return
            await new Promise((resolve) => setTimeout(resolve, 20))
          }
        }
      }),
    )
    await waitFor(() => acked.size >= 2000, { what: '2,000 acknowledged w:2 writes' })
    // Killed mid-burst: writes are still in flight when it dies.
    await master.kill('SIGKILL')
    stop = true
    await Promise.all(writers)
    const keys = [...acked.keys()]
    expect(keys.length).toBeGreaterThanOrEqual(2000)
    for (const replica of replicas) {
      const direct = await cluster.client({ servers: [replica.address], direct: true })
      const missing: string[] = []
      for (let i = 0; i < keys.length; i += 1000) {
        const chunk = keys.slice(i, i + 1000)
        const values = await direct.mget(chunk)
        chunk.forEach((key, j) => {
          if (values[j] !== acked.get(key)) missing.push(key)
        })
      }
      expect(missing).toEqual([])
    }
    console.info(`w:2 — ${keys.length} acknowledged writes found on both replicas after SIGKILL of the master`)
  })
})

describe('--min-replicas / --max-lag', () => {
  const cluster = new Cluster()
  afterAll(() => cluster.teardown())

  it('refuses writes with NOREPLICAS when the only replica is stopped, and takes them again when it is back', async () => {
    // Rule: with --min-replicas N the master takes writes only while N
    // replicas stream within --max-lag ms.
    const master = await cluster.start(['--min-replicas', '1', '--max-lag', '1000'])
    const replica = await cluster.start(['--replicaof', master.address])
    const db = await cluster.client({ servers: [master.address] })
    await waitFor(async () => (await statusOf(master)).replicas.some((r) => r.link === 'streaming'), {
      what: 'the replica to stream',
    })
    // The replica's lag can pass 1,000 ms on a loaded machine: a refused write is retried.
    await waitFor(async () => (await errorOf(db.put('before', '1'))) === null, { what: 'a first write to be taken' })

    // Paused: its acks stop, so its lag passes 1,000 ms after the next write.
    await replica.kill('SIGSTOP')
    const paused = await waitFor(async () => errorOf(db.put('while-paused', 'x')), {
      what: 'a write to be refused while the replica is paused',
    })
    expect(paused.code).toBe('NOREPLICAS')
    await replica.kill('SIGCONT')
    await waitFor(async () => (await errorOf(db.put('after-cont', 'x'))) === null, {
      what: 'writes to be taken again after SIGCONT',
    })

    // Stopped: no replica at all.
    await replica.stop()
    const stopped = await waitFor(async () => errorOf(db.put('while-stopped', 'x')), {
      what: 'a write to be refused with the replica stopped',
    })
    expect(stopped.code).toBe('NOREPLICAS')
    expect(await db.get('while-stopped')).toBeUndefined()
    // --direct: the node's own answer. (Without it the SDK's discovery
    // currently skips a master whose status says readOnly, and reports
    // NOMASTER; see the report on issue 3.)
    const cli = await runCli(['--server', master.address, '--direct', 'put', 'cli-key', 'v'])
    expect(cli.stderr).toMatch(/^error NOREPLICAS: /)
    expect(cli.code).toBe(3)

    await replica.start()
    await waitFor(async () => (await errorOf(db.put('back', 'x'))) === null, {
      what: 'writes to be taken once the replica is back',
    })
  })
})
