import { fileURLToPath } from 'node:url'
import { type BenchOptions, isSuite } from '../options.js'

/** Where runs are kept: one JSON per suite, replaced by each rerun (older runs are in git history). */
const RESULTS_DIR = fileURLToPath(new URL('../../results/', import.meta.url))
/** The repository root, which BENCHMARKS.md's links are relative to. */
export const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url))

/**
 * The fixed name of a run's JSON: the suite (`replicas`, `lag`, `fullsync`,
 * `failover`, joined with `+` when several run together), `single` for load
 * workloads on a lone tandem node, `compare` for tandem against Redis, `raw`
 * for raw LevelDB; a run with replicas says how many.
 */
export function resultName(o: BenchOptions): string {
  const replicas = o.replicas > 0 ? `-replicas-${o.replicas}` : ''
  if (o.command === 'raw') return 'raw'
  if (o.command === 'compare') {
    const floor = o.targets.some((t) => t === 'floor' || t === 'floor-bare') ? '-floor' : ''
    return `compare${floor}${o.driver === 'redis-benchmark' ? '-redis-benchmark' : ''}${replicas}`
  }
  const suites = o.workload.filter(isSuite)
  const loads = suites.length < o.workload.length
  const load = o.target !== 'tandem' ? `${o.target}${replicas}` : replicas ? `tandem${replicas}` : 'single'
  return [...(loads ? [load] : []), ...suites].join('+')
}

export function defaultJsonPath(o: BenchOptions): string {
  return `${RESULTS_DIR}${resultName(o)}.json`
}
