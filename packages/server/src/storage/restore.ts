import { createReadStream } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { SnapshotFileError, type SnapshotHeader, SnapshotReader, TandemError } from '@tandem/protocol'
import type { HistoryEpoch, Store, StoreClock } from './store.js'

/**
 * `tandem-server --restore FILE`: fills an empty data dir from a snapshot
 * file, streaming it (read a slice, check it, write its records, read on),
 * the way a replica takes a full sync. The node then holds the data at the
 * snapshot's seq with the source's history, so `--replicaof` can resume it
 * by partial resync from any node whose log still holds the next seq.
 *
 * A file that is damaged, cut short or not a snapshot fails the restore
 * with CORRUPT, naming what is wrong. What was written of it is marked as a
 * partial full sync, which the next start discards: a failed restore never
 * leaves a data dir that looks whole.
 *
 * The data dir records which snapshot it was restored from (`restored`), so
 * that a node restarted with the same --restore (a service manager keeps
 * its flags) starts on what it holds instead of refusing to overwrite it.
 */

interface RestoreResult {
  seq: number
  records: number
  /** True when the data dir already held this snapshot's restore and was left as it was. */
  skipped: boolean
}

interface RestoredMark {
  file: string
  nodeId: string
  seq: number
  createdAt: number
}

export async function restoreSnapshot(store: Store, file: string): Promise<RestoreResult> {
  const header = await readHeader(file)
  const mark: RestoredMark = { file, nodeId: header.nodeId, seq: header.seq, createdAt: header.createdAt }
  const markFile = join(store.dataDir, 'restored')
  const previous = await readFile(markFile, 'utf8').then(
    (text) => JSON.parse(text) as RestoredMark,
    () => null,
  )
  if (store.lastSeq > 0 || store.history.length > 0) {
    if (
      previous &&
      previous.nodeId === mark.nodeId &&
      previous.seq === mark.seq &&
      previous.createdAt === mark.createdAt
    ) {
      return { seq: store.lastSeq, records: 0, skipped: true }
    }
    throw new TandemError(
      'INVALID',
      `--restore needs an empty data dir, and ${store.dataDir} already holds data (seq ${store.lastSeq}); restore into a new --data-dir`,
    )
  }
  await store.beginFullSync()
  const reader = new SnapshotReader()
  let records = 0
  try {
    for await (const slice of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
      for (const item of reader.push(slice as Buffer)) {
        if (item.type === 'data') {
          await store.applySnapshotChunk(item.chunk, item.count)
          records += item.count
        }
      }
    }
    reader.finish()
  } catch (err) {
    throw asCorrupt(file, err)
  }
  await store.finishFullSync(header.seq, header.history as HistoryEpoch[], header.clock as StoreClock | undefined)
  await writeFile(markFile, `${JSON.stringify(mark)}\n`)
  return { seq: header.seq, records, skipped: false }
}

/** The file's HEADER, read before anything is written (a foreign file is refused untouched). */
async function readHeader(file: string): Promise<SnapshotHeader> {
  const reader = new SnapshotReader()
  let stream: AsyncIterable<Buffer>
  try {
    stream = createReadStream(file, { highWaterMark: 64 * 1024 })
    for await (const slice of stream) {
      reader.push(slice)
      if (reader.header) return reader.header
    }
    reader.finish()
  } catch (err) {
    throw asCorrupt(file, err)
  }
  throw new TandemError('CORRUPT', `snapshot ${file} holds no HEADER frame`)
}

function asCorrupt(file: string, err: unknown): TandemError {
  if (err instanceof TandemError) return err
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR') {
    return new TandemError('INVALID', `cannot read snapshot ${file}: ${(err as Error).message}`)
  }
  if (err instanceof SnapshotFileError) return new TandemError('CORRUPT', `snapshot ${file}: ${err.message}`)
  return new TandemError('CORRUPT', `snapshot ${file} could not be restored: ${(err as Error).message}`)
}
