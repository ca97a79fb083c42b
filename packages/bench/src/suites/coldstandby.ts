import { createWriteStream } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { finished } from 'node:stream/promises'
import type { TandemClient } from '@tandem/client'
import type { BenchOptions } from '../options.js'
import type { ProgressLine } from '../report/progress.js'
import type { TargetCheck } from '../report/result.js'
import { scenarioResult } from '../report/scenario-result.js'
import { NodeProcess } from '../topology/node-process.js'
import { startTandem } from '../topology/tandem.js'
import type { Topology } from '../topology/topology.js'
import { holdsWithin } from '../wait.js'
import { directClient, loadKeys, round } from './common.js'
import type { SuiteOutput } from './suite.js'

/** Puts written after the backup, each held by the hot replica before the master dies. */
const WRITES_AFTER_BACKUP = 1000

/**
 * Issue 16's cold standby against a hot one, in the same run. A master
 * holding --keys keys and one replica; a backup (tandem snapshot save) is
 * taken, then WRITES_AFTER_BACKUP more puts reach both; the master is
 * SIGKILLed. Then:
 * - cold: a new node starts from the backup (--restore) following the
 *   surviving replica, catches up, is promoted, and acknowledges a put:
 *   SIGKILL to that acknowledgement (restore + start + catch-up + promote);
 * - hot: the surviving replica is promoted and acknowledges a put: promote
 *   to that acknowledgement (a manual promotion; the election of a
 *   --failover auto group is measured by --workload failover);
 * - alone: a node restored from the backup with no replica to catch up
 *   from: the writes it lacks are the ones lost when no replica survives.
 */
export async function coldStandbySuite(
  o: BenchOptions,
  progress: ProgressLine,
  live: Set<Topology>,
): Promise<SuiteOutput> {
  const topology = await startTandem({ replicas: 1, sync: o.sync, authToken: o.authToken })
  live.add(topology)
  const clients: TandemClient[] = []
  const client = async (address: string) => {
    const c = await directClient(address, o.authToken, 120_000)
    clients.push(c)
    return c
  }
  try {
    const master = topology.master
    const hot = topology.replicas[0]
    progress.note(`coldstandby: loading ${o.keys.toLocaleString('en-US')} keys into ${master}`)
    await loadKeys(master, { ...o, connections: 4 })
    const onMaster = await client(master)
    const file = join(topology.root as string, 'coldstandby.snap')
    const out = createWriteStream(file)
    const backupStarted = performance.now()
    for await (const chunk of onMaster.backup())
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()))
    out.end()
    await finished(out)
    const backupMs = performance.now() - backupStarted
    for (let i = 0; i < WRITES_AFTER_BACKUP; i += 100) {
      await Promise.all(
        Array.from({ length: 100 }, (_, j) => onMaster.put(`after-backup:${i + j}`, 'v', { w: 1, timeoutMs: 30_000 })),
      )
    }
    const head = (await onMaster.status()).seq
    const onHot = await client(hot)
    if (!(await holdsWithin(async () => (await onHot.status()).seq >= head, 60_000))) {
      throw new Error('the replica did not hold every write before the kill')
    }
    await topology.nodes[0].kill('SIGKILL')
    const killedAt = performance.now()

    const auth = o.authToken ? ['--auth-token', o.authToken] : []
    const start = async (name: string, args: string[]) => {
      const node = new NodeProcess(join(topology.root as string, name), ['--sync', o.sync, ...auth, ...args], {}, name)
      topology.processes.push(node)
      await node.start(30 * 60_000)
      return node
    }
    progress.note('coldstandby: master killed; restoring the cold standby from the backup')
    const cold = await start('cold-standby', ['--restore', file, '--replicaof', hot])
    const onCold = await client(cold.address)
    if (!(await holdsWithin(async () => (await onCold.status()).seq >= head, 30 * 60_000, 10))) {
      throw new Error(`the cold standby did not catch up with seq ${head}`)
    }
    await onCold.promote()
    await onCold.put('cold-standby:first', 'v')
    const coldMs = performance.now() - killedAt

    const promotedAt = performance.now()
    await onHot.promote()
    await onHot.put('hot-standby:first', 'v')
    const hotMs = performance.now() - promotedAt

    const alone = await start('cold-standby-alone', ['--restore', file])
    const onAlone = await client(alone.address)
    const lost = head - (await onAlone.status()).seq

    const scenario = scenarioResult(o, {
      name: `coldstandby: ${o.keys} keys, backup in ${round(backupMs)} ms, master SIGKILLed`,
      workload: 'coldstandby',
      clients: 1,
      pipeline: 1,
      replicas: 1,
    })
    const checks: TargetCheck[] = [
      {
        id: 'coldstandby.coldMs',
        name: `cold standby: SIGKILL of the master to the first acknowledged write on a node restored from the backup of ${o.keys} keys (restore + start + catch-up of ${WRITES_AFTER_BACKUP} writes from the replica + promote)`,
        measured: round(coldMs),
        unit: 'ms',
        target: 'reported',
        met: true,
      },
      {
        id: 'coldstandby.hotMs',
        name: 'hot standby in the same run: promote of the surviving replica to its first acknowledged write',
        measured: round(hotMs),
        unit: 'ms',
        target: 'reported',
        met: true,
      },
      {
        id: 'coldstandby.lostWrites',
        name: `writes lost when no replica survived (${WRITES_AFTER_BACKUP} written after the last backup)`,
        measured: lost,
        unit: 'writes',
        target: `${WRITES_AFTER_BACKUP}`,
        met: lost === WRITES_AFTER_BACKUP,
      },
    ]
    return { scenarios: [scenario], checks }
  } finally {
    await Promise.all(clients.map((c) => c.close()))
    live.delete(topology)
    await topology.close()
  }
}
