import {
  SNAPSHOT_END,
  SNAPSHOT_HEADER,
  type SnapshotHeader,
  snapshotDataFrame,
  snapshotFrame,
  snapshotJsonFrame,
  snapshotPreamble,
  TandemError,
} from '@tandem/protocol'
import type { WebSocket } from 'ws'
import { epochAt } from '../replication/history.js'
import { FlowSocket } from '../replication/link.js'
import type { Store } from '../storage/store.js'
import type { Tuning } from '../tuning.js'
import type { Logger } from '../util/logger.js'

/**
 * Serves backups: `tandem snapshot save` opens a WebSocket at /snapshot and
 * receives the snapshot file (@tandem/protocol's snapshot-file.ts), one
 * frame per message. The data comes from one LevelDB snapshot, so it is
 * consistent at one seq while writes go on; it is read a page at a time and
 * sent while the socket takes it (the same backpressure as a full sync), so
 * a backup holds at most a few chunks in memory however large the data.
 */

export class SnapshotSender {
  private readonly running = new Set<WebSocket>()

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly tuning: Pick<Tuning, 'backupHighWaterBytes' | 'backupChunkBytes' | 'maxBackups'>,
  ) {}

  get count(): number {
    return this.running.size
  }

  /** Streams a snapshot file on `ws`, then closes it (1000 when the file is complete). */
  accept(ws: WebSocket): void {
    if (this.running.size >= this.tuning.maxBackups) {
      ws.close(1013, `BUSY: ${this.tuning.maxBackups} snapshots are being taken; retry later`)
      return
    }
    this.running.add(ws)
    ws.on('error', () => {})
    this.send(ws)
      .then(
        () => ws.close(1000, 'snapshot complete'),
        (err) => {
          this.logger.warn('snapshot failed', { err })
          // A damaged record is named with its code, which the SDK gives back (close reasons hold 123 bytes).
          let why =
            err instanceof TandemError ? `${err.code}: ${err.message}` : `snapshot failed: ${(err as Error).message}`
          why = why.slice(0, 120)
          while (Buffer.byteLength(why) > 120) why = why.slice(0, -1)
          ws.close(1011, why)
        },
      )
      .finally(() => this.running.delete(ws))
  }

  private async send(ws: WebSocket): Promise<void> {
    const flow = new FlowSocket(ws, this.tuning.backupHighWaterBytes)
    ws.on('close', () => flow.release())
    const store = this.store
    const history = store.history
    const snapshot = store.snapshot()
    try {
      const seq = await snapshot.seq
      const header: SnapshotHeader = {
        seq,
        epoch: epochAt(history, seq),
        // As a full sync sends it: the history when the snapshot was taken.
        history,
        clock: await snapshot.clock,
        nodeId: store.nodeId,
        createdAt: store.clock.wall(),
      }
      const started = store.clock.wall()
      flow.sendFrame(Buffer.concat([snapshotPreamble(), snapshotJsonFrame(SNAPSHOT_HEADER, header)]))
      let records = 0
      let frames = 1
      for await (const { chunk, count } of snapshot.chunks(this.tuning.backupChunkBytes)) {
        if (!flow.open) throw new Error('the client went away')
        flow.sendFrame(snapshotDataFrame(chunk, count))
        records += count
        frames++
        await flow.drained()
      }
      if (!flow.open) throw new Error('the client went away')
      flow.sendFrame(snapshotFrame(SNAPSHOT_END, Buffer.from(JSON.stringify({ records, frames, seq }))))
      await flow.drained()
      this.logger.info('snapshot sent', { seq, records, ms: store.clock.wall() - started })
    } finally {
      await snapshot.close()
    }
  }
}
