/**
 * Writes a log entry's msgpack by hand, byte for byte as the log's msgpackr
 * Packr does (log-entry.ts: useRecords false, no float32, no bundled
 * strings), for the values entries hold: numbers, strings (also given as
 * their UTF-8, TextBytes), byte arrays, arrays and plain objects. Anything
 * else (null, a boolean, undefined, a Map, nesting past FIELDS_DEPTH) makes
 * it give up, and the caller packs the entry with msgpackr. The writing is
 * util/msgpack-writer.ts's, shared with client replies: entries are views
 * of its shared slab. The bytes must be msgpackr's exactly: entry-scan.ts
 * reads tandem's own encoding straight from them, and peers forward
 * identities verbatim.
 *
 * It exists for the cost of a put: msgpackr's general encoder (type
 * dispatch, extension lookups, its per-call set-up) was several percent of
 * the main thread's work per put with pipelined clients.
 *
 * The writer's state (the slab, the next start) is shared by every entry
 * and reply: a bug that leaves it wrong would fail every later write, not one. So a throw
 * other than its own giving up is taken for such a bug: the writer starts
 * over on a fresh slab, the entry goes to msgpackr (same bytes), and the
 * throw is counted and handed to the reporter (the server logs it), so the
 * node goes on taking writes.
 */

import { begin, finish, givenUp, startOver, TEXT_BYTES, writeArray } from '../util/msgpack-writer.js'

/** Levels of arrays and objects an entry's fields may open: ops, op, op options, causal context, counters, and one to spare. */
const FIELDS_DEPTH = 6

/** Unexpected throws so far (see writerFaults). */
let faults = 0
let reportFault: (err: unknown) => void = () => {}

/**
 * The msgpack bytes of `fields` (the entry's array), exactly as the log's
 * Packr writes them, or null when it holds a value this writer leaves to
 * msgpackr. The bytes are a view of a shared slab: never written again.
 */
export function writeEntry(fields: readonly unknown[]): Buffer | null {
  begin(TEXT_BYTES, 0)
  try {
    writeArray(fields, FIELDS_DEPTH)
    return finish()
  } catch (err) {
    if (givenUp(err)) return null
    // A throw the writer did not mean: whatever state it left is dropped,
    // and the caller packs this entry with msgpackr.
    startOver()
    faults++
    try {
      reportFault(err)
    } catch {}
    return null
  }
}

/**
 * Where the writer's unexpected throws go (the server logs them as errors,
 * with their stack: a bug to report). One reporter a process, as tandem
 * runs one node a process.
 */
export function onWriterFault(report: (err: unknown) => void): void {
  reportFault = report
}

/** Unexpected throws the writer took over to msgpackr, since the process started (tandem_entry_writer_faults_total). */
export function writerFaults(): number {
  return faults
}
