import type { Level } from 'level'
import { packBlocks } from './log-block.js'
import { prefixedSeqKey } from './log-entry.js'

/** The sublevels a store keeps in its one LevelDB, by name. */
export const SUBLEVELS = { data: 'data', log: 'log', resume: 'resume', tomb: 'tomb', meta: 'meta' } as const

/**
 * The keys a store writes in its LevelDB, for the bench's storage floor,
 * which writes the same keys and log blocks straight to a LevelDB to price
 * tandem's layout without the store around it.
 */
export class RawLayout {
  /** The key of the last applied seq (its value: the seq as JSON). */
  readonly lastSeqKey: Buffer
  private readonly dataPrefix: Buffer
  private readonly logPrefix: Buffer

  constructor(db: Level<Buffer, Buffer>) {
    this.dataPrefix = Buffer.from(db.sublevel(SUBLEVELS.data).prefix)
    this.logPrefix = Buffer.from(db.sublevel(SUBLEVELS.log).prefix)
    this.lastSeqKey = Buffer.from(db.sublevel(SUBLEVELS.meta).prefix + 'lastSeq')
  }

  /** Where the record of a user key lives. */
  dataKey(key: string): Buffer {
    return Buffer.concat([this.dataPrefix, Buffer.from(key, 'utf8')])
  }

  /** Where the log entry (or block) starting at seq lives. */
  logKey(seq: number): Buffer {
    return prefixedSeqKey(this.logPrefix, seq)
  }

  /** The log blocks of a group of encoded entries from firstSeq, packed as the store's log packs them. */
  logBlocks(firstSeq: number, entries: readonly Uint8Array[], put: (key: Buffer, block: Buffer) => void): void {
    packBlocks(entries, (index, block) => put(this.logKey(firstSeq + index), block))
  }
}
