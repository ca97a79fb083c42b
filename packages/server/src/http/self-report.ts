import { readFileSync } from 'node:fs'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { NodeStatus } from '@tandem/protocol'
import { systemClock } from '../util/clock.js'

/**
 * What one node tells the console about itself: its status plus what
 * status does not carry (request counts, disk bytes, version, rollback
 * file names). Every node serves it at /ui/api/self, so that the node a
 * console was loaded from can gather its whole group with one request per
 * node. Counters are cumulative; the watcher turns them into rates.
 */
export interface SelfReport {
  /** The node's wall time when it made the report (ms since 1970). */
  at: number
  status: NodeStatus
  /** Client requests received since start, by op (get, put, ...). */
  requests: Record<string, number>
  /** Bytes under the data dir, refreshed at most every DISK_REFRESH_MS; null until first read. */
  diskBytes: number | null
  version: string
  /** Newest rollback file names in the data dir's rollback/ folder (at most MAX_ROLLBACK_FILES). */
  rollbackFiles: string[]
}

/** Walking the data dir costs a stat per file: done rarely, and only while a console watches. */
const DISK_REFRESH_MS = 10_000
const MAX_ROLLBACK_FILES = 20
/** Bounds the walk of a data dir someone filled with other files. */
const MAX_WALKED_FILES = 100_000

export const SERVER_VERSION: string = (() => {
  try {
    // dist/http/self-report.js -> the package's package.json
    return JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version as string
  } catch {
    return 'unknown'
  }
})()

export interface SelfReporterSource {
  dataDir: string
  status(): NodeStatus
  requests(): Map<string, number>
  now?: () => number
}

export class SelfReporter {
  private diskBytes: number | null = null
  private rollbackFiles: string[] = []
  private refreshedAt = Number.NEGATIVE_INFINITY
  private refreshing: Promise<void> | null = null
  private readonly now: () => number

  constructor(private readonly source: SelfReporterSource) {
    this.now = source.now ?? systemClock.wall
  }

  /** The report now; disk figures come from the last walk (a new one starts when they are stale). */
  report(): SelfReport {
    const at = this.now()
    if (at - this.refreshedAt >= DISK_REFRESH_MS && !this.refreshing) {
      this.refreshing = this.refreshDisk().finally(() => {
        this.refreshing = null
      })
    }
    return {
      at,
      status: this.source.status(),
      requests: Object.fromEntries(this.source.requests()),
      diskBytes: this.diskBytes,
      version: SERVER_VERSION,
      rollbackFiles: this.rollbackFiles,
    }
  }

  /** Resolves once the disk figures are fresh (the first report of a watcher waits for them). */
  async ready(): Promise<void> {
    this.report()
    await this.refreshing
  }

  private async refreshDisk(): Promise<void> {
    this.refreshedAt = this.now()
    this.diskBytes = await dirBytes(this.source.dataDir, { files: 0 })
    try {
      const names = (await readdir(join(this.source.dataDir, 'rollback'))).filter((f) => f.endsWith('.jsonl'))
      // Names start with rollback-<time>, so they sort by time.
      this.rollbackFiles = names.sort().slice(-MAX_ROLLBACK_FILES)
    } catch {
      this.rollbackFiles = []
    }
  }
}

async function dirBytes(dir: string, walked: { files: number }): Promise<number | null> {
  let total = 0
  try {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (++walked.files > MAX_WALKED_FILES) break
      const path = join(dir, entry.name)
      if (entry.isDirectory()) total += (await dirBytes(path, walked)) ?? 0
      else if (entry.isFile()) total += (await stat(path).catch(() => ({ size: 0 }))).size
    }
  } catch {
    return null
  }
  return total
}
