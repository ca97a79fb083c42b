import { mkdir, open } from 'node:fs/promises'
import { join } from 'node:path'
import { decodeEntry, OP_PUT } from '../storage/log-entry.js'
import type { Store } from '../storage/store.js'

/**
 * Rollback files: when a node must drop entries that the new history does
 * not have (a divergent tail after a fail-over), it first writes every one
 * of them here, so nothing acknowledged is lost without a trace.
 *
 * Format: JSON Lines in <data-dir>/rollback/rollback-<time>-e<epoch>-s<from>-<to>.jsonl
 *   line 1: {"rollback":{"node","reason","fromSeq","toSeq","epoch","time"}}
 *   then one line per entry, in seq order:
 *   {"seq","epoch","origin","originSeq","hlc","ops":[{"type":"put","key","value"}|{"type":"del","key"}]}
 *   Binary values are written as {"base64":"..."}.
 */
export interface RollbackResult {
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
    for await (const [seq, raw] of store.readLog(afterSeq + 1)) {
      if (seq > toSeq) break
      const entry = decodeEntry(raw)
      const line = {
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
                value: typeof op[2] === 'string' ? op[2] : { base64: Buffer.from(op[2]).toString('base64') },
              }
            : { type: 'del', key: op[1] },
        ),
      }
      await out.write(`${JSON.stringify(line)}\n`)
      count++
    }
    await out.sync()
  } finally {
    await out.close()
  }
  return { file, entries: count }
}
