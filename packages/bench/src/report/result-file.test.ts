import { describe, expect, it } from 'vitest'
import { parseOptions } from '../options.js'
import { defaultJsonPath, resultName } from './result-file.js'

describe('the fixed name of a run', () => {
  it.each([
    ['run --workload replicas', 'replicas'],
    ['run --workload lag --replicas 1', 'lag'],
    ['run --workload lag,replicas', 'lag+replicas'],
    ['run --workload put,get --clients 1 --pipeline 50', 'single'],
    ['run --workload put --replicas 2', 'tandem-replicas-2'],
    ['run --target redis --workload put', 'redis'],
    ['compare --workload put,get', 'compare'],
    ['compare --workload put --replicas 1', 'compare-replicas-1'],
    ['compare --workload put --targets tandem,redis,floor,floor-bare', 'compare-floor'],
    ['compare --driver redis-benchmark --workload put --targets floor,redis', 'compare-floor-redis-benchmark'],
    ['run --target floor --workload put', 'floor'],
    ['raw', 'raw'],
  ])('%s -> %s.json', (args, name) => {
    expect(resultName(parseOptions(args.split(' ')))).toBe(name)
  })

  it('lives in packages/bench/results, whatever the working directory', () => {
    expect(defaultJsonPath(parseOptions(['run', '--workload', 'failover']))).toMatch(
      /\/packages\/bench\/results\/failover\.json$/,
    )
  })
})
