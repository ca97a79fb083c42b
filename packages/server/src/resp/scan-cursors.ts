import { randomInt } from 'node:crypto'

/**
 * SCAN cursors. Redis clients treat a cursor as a decimal number (redis-cli
 * parses it with strtoull), but tandem's position in a scan is a key, which
 * no number can hold. So a cursor is a number that names a position kept
 * here: the last key returned and the pattern it was returned for.
 *
 * Bounded: at most `maxCursors` positions and `maxBytes` of keys, the
 * oldest forgotten first. A forgotten cursor (or one from before a restart)
 * answers ERR invalid cursor, so a scan never silently skips keys.
 */
interface ScanPosition {
  /** The last key returned; the next page starts after it. */
  after: string
  /** The MATCH pattern the cursor was handed out for. */
  match: string | null
}

export class ScanCursors {
  private readonly positions = new Map<string, ScanPosition>()
  private bytes = 0
  /** Cursors start at a random point so that two nodes (or two runs) rarely hand out the same one. */
  private next = BigInt(randomInt(1, 2 ** 47)) * 1000n

  constructor(
    readonly maxCursors = 100_000,
    readonly maxBytes = 64 * 1024 * 1024,
  ) {}

  get size(): number {
    return this.positions.size
  }

  /** Keeps `position` and returns the cursor that names it. */
  open(position: ScanPosition): string {
    this.next += BigInt(randomInt(1, 1000))
    const id = this.next.toString()
    this.positions.set(id, position)
    this.bytes += cost(position)
    while (this.positions.size > this.maxCursors || this.bytes > this.maxBytes) {
      const oldest = this.positions.keys().next()
      if (oldest.done) break
      this.bytes -= cost(this.positions.get(oldest.value) as ScanPosition)
      this.positions.delete(oldest.value)
    }
    return id
  }

  /**
   * The position a cursor names; undefined when unknown. It stays valid (a
   * client may ask for a page again after a lost reply) until evicted.
   */
  get(id: string): ScanPosition | undefined {
    return this.positions.get(id)
  }
}

function cost(position: ScanPosition): number {
  return 64 + position.after.length * 2 + (position.match?.length ?? 0) * 2
}
