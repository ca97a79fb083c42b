import hdr from 'hdr-histogram-js'

export type Histogram = hdr.Histogram

/** Latencies are recorded in microseconds, from 1 us to 10 minutes, at 3 significant digits. */
export function newHistogram(): Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 })
}

export function encodeHistogram(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h)
}

export function decodeHistogram(s: string): Histogram {
  const h = newHistogram()
  h.add(hdr.decodeFromCompressedBase64(s))
  return h
}

export interface LatencySummary {
  p50: number
  p90: number
  p99: number
  p999: number
  max: number
  mean: number
}

/** Percentiles in milliseconds (three decimals, i.e. microsecond precision). */
export function summarize(h: Histogram): LatencySummary {
  const ms = (us: number) => Math.round(us) / 1000
  // A percentile is reported as the top of its bucket, which can lie past
  // the largest value recorded; no percentile is larger than the max.
  const at = (p: number) => ms(Math.min(h.getValueAtPercentile(p), h.maxValue))
  return {
    p50: at(50),
    p90: at(90),
    p99: at(99),
    p999: at(99.9),
    max: ms(h.maxValue),
    mean: ms(h.mean),
  }
}
