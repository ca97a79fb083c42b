import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { lagAnatomy, readTimelines, timelinesOf } from './lag-anatomy.js'

// Two masters A and B; markers alternate between them as the probe puts them (even on A, odd on B).
const A = '127.0.0.1:1'
const B = '127.0.0.1:2'

/** The probe's lines and each node's key-trace lines for `count` markers, marker n's segments given by `ms(n)`. */
function traces(count: number, ms: (n: number) => number[]): { probe: string; a: string; b: string } {
  const probe: string[] = []
  const node: Record<string, string[]> = { [A]: [], [B]: [] }
  for (let n = 0; n < count; n++) {
    const writer = n % 2 === 0 ? A : B
    const reader = writer === A ? B : A
    const acked = 1_000_000 + n * 10
    const [arrive, inbox, wait, write, watch, deliver] = ms(n)
    const received = acked + arrive
    const queued = received + inbox
    const handed = queued + wait
    const written = handed + write
    const sent = written + watch
    probe.push(`P ${writer} ${n} ${acked.toFixed(3)}`)
    // The writer's own watch sees it too (no lag), and so does the reader's.
    probe.push(`E ${writer} ${n} ${(acked - 1).toFixed(3)}`)
    probe.push(`E ${reader} ${n} ${(sent + deliver).toFixed(3)}`)
    // The writer's group (a client's write: L), then the reader's (a peer's frame: R), and its watch event.
    node[writer].push(`G ${acked - 3} ${acked - 2} ${acked - 1} L${n}`)
    node[reader].push(`G ${queued} ${handed} ${written} L999999 R${n}:${received}:${queued}`)
    node[reader].push(`W ${sent} ${n}`)
    // The writer's own watch event for it, which is not the reader's.
    node[writer].push(`W ${acked} ${n}`)
  }
  return { probe: probe.join('\n'), a: node[A].join('\n'), b: node[B].join('\n') }
}

describe('lag anatomy', () => {
  it('cuts each marker’s lag into segments that sum to it, from the reader’s lines', () => {
    const t = traces(4, (n) => [1 + n, 0.5, 2, 3, 0.25, 0.25])
    const { timelines, markers } = timelinesOf([t.probe], [t.a, t.b])
    expect(markers).toBe(4)
    expect(timelines.map((x) => x.marker).sort()).toEqual([0, 1, 2, 3])
    for (const x of timelines) {
      expect(x.segments).toEqual({ arrive: 1 + x.marker, inbox: 0.5, wait: 2, write: 3, watch: 0.25, deliver: 0.25 })
      const sum = Object.values(x.segments).reduce((a, b) => a + b, 0)
      expect(x.lagMs).toBeCloseTo(sum, 6)
    }
  })

  it('leaves out a marker missing from a trace, and counts it among those acknowledged', () => {
    const t = traces(3, () => [1, 1, 1, 1, 1, 1])
    // Marker 1 (written on B) was never shown on A's watch.
    const a = t.a
      .split('\n')
      .filter((l) => l !== `W ${l.split(' ')[1]} 1`)
      .join('\n')
    const found = timelinesOf([t.probe], [a, t.b])
    expect(found.markers).toBe(3)
    expect(found.timelines.map((x) => x.marker).sort()).toEqual([0, 2])
  })

  it('reports what the slowest 1% of markers spent in each segment', () => {
    // 200 markers: 198 of them wait 2 ms, the two slowest wait 100 ms and write 50.
    const t = traces(200, (n) => (n >= 198 ? [1, 0, 100, 50, 1, 1] : [1, 0, 2, 3, 1, 1]))
    const anatomy = lagAnatomy(timelinesOf([t.probe], [t.a, t.b]))
    expect(anatomy).not.toBeNull()
    expect(anatomy?.traced).toBe(200)
    expect(anatomy?.top).toBe(2)
    expect(anatomy?.lagP99Ms).toBe(153)
    const of = (s: string) => anatomy?.segments.find((x) => x.segment === s)
    expect(of('wait')).toEqual({ segment: 'wait', topMeanMs: 100, midMeanMs: 2, p99Ms: 100 })
    expect(of('write')).toEqual({ segment: 'write', topMeanMs: 50, midMeanMs: 3, p99Ms: 50 })
    expect(of('arrive')?.topMeanMs).toBe(1)
  })

  it('reads a directory of the probe’s and the nodes’ files, with the lines a node dropped', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lag-anatomy-'))
    try {
      const t = traces(10, () => [1, 1, 1, 1, 1, 1])
      writeFileSync(join(dir, 'probe-1.txt'), `${t.probe}\n`)
      writeFileSync(join(dir, 'keys-2.txt'), `${t.a}\nD 7\n`)
      writeFileSync(join(dir, 'keys-3.txt'), `${t.b}\n`)
      writeFileSync(join(dir, 'other.log'), 'G 1 2 3 R0:0:0\n')
      const found = readTimelines(dir)
      expect(found.markers).toBe(10)
      expect(found.timelines).toHaveLength(10)
      expect(found.dropped).toBe(7)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('cuts arrive at the origin’s frame sent, from the seqs of the origin’s group and the frames its feed sent', () => {
    // 200 markers: the two slowest leave their origin 30 ms after the acknowledgement, the rest 1 ms before it.
    const t = traces(200, (n) => (n >= 198 ? [40, 0, 2, 3, 1, 1] : [1, 0, 2, 3, 1, 1]))
    const withSeqs = (text: string) =>
      text
        .split('\n')
        .flatMap((line) => {
          const p = line.split(' ')
          if (p[0] !== 'G' || !p[4]?.startsWith('L') || p[4] === 'L999999') return [line]
          const n = Number(p[4].slice(1))
          const acked = 1_000_000 + n * 10
          const seq = 10 + n * 3
          const at = n >= 198 ? acked + 30 : acked - 1
          // The group's entries seq .. seq+2 go out in one frame with the group before's (seq-3 ..).
          return [`${line} Q${seq}:${seq + 2}`, `F ${at} ${seq - 3} ${seq + 2}`]
        })
        .join('\n')
    const found = timelinesOf([t.probe], [withSeqs(t.a), withSeqs(t.b)])
    expect(found.timelines.find((x) => x.marker === 5)?.sentMs).toBeCloseTo(-1, 6)
    expect(found.timelines.find((x) => x.marker === 199)?.sentMs).toBeCloseTo(30, 6)
    const anatomy = lagAnatomy(found)
    expect(anatomy?.sent).toEqual({ topMeanMs: 30, midMeanMs: -1, traced: 200 })
    // Without them, nothing is told.
    expect(lagAnatomy(timelinesOf([t.probe], [t.a, t.b]))?.sent).toBeNull()
  })

  it('has nothing to report when no marker was traced', () => {
    expect(lagAnatomy({ timelines: [], markers: 5, dropped: 0 })).toBeNull()
  })
})
