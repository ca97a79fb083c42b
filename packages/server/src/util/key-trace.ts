import { openSync, writeSync } from 'node:fs'
import { performance } from 'node:perf_hooks'

/**
 * A timeline of the writes to keys under one prefix, for finding where a
 * replicated write's time goes (tandem-bench's peer-lag anatomy). Off
 * unless the environment names both a directory and a key prefix:
 *
 *   TANDEM_KEY_TRACE_DIR=/tmp/trace TANDEM_KEY_TRACE_PREFIX=bench-lag:
 *
 * Then, for every traced key, the node notes (as wall-clock ms with
 * microseconds) when the group holding its write started, was handed to
 * LevelDB and was written, with the group's seqs, when a peer's or an
 * upstream's frame holding it was received, and when a watch event for it
 * was sent; and when each frame of its log its feeds (to replicas, to
 * peers) sent went out, so that a traced key's frame can be found by the
 * seqs of its group. It writes the lines to
 * DIR/keys-PID.txt every second and at exit. A traced key's number is what
 * follows its last ':'. At most MAX_LINES lines are kept between writes;
 * past that, lines are dropped and counted in the next write.
 *
 * Lines:
 *   G started handedOver written L<n>... R<n>:<received>:<queued>... Q<first>:<last>
 *       a group: L for a traced key written by a client here, R for one
 *       from a peer's or an upstream's frame (received off the socket,
 *       queued to the committer); Q the seqs of the group's entries
 *   F sent <from> <to>   a feed's frame of this node's entries from..to sent
 *   W sent <n>   a watch event for a traced key
 */

const dir = process.env.TANDEM_KEY_TRACE_DIR ?? ''
const prefixText = process.env.TANDEM_KEY_TRACE_PREFIX ?? ''

/** Whether keys are traced (both variables set). */
export const keyTraceOn = dir !== '' && prefixText !== ''

const prefix = Buffer.from(prefixText, 'latin1')
const MAX_LINES = 100_000
let lines: string[] = []
let dropped = 0
let fd = -1

function flush(): void {
  if (lines.length === 0 && dropped === 0) return
  if (dropped > 0) lines.push(`D ${dropped}`)
  try {
    if (fd < 0) fd = openSync(`${dir}/keys-${process.pid}.txt`, 'a')
    writeSync(fd, `${lines.join('\n')}\n`)
  } catch {
    // A trace that cannot be written is lost; the node goes on.
  }
  lines = []
  dropped = 0
}

if (keyTraceOn) {
  setInterval(flush, 1000).unref()
  process.on('exit', flush)
}

/** Adds a line (see the file's comment). */
export function keyTrace(line: string): void {
  if (lines.length >= MAX_LINES) dropped++
  else lines.push(line)
}

/** A monotonic time (performance.now()) as wall-clock ms, for lines. */
export const traceTime = (mono: number): string => (performance.timeOrigin + mono).toFixed(3)

/** Now, as wall-clock ms, for lines. */
export const traceNow = (): string => traceTime(performance.now())

/** The traced key's number (what follows its last ':'), or -1 when the key is not traced. */
export function tracedKey(key: Uint8Array | string): number {
  if (typeof key === 'string') {
    if (!key.startsWith(prefixText)) return -1
    return Number(key.slice(key.lastIndexOf(':') + 1))
  }
  if (key.length < prefix.length) return -1
  for (let i = 0; i < prefix.length; i++) if (key[i] !== prefix[i]) return -1
  let colon = key.lastIndexOf(0x3a)
  let n = 0
  while (++colon < key.length) {
    const digit = key[colon] - 0x30
    if (digit < 0 || digit > 9) return -1
    n = n * 10 + digit
  }
  return n
}
