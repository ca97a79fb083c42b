import { mkdir, open } from 'node:fs/promises'
import { join } from 'node:path'
import { decodeEntry, type LogEntry, OP_PUT } from '../storage/log-entry.js'
import type { Store } from '../storage/store.js'
import { TextBytes } from '../storage/text-bytes.js'

/**
 * Rollback files: when a node must drop entries that the new history does
 * not have (a divergent tail after a fail-over, or any entry a full sync's
 * snapshot does not cover), it first writes every one
 * of them here, so nothing acknowledged is lost without a trace.
 *
 * Format: JSON Lines in <data-dir>/rollback/rollback-<time>-e<epoch>-s<from>-<to>.jsonl
 *   line 1: {"rollback":{"node","reason","fromSeq","toSeq","epoch","time"}}
 *   then one line per entry, in seq order:
 *   {"seq","epoch","origin","originSeq","hlc","ops":[{"type":"put","key","value"}|{"type":"del","key"}]}
 *   Binary values are written as {"base64":"..."}.
 *   Entries the log no longer holds (trimmed, or unreadable on a damaged
 *   disk) are named by a line {"missing":{"fromSeq","toSeq","why"}}.
 */
interface RollbackResult {
  file: string
  entries: number
}

export async function writeRollbackFile(
  store: Store,
  afterSeq: number,
  reason: string,
): Promise<RollbackResult | null> {
  if (store.lastSeq <= afterSeq) return null
  const dir = join(store.dataDir, 'rollback')
  await mkdir(dir, { recursive: true })
  const time = new Date().toISOString()
  const toSeq = store.lastSeq
  const file = join(dir, `rollback-${time.replace(/[:.]/g, '-')}-e${store.epoch}-s${afterSeq + 1}-${toSeq}.jsonl`)
  // Streamed entry by entry: a long divergent tail is never held in memory.
  const out = await open(file, 'w')
  let count = 0
  try {
    const header = { rollback: { node: store.nodeId, reason, fromSeq: afterSeq + 1, toSeq, epoch: store.epoch, time } }
    await out.write(`${JSON.stringify(header)}\n`)
    // Entries the log no longer holds (trimmed, or past a damaged record)
    // are named by a line {"missing":{"fromSeq","toSeq","why"}}: what was
    // readable is kept, and what was not is never skipped without a word.
    const missing = (fromSeq: number, to: number, why: string) =>
      out.write(`${JSON.stringify({ missing: { fromSeq, toSeq: to, why } })}\n`)
    let next = afterSeq + 1
    try {
      for await (const [seq, raw] of store.log.read(afterSeq + 1)) {
        if (seq > toSeq) break
        if (seq > next) await missing(next, seq - 1, 'no longer in the log')
        await out.write(`${JSON.stringify(entryLine(seq, decodeEntry(raw)))}\n`)
        count++
        next = seq + 1
      }
      if (next <= toSeq) await missing(next, toSeq, 'no longer in the log')
    } catch (err) {
      await missing(next, toSeq, `unreadable: ${(err as Error).message}`)
    }
    await out.sync()
  } finally {
    await out.close()
  }
  return { file, entries: count }
}

function entryLine(seq: number, entry: LogEntry) {
  return {
    seq,
    epoch: entry.epoch,
    origin: entry.origin,
    originSeq: entry.originSeq,
    hlc: entry.hlc,
    ops: entry.ops.map((op) =>
      op[0] === OP_PUT
        ? {
            type: 'put',
            key: op[1],
            value:
              typeof op[2] === 'string' || op[2] instanceof TextBytes
                ? op[2].toString()
                : { base64: Buffer.from(op[2]).toString('base64') },
          }
        : { type: 'del', key: op[1] },
    ),
  }
}
