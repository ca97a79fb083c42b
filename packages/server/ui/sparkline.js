import { s } from './dom.js'

/**
 * A lag sparkline: lag in ms over the samples kept (one a second), drawn
 * on a scale from 0 to the largest sample (at least 10 ms, so that a
 * steady 0-2 ms does not look like a storm).
 */
export function sparkline(samples, width = 140, height = 28) {
  const values = samples.map((x) => x[2])
  const max = Math.max(10, ...values)
  const n = values.length
  const points = values
    .map((v, i) => {
      const x = n <= 1 ? width : (i / (n - 1)) * width
      const y = height - 2 - (v / max) * (height - 4)
      return `${x.toFixed(1)},${y.toFixed(1)}`
    })
    .join(' ')
  const peak = n === 0 ? 0 : Math.max(...values)
  const label = n === 0 ? 'no samples yet' : `lag over the last ${n} s: now ${values[n - 1]} ms, peak ${peak} ms`
  return s(
    'svg',
    { class: 'spark', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label },
    s('title', {}, label),
    s('line', { class: 'base', x1: 0, y1: height - 2, x2: width, y2: height - 2 }),
    n > 0 ? s('polyline', { points }) : null,
  )
}
