import { appendFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Sibling } from '../storage/record.js'

/**
 * The conflicts file: values a vclock key dropped past --max-siblings, so
 * that nothing vanishes without a trace (the rollback file's idea).
 *
 *   <data-dir>/conflicts/conflicts.jsonl, one line per dropping write:
 *   {"time","key","by":{"origin","originSeq","hlc"},"dropped":[{"origin","counter","hlc","value"}]}
 *
 * Binary values are written as {"base64": "..."}. Lines are appended in the
 * order the drops happen; writes to the file are chained so they never
 * interleave.
 */
export class ConflictsFile {
  private chain: Promise<void> = Promise.resolve()
  private readonly dir: string
  readonly path: string
  written = 0

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'conflicts')
    this.path = join(this.dir, 'conflicts.jsonl')
  }

  record(key: Uint8Array, dropped: Sibling[], by: { origin: string; originSeq: number; hlc: number }): void {
    const line = {
      time: new Date().toISOString(),
      key: Buffer.from(key).toString('utf8'),
      by: { origin: by.origin, originSeq: by.originSeq, hlc: by.hlc },
      dropped: dropped.map((s) => ({
        origin: s.origin,
        counter: s.counter,
        hlc: s.hlc,
        value: typeof s.value === 'string' ? s.value : { base64: Buffer.from(s.value).toString('base64') },
      })),
    }
    const text = `${JSON.stringify(line)}\n`
    this.chain = this.chain
      .then(async () => {
        await mkdir(this.dir, { recursive: true })
        await appendFile(this.path, text)
        this.written += dropped.length
      })
      .catch(() => {})
  }

  /** Resolves once every line recorded so far is written. */
  async close(): Promise<void> {
    await this.chain
  }
}
