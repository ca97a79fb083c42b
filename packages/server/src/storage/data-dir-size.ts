import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Tuning } from '../tuning.js'
import { systemClock } from '../util/clock.js'

/**
 * The bytes a node's data dir takes on disk: the sizes of its files added
 * up (LevelDB's tables, its write-ahead log and manifest, rollback files,
 * node-id). LevelDB's approximateSize would answer without a walk, but it
 * estimates the tables of a key range only and leaves out the write-ahead
 * log and everything beside the database, which is what a full disk is
 * made of.
 *
 * The walk costs a readdir per folder and a stat per file, so status and
 * /metrics read the last figure: a read starts a new walk once the figure
 * is older than diskRefreshMs, never more than one at a time, and a walk
 * stops after diskMaxWalkedFiles files (a data dir someone filled with
 * other files).
 */
export class DataDirSize {
  private bytesNow: number | null = null
  private walkedAt = Number.NEGATIVE_INFINITY
  private walking: Promise<void> | null = null
  private readonly now: () => number
  /** Walks started so far. */
  walks = 0

  private readonly refreshMs: number
  private readonly maxFiles: number

  constructor(
    private readonly dir: string,
    tuning: Pick<Tuning, 'diskRefreshMs' | 'diskMaxWalkedFiles'>,
    now?: () => number,
  ) {
    this.refreshMs = tuning.diskRefreshMs
    this.maxFiles = tuning.diskMaxWalkedFiles
    this.now = now ?? systemClock.now
  }

  /**
   * The last figure (null before the first walk ends); starts a walk when it
   * is older than `maxAgeMs` (a reader that accepts an older figure, such as
   * the web console, sets it higher).
   */
  bytes(maxAgeMs: number = this.refreshMs): number | null {
    if (this.now() - this.walkedAt >= maxAgeMs && !this.walking) {
      this.walks++
      this.walking = this.walk().finally(() => {
        this.walking = null
      })
    }
    return this.bytesNow
  }

  /** Resolves once a figure no older than `maxAgeMs` is there. */
  async ready(maxAgeMs: number = this.refreshMs): Promise<void> {
    this.bytes(maxAgeMs)
    await this.walking
  }

  private async walk(): Promise<void> {
    this.walkedAt = this.now()
    const total = await dirBytes(this.dir, { files: 0, max: this.maxFiles })
    if (total !== null) this.bytesNow = total
  }
}

async function dirBytes(dir: string, walked: { files: number; max: number }): Promise<number | null> {
  let total = 0
  try {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (++walked.files > walked.max) break
      const path = join(dir, entry.name)
      // A file LevelDB removed between the readdir and the stat counts 0.
      if (entry.isDirectory()) total += (await dirBytes(path, walked)) ?? 0
      else if (entry.isFile()) total += (await stat(path).catch(() => ({ size: 0 }))).size
    }
  } catch {
    return null
  }
  return total
}
