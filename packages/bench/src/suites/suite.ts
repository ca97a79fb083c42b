import type { BenchOptions, SuiteName } from '../options.js'
import type { ProgressLine } from '../report/progress.js'
import type { ScenarioResult, TargetCheck } from '../report/result.js'
import type { Topology } from '../topology/topology.js'
import { coldStandbySuite } from './coldstandby.js'
import { consoleSuite } from './console.js'
import { failoverSuite } from './failover.js'
import { multimasterSuite } from './multimaster.js'
import { fullSyncSuite, lagSuite, replicasSuite } from './replication.js'
import { watchSuite } from './watch.js'

/** What a suite adds to the report: its scenarios, and the issue targets it measured. */
export interface SuiteOutput {
  scenarios: ScenarioResult[]
  checks: TargetCheck[]
}

export function runSuite(
  name: SuiteName,
  o: BenchOptions,
  progress: ProgressLine,
  live: Set<Topology>,
): Promise<SuiteOutput> {
  switch (name) {
    case 'lag':
      return lagSuite(o, progress, live)
    case 'replicas':
      return replicasSuite(o, progress, live)
    case 'fullsync':
      return fullSyncSuite(o, progress, live)
    case 'failover':
      return failoverSuite(o, progress, live)
    case 'console':
      return consoleSuite(o, progress, live)
    case 'multimaster':
      return multimasterSuite(o, progress, live)
    case 'watch':
      return watchSuite(o, progress, live)
    case 'coldstandby':
      return coldStandbySuite(o, progress, live)
  }
}
