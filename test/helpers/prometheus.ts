/**
 * A strict parser of the Prometheus text exposition format (version
 * 0.0.4), for tests: it throws on anything a Prometheus server would
 * reject or misread, so a test that parses /metrics checks the format as
 * well as the figures.
 *
 * Checked: each line is a HELP or TYPE comment, another comment, or a
 * sample of the grammar `name{label="value",...} value [timestamp]` with
 * escapes `\\`, `\"` and `\n` only in label values; a family has at most
 * one HELP and one TYPE, given before its samples, and its samples are
 * contiguous; each sample belongs to the family declared last (a histogram's
 * `_bucket`, `_sum` and `_count`); no series appears twice; counters are
 * never negative; each histogram series has buckets in increasing `le`
 * order ending at `+Inf`, cumulative (never decreasing), a `_count` equal
 * to the `+Inf` bucket and a `_sum`.
 */
export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped'

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

export interface Family {
  name: string
  type: MetricType
  help: string | null
  samples: Sample[]
}

export interface HistogramSeries {
  labels: Record<string, string>
  buckets: { le: number; count: number }[]
  count: number
  sum: number
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/

export class PrometheusText {
  readonly families = new Map<string, Family>()

  constructor(text: string) {
    if (!text.endsWith('\n')) throw new Error('exposition does not end with a newline')
    let current: Family | null = null
    const closed = new Set<string>()
    const seen = new Set<string>()
    const lines = text.slice(0, -1).split('\n')
    for (const [i, line] of lines.entries()) {
      const where = `line ${i + 1}: ${JSON.stringify(line)}`
      if (line === '') continue
      if (line.startsWith('#')) {
        const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line)
        if (!m) continue // another comment
        const [, kind, name, rest] = m
        if (!NAME.test(name)) throw new Error(`bad metric name in ${where}`)
        let family = this.families.get(name)
        if (family && family !== current) throw new Error(`${name} declared again after other families, ${where}`)
        if (!family) {
          if (current) closed.add(current.name)
          family = { name, type: 'untyped', help: null, samples: [] }
          this.families.set(name, family)
          current = family
        }
        if (kind === 'TYPE') {
          if (family.samples.length > 0) throw new Error(`TYPE after samples, ${where}`)
          if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest))
            throw new Error(`unknown type, ${where}`)
          if ((family as { typed?: boolean }).typed) throw new Error(`second TYPE line, ${where}`)
          ;(family as { typed?: boolean }).typed = true
          family.type = rest as MetricType
        } else {
          if (family.help !== null) throw new Error(`second HELP line, ${where}`)
          family.help = unescapeHelp(rest, where)
        }
        continue
      }
      const sample = parseSample(line, where)
      const owner = current && belongsTo(sample.name, current) ? current : null
      if (!owner) throw new Error(`sample of no declared family (or not contiguous with it), ${where}`)
      if (closed.has(owner.name)) throw new Error(`samples of ${owner.name} are not contiguous, ${where}`)
      const key = `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort())}`
      if (seen.has(key)) throw new Error(`series given twice, ${where}`)
      seen.add(key)
      if (owner.type === 'counter' && !(sample.value >= 0)) throw new Error(`negative or NaN counter, ${where}`)
      owner.samples.push(sample)
    }
    for (const family of this.families.values()) if (family.type === 'histogram') this.histogram(family.name)
  }

  family(name: string): Family {
    const family = this.families.get(name)
    if (!family) throw new Error(`no metric family ${name}`)
    return family
  }

  /** The value of the one sample named `name` whose labels include `labels`; undefined when none. */
  value(name: string, labels: Record<string, string> = {}): number | undefined {
    for (const family of this.families.values()) {
      for (const s of family.samples) {
        if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value
      }
    }
    return undefined
  }

  /** A histogram's series, one per label set (le aside), each checked for shape. */
  histogram(name: string): HistogramSeries[] {
    const family = this.family(name)
    if (family.type !== 'histogram') throw new Error(`${name} is a ${family.type}, not a histogram`)
    const series = new Map<string, HistogramSeries>()
    const of = (labels: Record<string, string>) => {
      const rest = Object.fromEntries(Object.entries(labels).filter(([k]) => k !== 'le'))
      const key = JSON.stringify(Object.entries(rest).sort())
      let s = series.get(key)
      if (!s) series.set(key, (s = { labels: rest, buckets: [], count: Number.NaN, sum: Number.NaN }))
      return s
    }
    for (const sample of family.samples) {
      if (sample.name === `${name}_bucket`) {
        const le = sample.labels.le
        if (le === undefined) throw new Error(`${name}_bucket without le`)
        of(sample.labels).buckets.push({ le: parseValue(le, `le of ${name}`), count: sample.value })
      } else if (sample.name === `${name}_count`) of(sample.labels).count = sample.value
      else if (sample.name === `${name}_sum`) of(sample.labels).sum = sample.value
      else throw new Error(`${sample.name} in histogram ${name}`)
    }
    for (const s of series.values()) {
      const what = `${name}${JSON.stringify(s.labels)}`
      if (s.buckets.length === 0) throw new Error(`${what} has no buckets`)
      for (let i = 1; i < s.buckets.length; i++) {
        if (!(s.buckets[i].le > s.buckets[i - 1].le)) throw new Error(`${what}: le not increasing`)
        if (s.buckets[i].count < s.buckets[i - 1].count) throw new Error(`${what}: buckets not cumulative`)
      }
      const last = s.buckets[s.buckets.length - 1]
      if (last.le !== Number.POSITIVE_INFINITY) throw new Error(`${what}: no +Inf bucket`)
      if (Number.isNaN(s.count) || s.count !== last.count) throw new Error(`${what}: _count is not the +Inf bucket`)
      if (Number.isNaN(s.sum)) throw new Error(`${what}: no _sum`)
    }
    return [...series.values()]
  }
}

function belongsTo(sampleName: string, family: Family): boolean {
  if (sampleName === family.name) return family.type !== 'histogram'
  if (family.type === 'histogram') return ['_bucket', '_sum', '_count'].some((s) => sampleName === family.name + s)
  if (family.type === 'summary') return ['_sum', '_count'].some((s) => sampleName === family.name + s)
  return false
}

function parseSample(line: string, where: string): Sample {
  const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)
  if (!nameMatch) throw new Error(`bad sample name, ${where}`)
  const name = nameMatch[0]
  let i = name.length
  const labels: Record<string, string> = {}
  if (line[i] === '{') {
    i++
    while (line[i] !== '}') {
      const ln = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i))
      if (!ln || !LABEL_NAME.test(ln[0])) throw new Error(`bad label name, ${where}`)
      i += ln[0].length
      if (line.slice(i, i + 2) !== '="') throw new Error(`expected =" after label ${ln[0]}, ${where}`)
      i += 2
      let value = ''
      for (;;) {
        const c = line[i]
        if (c === undefined) throw new Error(`unterminated label value, ${where}`)
        if (c === '"') break
        if (c === '\\') {
          const e = line[i + 1]
          if (e === '\\') value += '\\'
          else if (e === '"') value += '"'
          else if (e === 'n') value += '\n'
          else throw new Error(`bad escape in label value, ${where}`)
          i += 2
          continue
        }
        value += c
        i++
      }
      i++
      if (ln[0] in labels) throw new Error(`label ${ln[0]} given twice, ${where}`)
      labels[ln[0]] = value
      if (line[i] === ',') i++
      else if (line[i] !== '}') throw new Error(`expected , or } in labels, ${where}`)
    }
    i++
  }
  const rest = line.slice(i)
  const m = /^ (\S+)(?: (-?\d+))?$/.exec(rest)
  if (!m) throw new Error(`expected " value [timestamp]" after the labels, ${where}`)
  return { name, labels, value: parseValue(m[1], where) }
}

function parseValue(text: string, where: string): number {
  if (text === '+Inf' || text === 'Inf') return Number.POSITIVE_INFINITY
  if (text === '-Inf') return Number.NEGATIVE_INFINITY
  if (text === 'NaN') return Number.NaN
  if (!/^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/.test(text)) throw new Error(`bad value ${text}, ${where}`)
  return Number(text)
}

function unescapeHelp(text: string, where: string): string {
  return text.replace(/\\(.)/g, (_, c: string) => {
    if (c === '\\') return '\\'
    if (c === 'n') return '\n'
    throw new Error(`bad escape in HELP, ${where}`)
  })
}
