import { describe, expect, it } from 'vitest'
import { parseOptions } from '../options.js'
import type { ScenarioResult } from '../report/result.js'
import { floorChecks } from './floor-checks.js'

function scenario(pipeline: number, vsRedis: number, cpu: number): ScenarioResult {
  return {
    workload: 'put',
    clients: 50,
    pipeline,
    valueSize: 100,
    targets: { floor: { serverCpuUsPerOp: cpu } },
    floors: { floor: { throughputVsRedis: vsRedis, serverCpuVsRedis: null, tandemCpuAboveUs: null } },
  } as unknown as ScenarioResult
}

describe('floor checks: the put lines held against the floor server', () => {
  it('redis-benchmark, --sync periodic: SET throughput over Redis, 0.8 at -P 1 and 1.0 at -P 16', () => {
    const o = parseOptions('compare --driver redis-benchmark --sync periodic --targets redis,floor'.split(' '))
    const checks = floorChecks([scenario(1, 0.85, 20), scenario(16, 0.6, 6)], o)
    expect(checks.map((c) => [c.id, c.measured, c.target, c.met])).toEqual([
      ['floor.resp.put.50x1', 0.85, '>= 0.8', true],
      ['floor.resp.put.50x16', 0.6, '>= 1', false],
    ])
  })

  it('SDK, --sync periodic: server CPU a put (20 / 7 µs) and throughput; --sync always: 50x16 throughput only', () => {
    const periodic = parseOptions('compare --sync periodic --targets redis,floor'.split(' '))
    expect(floorChecks([scenario(16, 1.1, 10.5)], periodic).map((c) => [c.id, c.measured, c.met])).toEqual([
      ['floor.put.50x16.cpu', 10.5, false],
      ['floor.put.50x16', 1.1, true],
    ])
    const always = parseOptions('compare --sync always --targets redis,floor'.split(' '))
    expect(floorChecks([scenario(1, 0.5, 30), scenario(16, 0.9, 12)], always).map((c) => [c.id, c.met])).toEqual([
      ['floor.syncAlways.put.50x16', false],
    ])
  })

  it('reports nothing without the floor beside Redis', () => {
    const o = parseOptions('compare --sync periodic'.split(' '))
    const s = { ...scenario(16, 1, 1), floors: undefined } as ScenarioResult
    expect(floorChecks([s], o)).toEqual([])
  })
})
