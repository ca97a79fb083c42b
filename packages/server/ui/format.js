/** Number and time formatting for the console's tables and picture. */

export const dash = '–'

export function num(x, digits = 0) {
  if (x === null || x === undefined || Number.isNaN(x)) return dash
  return x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 })
}

export function bytes(x) {
  if (x === null || x === undefined) return dash
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  let v = x
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v.toFixed(i === 0 || v >= 100 ? 0 : 1)} ${units[i]}`
}

/** A duration in ms, as a person reads it: 850 ms, 12 s, 5 min 3 s, 3 h 4 min, 2 d 5 h. */
export function duration(ms) {
  if (ms === null || ms === undefined) return dash
  if (ms < 1000) return `${Math.round(ms)} ms`
  const s = Math.floor(ms / 1000)
  if (s < 60) return `${s} s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m} min ${s % 60} s`
  const h = Math.floor(m / 60)
  if (h < 48) return `${h} h ${m % 60} min`
  return `${Math.floor(h / 24)} d ${h % 24} h`
}

export function ago(thenMs, nowMs) {
  if (thenMs === null || thenMs === undefined) return 'never'
  const d = Math.max(0, nowMs - thenMs)
  return d < 1500 ? 'now' : `${duration(d)} ago`
}

export function when(ms) {
  if (ms === null || ms === undefined) return dash
  const d = new Date(ms)
  return `${d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })} ${d.toLocaleTimeString()}`
}
