import { describe, expect, it } from 'vitest'
import { consistencyChecks } from './consistency-checks.js'
import type { ScenarioResult } from './report/result.js'

function scenario(workload: string, pipeline: number, consistency: string | null, throughput: number): ScenarioResult {
  return {
    workload,
    clients: 50,
    pipeline,
    consistency,
    targets: { tandem: { throughput } },
  } as unknown as ScenarioResult
}

describe('consistencyChecks', () => {
  it('gives each consistency over local in the same scenario, with the 0.8x target at get 50x16 only', () => {
    const checks = consistencyChecks([
      scenario('put', 16, null, 50_000),
      scenario('get', 1, 'linearizable', 30_000),
      scenario('get', 1, 'lease', 36_000),
      scenario('get', 1, 'local', 40_000),
      scenario('get', 16, 'linearizable', 70_000),
      scenario('get', 16, 'local', 100_000),
    ])
    expect(checks.map((c) => [c.id, c.measured, c.target, c.met])).toEqual([
      ['reads.linearizable.get.50x1', 0.75, '-', null],
      ['reads.lease.get.50x1', 0.9, '-', null],
      ['reads.linearizable.get.50x16', 0.7, '>= 0.8', false],
    ])
  })

  it('reports nothing for a scenario without a local one beside it', () => {
    expect(consistencyChecks([scenario('get', 16, 'linearizable', 70_000)])).toEqual([])
  })
})
