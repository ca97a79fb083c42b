import { describe, expect, it } from 'vitest'
import { scenarioResult } from './scenario-result.js'

describe('scenarioResult', () => {
  const run = { distribution: 'zipfian' as const, valueSize: 100, keys: 1000, w: 2 as const }

  it('fills what a scenario leaves out from the run, empty, in the order the JSON has always had', () => {
    const s = scenarioResult(run, { name: 'n', workload: 'put', clients: 50, pipeline: 16, replicas: 1 })
    expect(s).toEqual({
      name: 'n',
      workload: 'put',
      distribution: 'zipfian',
      clients: 50,
      pipeline: 16,
      valueSize: 100,
      keys: 1000,
      w: 2,
      targets: {},
      offeredRate: null,
      replicas: 1,
      vsNoReplicas: null,
      passes: null,
      ratios: null,
    })
    expect(Object.keys(s)).toEqual([
      'name',
      'workload',
      'distribution',
      'clients',
      'pipeline',
      'valueSize',
      'keys',
      'w',
      'targets',
      'offeredRate',
      'replicas',
      'vsNoReplicas',
      'passes',
      'ratios',
    ])
  })

  it('takes what the scenario says over the run’s, and its own fields after', () => {
    const s = scenarioResult(
      { ...run, w: undefined },
      { name: 'f', workload: 'failover', clients: 1, pipeline: 4, replicas: 2, w: null, offeredRate: 500, consoles: 3 },
    )
    expect(s.w).toBeNull()
    expect(s.offeredRate).toBe(500)
    expect(s.consoles).toBe(3)
    expect(
      scenarioResult({ ...run, w: undefined }, { name: 'x', workload: 'get', clients: 1, pipeline: 1, replicas: 0 }).w,
    ).toBeNull()
  })
})
