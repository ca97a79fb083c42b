/**
 * A small Prometheus registry: counters with optional labels and gauges read
 * at scrape time. Label sets are bounded by construction (op names, error
 * codes), so the registry cannot grow without limit.
 */
type Labels = Record<string, string>

interface Family {
  help: string
  type: 'counter' | 'gauge'
  values: Map<string, { labels: Labels; value: number }>
  read?: () => number | { labels: Labels; value: number }[]
}

export class Metrics {
  private readonly families = new Map<string, Family>()

  /**
   * A counter with at most one label. The returned function takes the
   * label's value; it runs on every request, so it only looks the value up
   * in a map (no label text is built until a scrape).
   */
  counter(name: string, help: string, label?: string): (value?: string, by?: number) => void {
    const family: Family = { help, type: 'counter', values: new Map() }
    this.families.set(name, family)
    return (value = '', by = 1) => {
      const slot = family.values.get(value)
      if (slot) slot.value += by
      else family.values.set(value, { labels: label === undefined ? {} : { [label]: value }, value: by })
    }
  }

  /** A counter's values by label value (empty when it has none yet). */
  counterValues(name: string): Map<string, number> {
    const out = new Map<string, number>()
    const family = this.families.get(name)
    if (family?.type === 'counter') for (const [label, slot] of family.values) out.set(label, slot.value)
    return out
  }

  gauge(name: string, help: string, read: () => number | { labels: Labels; value: number }[]): void {
    this.families.set(name, { help, type: 'gauge', values: new Map(), read })
  }

  /** Prometheus text exposition format, version 0.0.4. */
  render(): string {
    const lines: string[] = []
    for (const [name, family] of this.families) {
      lines.push(`# HELP ${name} ${family.help}`, `# TYPE ${name} ${family.type}`)
      if (family.read) {
        const read = family.read()
        if (typeof read === 'number') lines.push(`${name} ${read}`)
        else for (const r of read) lines.push(`${name}${labelText(r.labels)} ${r.value}`)
      } else {
        for (const { labels, value } of family.values.values()) lines.push(`${name}${labelText(labels)} ${value}`)
      }
    }
    return `${lines.join('\n')}\n`
  }
}

function labelText(labels: Labels): string {
  const keys = Object.keys(labels)
  if (keys.length === 0) return ''
  return `{${keys.map((k) => `${k}="${String(labels[k]).replace(/["\\\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`))}"`).join(',')}}`
}
