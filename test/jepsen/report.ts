import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { describeOp, type Op } from './checker/history.js'
import type { Failure } from './checker/linearizable.js'
import type { SetVerdict } from './checker/set.js'
import type { FaultEvent } from './nemesis.js'
import { describeSample, type Timeline } from './timeline.js'

/** What a report says about the run it comes from. */
export interface RunHeader {
  title: string
  seed: number
  replay: string
  settings: Record<string, unknown>
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(3)} s`

/** The ops of `failure`, the faults around it and each node's role and epoch then. */
function describeFailure(failure: Failure, faults: FaultEvent[], timeline: Timeline, nodes: number): string[] {
  const out: string[] = []
  const b = failure.blocking
  out.push(`key ${JSON.stringify(failure.key)}`)
  out.push('')
  out.push(
    `The longest order of this key's ops the register accepts holds ${failure.prefixLength} of them; it ends with:`,
  )
  for (const op of failure.prefixTail) out.push(`  ${describeOp(op)}`)
  out.push(`The register then holds ${failure.state}, and this op cannot come next, nor any other in time:`)
  out.push(`  ${describeOp(b)}`)
  if (failure.concurrent.length > 0) {
    out.push('Ops of the key running at the same time, not in that order:')
    for (const op of failure.concurrent.slice(0, 30)) out.push(`  ${describeOp(op)}`)
    if (failure.concurrent.length > 30) out.push(`  ... and ${failure.concurrent.length - 30} more`)
  }
  const first = Math.min(b.call, ...failure.prefixTail.map((o) => o.call))
  const last = Number.isFinite(b.ret) ? b.ret : b.call
  const from = Math.max(0, first - 5000)
  const to = last + 2000
  out.push('')
  out.push(
    `Faults from ${seconds(from)} to ${seconds(to)} (times since the run began; ops above use the same clock, in ms):`,
  )
  const around = faults.filter((f) => f.time >= from && f.time <= to)
  const before = faults.filter((f) => f.time < from && f.phase === 'start')
  const stillOn = before.filter(
    (f) => !faults.some((e) => e.phase === 'end' && e.detail === f.detail && e.time > f.time && e.time < from),
  )
  for (const f of stillOn) out.push(`  (since ${seconds(f.time)}) ${f.detail}`)
  for (const f of around) out.push(`  ${seconds(f.time)} ${f.phase === 'start' ? 'begins' : 'healed'}: ${f.detail}`)
  if (stillOn.length === 0 && around.length === 0) out.push('  none')
  out.push('')
  out.push('Nodes:')
  for (let i = 0; i < nodes; i++) {
    const then = timeline.at(i, from)
    if (then) out.push(`  n${i} at ${seconds(from)}: ${describeSample(then)}`)
    for (const s of timeline.between(from, to).filter((x) => x.node === i)) {
      out.push(`  n${i} at ${seconds(s.time)}: ${describeSample(s)}`)
    }
  }
  return out
}

export function writeLinearizabilityReport(
  file: string,
  header: RunHeader,
  failures: Failure[],
  faults: FaultEvent[],
  timeline: Timeline,
  nodes: number,
): void {
  const lines = [
    `tandem fault suite: ${header.title}`,
    `seed ${header.seed}; replay with ${header.replay}`,
    `settings: ${JSON.stringify(header.settings)}`,
    '',
  ]
  failures.forEach((f, n) => {
    lines.push(`=== violation ${n + 1} of ${failures.length}`)
    lines.push(...describeFailure(f, faults, timeline, nodes))
    lines.push('')
  })
  lines.push('All faults of the run:')
  for (const f of faults) lines.push(`  ${seconds(f.time)} ${f.phase === 'start' ? 'begins' : 'healed'}: ${f.detail}`)
  write(file, lines)
}

export function writeSetReport(
  file: string,
  header: RunHeader,
  verdict: SetVerdict,
  adds: Op[],
  faults: FaultEvent[],
): void {
  const lines = [
    `tandem fault suite: ${header.title}`,
    `seed ${header.seed}; replay with ${header.replay}`,
    `settings: ${JSON.stringify(header.settings)}`,
    '',
    `lost (acknowledged, not removed, missing at the end): ${verdict.lost.length}`,
    ...verdict.lost.slice(0, 50).map((e) => `  ${describeOp(adds.find((o) => o.key === e) as Op)}`),
    `resurrected (removal acknowledged, present at the end): ${verdict.resurrected.join(', ') || 'none'}`,
    `unexpected (present, never added): ${verdict.unexpected.join(', ') || 'none'}`,
    `nodes that differ: ${JSON.stringify(verdict.diverged).slice(0, 2000)}`,
    '',
    'All faults of the run:',
    ...faults.map((f) => `  ${seconds(f.time)} ${f.phase === 'start' ? 'begins' : 'healed'}: ${f.detail}`),
  ]
  write(file, lines)
}

function write(file: string, lines: string[]): void {
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, `${lines.join('\n')}\n`)
}
