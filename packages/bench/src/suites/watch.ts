import { TandemClient } from '@tandem/client'
import type { DriverSpec } from '../drivers/driver.js'
import type { BenchOptions } from '../options.js'
import type { ProgressLine } from '../report/progress.js'
import type { TargetCheck } from '../report/result.js'
import { scenarioResult } from '../report/scenario-result.js'
import { runScenario, type Scenario } from '../scenario.js'
import { startTandem } from '../topology/tandem.js'
import type { Topology } from '../topology/topology.js'
import { round } from './common.js'
import type { SuiteOutput } from './suite.js'

/**
 * Issue 16's watch throughput: one watcher follows every key of a master
 * while puts run at saturation (the run's first clients x pipeline). The
 * figure is the events the watcher received per second of the pass, beside
 * the put throughput of the same pass; the watcher's lag at the end of the
 * pass (entries the master holds that it has not yet received) says
 * whether it kept up.
 */
export async function watchSuite(o: BenchOptions, progress: ProgressLine, live: Set<Topology>): Promise<SuiteOutput> {
  const clients = o.clients[0]
  const pipeline = o.pipeline[0]
  const topology = await startTandem({ replicas: 0, sync: o.sync, authToken: o.authToken })
  live.add(topology)
  const db = await TandemClient.connect({ servers: [topology.master], authToken: o.authToken, direct: true })
  const watch = db.watch({})
  let events = 0
  let lastSeq = 0
  const following = (async () => {
    for await (const event of watch) {
      events++
      lastSeq = event.seq
    }
  })().catch(() => {})
  try {
    progress.note(`watch: master ${topology.master}, one watcher on every key`)
    const spec: DriverSpec = { target: 'tandem', servers: [topology.master], authToken: o.authToken, w: o.w, pipeline }
    const s: Scenario = { name: `put ${clients}x${pipeline}, 1 watcher`, workload: 'put', clients, pipeline }
    const before = events
    const started = performance.now()
    const result = await runScenario('tandem', topology, spec, s, o, progress)
    const seconds = (performance.now() - started) / 1000
    const received = events - before
    const head = (await db.status()).seq
    const eventsPerSecond = seconds > 0 ? round(received / seconds, 0) : null
    const scenario = scenarioResult(o, {
      name: `watch: put ${clients}x${pipeline} at saturation, one watcher on every key`,
      workload: 'watch',
      clients,
      pipeline,
      targets: { tandem: result },
      replicas: 0,
    })
    const checks: TargetCheck[] = [
      {
        id: 'watch.eventsPerSecond',
        name: `events/s received by one watcher while puts ran at ${result.throughput} ops/s (${received} events in ${round(seconds, 1)} s; ${head - lastSeq} entries behind at the end)`,
        measured: eventsPerSecond,
        unit: 'events/s',
        target: 'reported',
        met: eventsPerSecond !== null && eventsPerSecond > 0,
      },
    ]
    return { scenarios: [scenario], checks }
  } finally {
    watch.close()
    await following
    await db.close()
    live.delete(topology)
    await topology.close()
  }
}
