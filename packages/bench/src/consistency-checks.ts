import type { ScenarioResult, TargetCheck } from './report/result.js'

/**
 * Issue 13's figure, read off one run with `--consistency
 * linearizable,lease,local`: what a read's safety costs, as tandem's read
 * throughput with `linearizable` (and `lease`) over `local` in the same
 * scenario (workload, clients x pipeline). Wanted: `linearizable` at least
 * 0.8x of `local` for gets at 50x16; other settings are reported with no
 * target. Ids: `reads.linearizable.get.50x16`, `reads.lease.a.50x1`, ...
 */
export function consistencyChecks(scenarios: ScenarioResult[]): TargetCheck[] {
  const checks: TargetCheck[] = []
  const local = new Map<string, number>()
  const shape = (s: ScenarioResult) => `${s.workload}.${s.clients}x${s.pipeline}`
  for (const s of scenarios) {
    const t = s.targets.tandem
    if (s.consistency === 'local' && t) local.set(shape(s), t.throughput)
  }
  for (const s of scenarios) {
    const t = s.targets.tandem
    if (!t || (s.consistency !== 'linearizable' && s.consistency !== 'lease')) continue
    const base = local.get(shape(s))
    if (base === undefined || base <= 0) continue
    const ratio = Math.round((t.throughput / base) * 100) / 100
    const wanted = s.consistency === 'linearizable' && s.workload === 'get' && s.clients === 50 && s.pipeline === 16
    checks.push({
      id: `reads.${s.consistency}.${shape(s)}`,
      name: `${s.workload} ${s.clients}x${s.pipeline}, throughput with ${s.consistency} reads / with local reads`,
      measured: ratio,
      unit: 'x',
      target: wanted ? '>= 0.8' : '-',
      met: wanted ? ratio >= 0.8 : null,
    })
  }
  return checks
}
