import type { BenchOptions } from '../options.js'
import type { ScenarioResult } from './result.js'

/** What a scenario says of itself; the rest comes from the run's options or is empty. */
type ScenarioFields = Pick<ScenarioResult, 'name' | 'workload' | 'clients' | 'pipeline' | 'replicas'> &
  Partial<ScenarioResult>

/**
 * One scenario's result, as every suite reports it: the run's value size,
 * key count, distribution and `w` (unless the scenario says otherwise), no
 * target measured yet, a closed loop, and none of the figures only some
 * suites fill (passes, ratios against Redis or against no replicas).
 */
export function scenarioResult(
  o: Pick<BenchOptions, 'distribution' | 'valueSize' | 'keys' | 'w'>,
  fields: ScenarioFields,
): ScenarioResult {
  const { name, workload, clients, pipeline, replicas, ...rest } = fields
  return {
    name,
    workload,
    distribution: o.distribution,
    clients,
    pipeline,
    valueSize: o.valueSize,
    keys: o.keys,
    w: o.w ?? null,
    targets: {},
    offeredRate: null,
    replicas,
    vsNoReplicas: null,
    passes: null,
    ratios: null,
    ...rest,
  }
}
