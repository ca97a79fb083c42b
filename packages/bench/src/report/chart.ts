import type { TargetName } from '../drivers/driver.js'
import type { BenchReport, TargetResult } from './result.js'

/**
 * A self-contained SVG of one run: throughput as grouped bars (one group per
 * scenario, one bar per target) above, and below one small panel per
 * scenario with the latency percentiles (p50, p90, p99, p99.9, max) of each
 * target on a log scale. Hand-written so the harness needs no chart library.
 */

const COLORS: Record<TargetName, string> = {
  tandem: '#2b6cb0',
  redis: '#c53030',
  floor: '#2f855a',
  'floor-bare': '#718096',
}
const PERCENTILES = [
  ['p50', 'p50'],
  ['p90', 'p90'],
  ['p99', 'p99'],
  ['p999', 'p99.9'],
  ['max', 'max'],
] as const

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
const fmt = (x: number) => (x >= 1000 ? `${Math.round(x / 100) / 10}k` : String(Math.round(x)))

function niceMax(x: number): number {
  if (x <= 0) return 1
  const p = 10 ** Math.floor(Math.log10(x))
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p
  return 10 * p
}

export function renderChart(report: BenchReport): string {
  // Full-sync and fail-over scenarios are not load figures; they are in the text.
  const scenarios = report.scenarios.filter(
    (s) => Object.keys(s.targets).length > 0 && !Object.values(s.targets).some((t) => t?.fullSync || t?.failover),
  )
  const targets = [...new Set(scenarios.flatMap((s) => Object.keys(s.targets) as TargetName[]))]
  const panelW = 230
  const width = Math.max(760, 70 + scenarios.length * panelW)
  const out: string[] = []
  const text = (x: number, y: number, s: string, attrs = '') =>
    out.push(`<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${esc(s)}</text>`)

  // --- throughput --------------------------------------------------------
  const top = 60
  const barH = 220
  const left = 70
  const plotW = width - left - 20
  const maxT = niceMax(Math.max(...scenarios.flatMap((s) => Object.values(s.targets).map((t) => t!.throughput))))
  text(left, 30, 'Throughput (ops/s, higher is better)', 'font-size="15" font-weight="bold"')
  for (let i = 0; i <= 4; i++) {
    const v = (maxT * i) / 4
    const y = top + barH - (barH * i) / 4
    out.push(`<line x1="${left}" x2="${left + plotW}" y1="${y}" y2="${y}" stroke="#ddd"/>`)
    text(left - 6, y + 4, fmt(v), 'font-size="11" text-anchor="end" fill="#555"')
  }
  const groupW = plotW / Math.max(1, scenarios.length)
  const bw = Math.min(60, (groupW * 0.7) / Math.max(1, targets.length))
  scenarios.forEach((s, i) => {
    const gx = left + i * groupW + (groupW - bw * targets.length) / 2
    targets.forEach((t, j) => {
      const r = s.targets[t]
      if (!r) return
      const h = (barH * r.throughput) / maxT
      const x = gx + j * bw
      out.push(
        `<rect x="${x.toFixed(1)}" y="${(top + barH - h).toFixed(1)}" width="${(bw - 4).toFixed(1)}" height="${h.toFixed(1)}" fill="${COLORS[t]}"/>`,
      )
      text(x + (bw - 4) / 2, top + barH - h - 4, fmt(r.throughput), 'font-size="10" text-anchor="middle"')
    })
    text(left + i * groupW + groupW / 2, top + barH + 16, s.name, 'font-size="12" text-anchor="middle"')
    if (s.ratios)
      text(
        left + i * groupW + groupW / 2,
        top + barH + 30,
        `tandem/redis ${s.ratios.throughput}x`,
        'font-size="11" text-anchor="middle" fill="#555"',
      )
  })
  targets.forEach((t, j) => {
    const x = width - 20 - (targets.length - j) * 90
    out.push(`<rect x="${x}" y="18" width="12" height="12" fill="${COLORS[t]}"/>`)
    text(x + 16, 29, t, 'font-size="12"')
  })

  // --- latency percentiles, one panel per scenario ------------------------
  const ltop = top + barH + 80
  const lh = 180
  text(left, ltop - 22, 'Latency percentiles (ms, log scale, lower is better)', 'font-size="15" font-weight="bold"')
  const all = scenarios.flatMap((s) =>
    Object.values(s.targets).flatMap((t) => PERCENTILES.map(([k]) => (t as TargetResult).latencyMs[k])),
  )
  const lo = 10 ** Math.floor(Math.log10(Math.max(0.001, Math.min(...all.filter((v) => v > 0), 1))))
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...all, lo * 10)))
  const ly = (v: number) => ltop + lh - (lh * (Math.log10(Math.max(v, lo)) - Math.log10(lo))) / Math.log10(hi / lo)
  const pw = (width - left - 20) / Math.max(1, scenarios.length)
  scenarios.forEach((s, i) => {
    const x0 = left + i * pw + 10
    const w = pw - 30
    out.push(`<rect x="${x0}" y="${ltop}" width="${w}" height="${lh}" fill="none" stroke="#bbb"/>`)
    for (let d = lo; d <= hi * 1.0001; d *= 10) {
      const y = ly(d)
      out.push(`<line x1="${x0}" x2="${x0 + w}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#eee"/>`)
      if (i === 0) text(x0 - 6, y + 4, String(Number(d.toPrecision(1))), 'font-size="10" text-anchor="end" fill="#555"')
    }
    const px = (k: number) => x0 + 12 + (k * (w - 24)) / (PERCENTILES.length - 1)
    PERCENTILES.forEach(([, label], k) => {
      text(px(k), ltop + lh + 14, label, 'font-size="10" text-anchor="middle"')
    })
    text(x0 + w / 2, ltop + lh + 30, s.name, 'font-size="12" text-anchor="middle"')
    for (const t of targets) {
      const r = s.targets[t]
      if (!r) continue
      const pts = PERCENTILES.map(([key], k) => `${px(k).toFixed(1)},${ly(r.latencyMs[key]).toFixed(1)}`)
      out.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${COLORS[t]}" stroke-width="2"/>`)
      PERCENTILES.forEach(([key], k) => {
        out.push(`<circle cx="${px(k).toFixed(1)}" cy="${ly(r.latencyMs[key]).toFixed(1)}" r="3" fill="${COLORS[t]}">`)
        out.push(`<title>${esc(`${t} ${s.name} ${key}: ${r.latencyMs[key]} ms`)}</title></circle>`)
      })
    }
  })

  const height = ltop + lh + 50
  const m = report.machine
  const footer = `${m.cpuModel}, ${m.cores} cores, Node ${m.nodeVersion}${m.redisVersion ? `, Redis ${m.redisVersion}` : ''} | tandem --sync ${report.settings.sync}, ${report.settings.replicas} replica(s) | ${report.startedAt.slice(0, 10)}`
  text(left, height - 8, footer, 'font-size="10" fill="#777"')
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    ...out,
    '</svg>',
    '',
  ].join('\n')
}
