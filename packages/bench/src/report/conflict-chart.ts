import type { BenchReport, ConflictPoint } from './result.js'

/**
 * The multimaster suite's conflict rate as an SVG line chart: one line per
 * number of masters, link latency (ms, each way) along the x axis on a
 * log-like scale (0 drawn at the left edge), conflict rate (%) up.
 * Hand-written, like chart.ts, so the harness needs no chart library.
 */
const COLORS = ['#2b6cb0', '#c53030', '#2f855a', '#b7791f', '#6b46c1']
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

export function conflictPoints(report: BenchReport): ConflictPoint[] {
  return report.scenarios.flatMap((s) => s.conflicts ?? [])
}

export function renderConflictChart(report: BenchReport): string {
  const points = conflictPoints(report).filter((p) => p.conflictRatePct !== null)
  const width = 640
  const height = 400
  const left = 70
  const right = 150
  const top = 50
  const bottom = 60
  const latencies = [...new Set(points.map((p) => p.latencyMs))].sort((a, b) => a - b)
  const masters = [...new Set(points.map((p) => p.masters))].sort((a, b) => a - b)
  const maxRate = Math.max(0.001, ...points.map((p) => p.conflictRatePct as number))
  const yMax = niceMax(maxRate)
  const xOf = (latency: number) => {
    const i = latencies.indexOf(latency)
    return left + (latencies.length <= 1 ? 0 : (i / (latencies.length - 1)) * (width - left - right))
  }
  const yOf = (rate: number) => top + (1 - rate / yMax) * (height - top - bottom)
  const out: string[] = []
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
  )
  out.push(`<rect width="${width}" height="${height}" fill="white"/>`)
  out.push(
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="14">${esc('multi-master conflict rate (lww): writes that arrived older than their key')}</text>`,
  )
  for (let k = 0; k <= 4; k++) {
    const rate = (yMax * k) / 4
    const y = yOf(rate)
    out.push(`<line x1="${left}" x2="${width - right}" y1="${y}" y2="${y}" stroke="#e2e8f0"/>`)
    out.push(`<text x="${left - 8}" y="${y + 4}" text-anchor="end">${esc(`${round(rate)}%`)}</text>`)
  }
  for (const latency of latencies) {
    out.push(`<text x="${xOf(latency)}" y="${height - bottom + 20}" text-anchor="middle">${latency} ms</text>`)
  }
  out.push(
    `<text x="${(left + width - right) / 2}" y="${height - 15}" text-anchor="middle">latency added to each peer link</text>`,
  )
  masters.forEach((n, i) => {
    const color = COLORS[i % COLORS.length]
    const line = points.filter((p) => p.masters === n).sort((a, b) => a.latencyMs - b.latencyMs)
    const path = line.map((p) => `${xOf(p.latencyMs).toFixed(1)},${yOf(p.conflictRatePct as number).toFixed(1)}`)
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${path.join(' ')}"/>`)
    for (const p of line) {
      const x = xOf(p.latencyMs)
      const y = yOf(p.conflictRatePct as number)
      out.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3" fill="${color}"/>`)
      out.push(
        `<text x="${x.toFixed(1)}" y="${(y - 8).toFixed(1)}" text-anchor="middle" fill="${color}">${round(p.conflictRatePct as number)}</text>`,
      )
    }
    out.push(`<rect x="${width - right + 20}" y="${top + i * 20}" width="12" height="12" fill="${color}"/>`)
    out.push(`<text x="${width - right + 38}" y="${top + i * 20 + 10}">${n} masters</text>`)
  })
  out.push('</svg>')
  return `${out.join('\n')}\n`
}

function round(x: number): number {
  return x >= 10 ? Math.round(x) : Math.round(x * 100) / 100
}

function niceMax(x: number): number {
  const p = 10 ** Math.floor(Math.log10(x))
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p
  return 10 * p
}
