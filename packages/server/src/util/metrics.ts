import { Counter, collectDefaultMetrics, Gauge, type Metric, Registry } from 'prom-client'

/**
 * The node's Prometheus registry (prom-client): what /metrics serves.
 *
 * Most figures live where they are kept anyway (the store's commit
 * counts, a replica's lag, a fail-over manager's elections) and are read
 * at scrape time. What the hot path counts (requests, errors, their
 * latency) it counts into plain numbers here, a map lookup and an add per
 * request; the scrape hands them to prom-client. prom-client's own
 * `inc()` and `observe()` cost a label hash and validation per call,
 * several times what a request's own bookkeeping does.
 *
 * Label sets are bounded by construction (op names, error codes, the
 * node's replicas), so the registry cannot grow without limit.
 */
type Labels = Record<string, string>
/** A figure read at scrape time: one number, or one per label set. */
type Reading = number | { labels: Labels; value: number }[]

export class Metrics {
  readonly registry = new Registry()
  private readonly counts = new Map<string, Map<string, { value: number }>>()
  /** Bumped by every render: what perScrape() built for an older one is stale. */
  private scrape = 0

  /**
   * A counter the hot path increments, with at most one label. The
   * returned function takes the label's value; it only looks it up in a
   * map (no label text is built until a scrape).
   */
  counter(name: string, help: string, label?: string): (value?: string, by?: number) => void {
    const slots = new Map<string, { value: number }>()
    this.counts.set(name, slots)
    new Counter({
      name,
      help,
      labelNames: label === undefined ? [] : [label],
      registers: [this.registry],
      collect() {
        this.reset()
        for (const [value, slot] of slots) this.inc(label === undefined ? {} : { [label]: value }, slot.value)
      },
    })
    return (value = '', by = 1) => {
      const slot = slots.get(value)
      if (slot) slot.value += by
      else slots.set(value, { value: by })
    }
  }

  /** A hot-path counter's values by label value (empty when it has none yet). */
  counterValues(name: string): Map<string, number> {
    const out = new Map<string, number>()
    for (const [label, slot] of this.counts.get(name) ?? []) out.set(label, slot.value)
    return out
  }

  /** A counter kept elsewhere (monotonic for the life of the process), read at scrape time. */
  counterOf(name: string, help: string, read: () => Reading, labelNames: string[] = []): void {
    new Counter({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        this.reset()
        const reading = read()
        if (typeof reading === 'number') this.inc(reading)
        else for (const r of reading) this.inc(r.labels, r.value)
      },
    })
  }

  /**
   * A reading several figures share, built at most once per scrape: the
   * first figure that reads it in a render builds it, the others of that
   * render get the same value (a whole status object, say, rather than one
   * per figure that reads a field of it).
   */
  perScrape<T>(build: () => T): () => T {
    let builtFor = -1
    let value: T
    return () => {
      if (builtFor !== this.scrape) {
        value = build()
        builtFor = this.scrape
      }
      return value
    }
  }

  /** A gauge read at scrape time. */
  gauge(name: string, help: string, read: () => Reading, labelNames: string[] = []): void {
    new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        this.reset()
        const reading = read()
        if (typeof reading === 'number') this.set(reading)
        else for (const r of reading) this.set(r.labels, r.value)
      },
    })
  }

  /** A histogram the hot path observes into (see LatencyHistogram). */
  histogram(name: string, help: string, label: string, buckets: readonly number[]): LatencyHistogram {
    const histogram = new LatencyHistogram(name, help, label, buckets)
    // prom-client renders any metric whose get() returns its value shape.
    this.registry.registerMetric(histogram as unknown as Metric)
    return histogram
  }

  /** Node.js's own figures: CPU, memory, heap, event-loop lag, GC pauses, handles. */
  collectDefaults(): void {
    collectDefaultMetrics({ register: this.registry })
  }

  /**
   * Prometheus text exposition format, version 0.0.4. prom-client writes a
   * NaN sample (an event-loop histogram with no samples yet) as "Nan"; the
   * format spells it "NaN", and stricter parsers than Prometheus's refuse the rest.
   */
  async render(): Promise<string> {
    this.scrape++
    const text = await this.registry.metrics()
    return text.replace(/ Nan$/gm, ' NaN')
  }

  get contentType(): string {
    return this.registry.contentType
  }
}

/**
 * A histogram with one label whose observe() is a map lookup, a short
 * scan of the bucket bounds and two adds. Rendered by prom-client with the
 * usual `_bucket{le}`, `_sum` and `_count` series.
 */
export class LatencyHistogram {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  private readonly series = new Map<string, { counts: Float64Array; sum: number }>()

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly label: string,
    private readonly bounds: readonly number[],
  ) {}

  observe(labelValue: string, value: number, times = 1): void {
    let s = this.series.get(labelValue)
    if (s === undefined) {
      s = { counts: new Float64Array(this.bounds.length + 1), sum: 0 }
      this.series.set(labelValue, s)
    }
    const bounds = this.bounds
    let i = 0
    while (i < bounds.length && value > bounds[i]) i++
    s.counts[i] += times
    s.sum += value * times
  }

  /** Observations so far for one label value (tests, the console). */
  count(labelValue: string): number {
    const s = this.series.get(labelValue)
    return s === undefined ? 0 : s.counts.reduce((a, b) => a + b, 0)
  }

  /** The metric as prom-client renders it. */
  async get() {
    const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = []
    for (const [labelValue, s] of this.series) {
      let cumulative = 0
      for (let i = 0; i <= this.bounds.length; i++) {
        cumulative += s.counts[i]
        const le = i < this.bounds.length ? this.bounds[i] : '+Inf'
        values.push({ metricName: `${this.name}_bucket`, labels: { [this.label]: labelValue, le }, value: cumulative })
      }
      values.push({ metricName: `${this.name}_sum`, labels: { [this.label]: labelValue }, value: s.sum })
      values.push({ metricName: `${this.name}_count`, labels: { [this.label]: labelValue }, value: cumulative })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }
}
