import type { BenchOptions } from '../options.js'
import type { ScenarioResult, TargetCheck } from '../report/result.js'

/**
 * Issue 14's and 15's put lines held against the floor server (tandem's
 * storage with no tandem code) in the same run: where the floor misses a
 * line, the design's storage on this machine does, whatever tandem does
 * above it. Reported for 100-byte puts from 50 clients only, as the lines
 * are; ids `floor.resp.put.50x16`, `floor.put.50x1.cpu`, ...
 *
 * redis-benchmark (15), --sync periodic: SET throughput over Redis's, >= 0.8
 * at -P 1, >= 1.0 at -P 16. SDK (14), --sync periodic: server CPU a put <= 20
 * µs at 50x1, <= 7 at 50x16, and throughput over Redis's >= 0.8 / >= 1.0;
 * --sync always, 50x16: throughput over Redis's (appendfsync always) >= 1.0.
 */
export function floorChecks(scenarios: ScenarioResult[], o: BenchOptions): TargetCheck[] {
  const checks: TargetCheck[] = []
  for (const s of scenarios) {
    const f = s.floors?.floor
    const floor = s.targets.floor
    if (!f || !floor || s.workload !== 'put' || s.valueSize !== 100 || s.clients !== 50) continue
    const shape = `${s.clients}x${s.pipeline}`
    const lead = 'floor server (tandem storage, no tandem code)'
    if (s.pipeline !== 1 && s.pipeline !== 16) continue
    if (o.driver === 'redis-benchmark') {
      if (o.sync !== 'periodic') continue
      const wanted = s.pipeline === 1 ? 0.8 : 1
      checks.push({
        id: `floor.resp.put.${shape}`,
        name: `${lead}: redis-benchmark SET -c 50 -P ${s.pipeline}, floor / Redis throughput (15's line)`,
        measured: f.throughputVsRedis,
        unit: 'x',
        target: `>= ${wanted}`,
        met: f.throughputVsRedis >= wanted,
      })
      continue
    }
    if (o.sync === 'always') {
      if (s.pipeline !== 16) continue
      checks.push({
        id: `floor.syncAlways.put.${shape}`,
        name: `${lead}: put ${shape} --sync always, floor / Redis appendfsync always throughput (14's line)`,
        measured: f.throughputVsRedis,
        unit: 'x',
        target: '>= 1',
        met: f.throughputVsRedis >= 1,
      })
      continue
    }
    if (o.sync !== 'periodic') continue
    const cpuLine = s.pipeline === 1 ? 20 : 7
    const cpu = floor.serverCpuUsPerOp ?? null
    checks.push({
      id: `floor.put.${shape}.cpu`,
      name: `${lead}: server CPU a put, ${shape} (14's line)`,
      measured: cpu,
      unit: 'µs',
      target: `<= ${cpuLine}`,
      met: cpu === null ? null : cpu <= cpuLine,
    })
    const wanted = s.pipeline === 1 ? 0.8 : 1
    checks.push({
      id: `floor.put.${shape}`,
      name: `${lead}: put ${shape}, floor / Redis throughput (14's line)`,
      measured: f.throughputVsRedis,
      unit: 'x',
      target: `>= ${wanted}`,
      met: f.throughputVsRedis >= wanted,
    })
  }
  return checks
}
