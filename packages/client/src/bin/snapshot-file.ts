import { createReadStream } from 'node:fs'
import { open, rename, rm } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { type SnapshotEnd, SnapshotFileError, SnapshotReader, TandemError } from '@tandem/protocol'
import type { TandemClient } from '../client.js'

/**
 * `tandem snapshot save FILE` and `tandem snapshot verify FILE`. Saving
 * writes the node's stream to a temporary file beside FILE, checking every
 * frame as it arrives, and renames it to FILE only once the whole file has
 * been received and fsynced: FILE is either a complete snapshot or absent
 * (an earlier FILE is replaced only by a complete one).
 */

interface SnapshotSummary extends SnapshotEnd {
  bytes: number
  nodeId: string
  createdAt: number
}

export async function saveSnapshot(client: TandemClient, file: string): Promise<SnapshotSummary> {
  const partial = join(dirname(file), `.${basename(file)}.partial-${process.pid}`)
  const handle = await open(partial, 'w')
  const reader = new SnapshotReader()
  let bytes = 0
  try {
    for await (const chunk of client.backup()) {
      check(reader, () => reader.push(chunk), 'the node sent')
      await handle.write(chunk)
      bytes += chunk.length
    }
    const end = check(reader, () => reader.finish(), 'the node sent')
    await handle.sync()
    await handle.close()
    await rename(partial, file)
    return summary(reader, end, bytes)
  } catch (err) {
    await handle.close().catch(() => {})
    await rm(partial, { force: true })
    throw err
  }
}

export async function verifySnapshot(file: string): Promise<SnapshotSummary> {
  const reader = new SnapshotReader()
  let bytes = 0
  try {
    for await (const slice of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
      check(reader, () => reader.push(slice as Buffer), file)
      bytes += (slice as Buffer).length
    }
  } catch (err) {
    if (err instanceof TandemError) throw err
    throw new TandemError('INVALID', `cannot read ${file}: ${(err as Error).message}`)
  }
  return summary(
    reader,
    check(reader, () => reader.finish(), file),
    bytes,
  )
}

function check<T>(_reader: SnapshotReader, step: () => T, what: string): T {
  try {
    return step()
  } catch (err) {
    if (err instanceof SnapshotFileError) throw new TandemError('CORRUPT', `${what}: ${err.message}`)
    throw err
  }
}

function summary(reader: SnapshotReader, end: SnapshotEnd, bytes: number): SnapshotSummary {
  return { ...end, bytes, nodeId: reader.header?.nodeId ?? '', createdAt: reader.header?.createdAt ?? 0 }
}
