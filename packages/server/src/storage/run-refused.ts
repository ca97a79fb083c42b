/** What happened to one write of a run: its seq, or why it was refused. */
type RunOutcome = { ok: true; seq: number } | { ok: false; error: unknown }

/**
 * A run of writes submitted together (Store.writeEach) of which some were
 * refused: each write's outcome, in the run's order. The writes that were
 * not refused are written, so a caller answers each write for what
 * happened to it, never the whole run with one refusal.
 */
export class RunRefused extends Error {
  constructor(readonly outcomes: readonly RunOutcome[]) {
    super(`${outcomes.filter((o) => !o.ok).length} of ${outcomes.length} writes of the run were refused`)
  }
}

/** The run's last seq when every write of it was written; else RunRefused with each outcome. */
export function runOutcome(results: readonly ({ seq: number } | Error)[]): number {
  if (results.every((r) => !(r instanceof Error))) return (results[results.length - 1] as { seq: number }).seq
  throw new RunRefused(results.map((r) => (r instanceof Error ? { ok: false, error: r } : { ok: true, seq: r.seq })))
}
