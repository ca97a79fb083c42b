import type { Progress } from '../load/runner.js'

/**
 * The live display: one line rewritten in place on a TTY (ops/s, p99 so
 * far, time left), or a plain line a second when stderr is a file or a pipe.
 */
type ProgressMode = 'tty' | 'plain' | 'none'

export function progressMode(
  requested: 'auto' | ProgressMode,
  stream: NodeJS.WriteStream = process.stderr,
): ProgressMode {
  if (requested !== 'auto') return requested
  return stream.isTTY ? 'tty' : 'plain'
}

export class ProgressLine {
  private lastPrinted = 0
  private lastOps = 0
  private lastElapsed = 0

  constructor(
    private readonly mode: ProgressMode,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  /** A plain message; on a TTY it first clears the live line. */
  note(message: string): void {
    if (this.mode === 'none') return
    if (this.mode === 'tty') this.stream.write('\r\x1b[2K')
    this.stream.write(`${message}\n`)
  }

  reset(): void {
    this.lastPrinted = 0
    this.lastOps = 0
    this.lastElapsed = 0
  }

  update(label: string, p: Progress, totalS: number | null, totalRequests: number | null): void {
    if (this.mode === 'none') return
    const now = Date.now()
    if (this.mode === 'plain' && now - this.lastPrinted < 1000) return
    const interval = p.elapsedS - this.lastElapsed
    const rate = interval > 0 ? (p.ops - this.lastOps) / interval : 0
    if (this.mode === 'plain' || interval >= 1) {
      this.lastOps = p.ops
      this.lastElapsed = p.elapsedS
    }
    this.lastPrinted = now
    const p99 = p.histogram.totalCount === 0 ? '-' : `${(p.histogram.getValueAtPercentile(99) / 1000).toFixed(2)} ms`
    const left =
      totalS !== null
        ? `${Math.max(0, totalS - p.elapsedS).toFixed(0)}s left`
        : `${Math.max(0, (totalRequests ?? 0) - p.ops)} requests left`
    const errors = p.errors > 0 ? `  errors ${p.errors}` : ''
    const line = `${label}  ${Math.round(rate).toLocaleString('en-US')} ops/s  p99 ${p99}  ${left}${errors}`
    if (this.mode === 'tty') this.stream.write(`\r\x1b[2K${line}`)
    else this.stream.write(`${line}\n`)
  }

  end(): void {
    if (this.mode === 'tty') this.stream.write('\r\x1b[2K')
  }
}
