import { readFileSync } from 'node:fs'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { NodeStatus } from '@tandem/protocol'
import type { DataDirSize } from '../storage/data-dir-size.js'
import type { Tuning } from '../tuning.js'
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
  /** Bytes under the data dir (see DataDirSize); null until first read. */
  diskBytes: number | null
  version: string
  /** Newest rollback file names in the data dir's rollback/ folder (at most consoleMaxRollbackFiles). */
  rollbackFiles: string[]
}

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
  /** The data dir's size, kept by the node (status and /metrics read it too). */
  disk: DataDirSize
  /** The node's status, with a data-dir size no older than `diskMaxAgeMs`. */
  status(diskMaxAgeMs: number): NodeStatus
  requests(): Map<string, number>
  now?: () => number
  /**
   * Listing the rollback folder costs a readdir: done rarely
   * (consoleRollbackRefreshMs), and only while a console watches. Walking
   * the data dir costs a readdir per folder and a stat per file on every
   * node the console polls; the figure moves slowly, so a console tick does
   * not start a walk for a figure younger than consoleDiskMaxAgeMs (status
   * and /metrics keep their own, shorter age).
   */
  tuning: Pick<Tuning, 'consoleRollbackRefreshMs' | 'consoleDiskMaxAgeMs' | 'consoleMaxRollbackFiles'>
}

export class SelfReporter {
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
    const { consoleRollbackRefreshMs, consoleDiskMaxAgeMs } = this.source.tuning
    if (at - this.refreshedAt >= consoleRollbackRefreshMs && !this.refreshing) {
      this.refreshing = this.refreshRollbacks().finally(() => {
        this.refreshing = null
      })
    }
    return {
      at,
      status: this.source.status(consoleDiskMaxAgeMs),
      requests: Object.fromEntries(this.source.requests()),
      diskBytes: this.source.disk.bytes(consoleDiskMaxAgeMs),
      version: SERVER_VERSION,
      rollbackFiles: this.rollbackFiles,
    }
  }

  /** Resolves once the disk figures are fresh (the first report of a watcher waits for them). */
  async ready(): Promise<void> {
    this.report()
    await Promise.all([this.refreshing, this.source.disk.ready(this.source.tuning.consoleDiskMaxAgeMs)])
  }

  private async refreshRollbacks(): Promise<void> {
    this.refreshedAt = this.now()
    try {
      const names = (await readdir(join(this.source.dataDir, 'rollback'))).filter((f) => f.endsWith('.jsonl'))
      // Names start with rollback-<time>, so they sort by time.
      this.rollbackFiles = names.sort().slice(-this.source.tuning.consoleMaxRollbackFiles)
    } catch {
      this.rollbackFiles = []
    }
  }
}
