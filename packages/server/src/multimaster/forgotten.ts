import type { Store } from '../storage/store.js'

/** The refuse reason a link to a forgotten origin gets, on both sides. */
export const FORGOTTEN_REASON = 'forgotten'
export const FORGOTTEN_MESSAGE =
  "this node's origin was forgotten by the group; wipe its data dir to rejoin under a new id"

/**
 * The origins this node was told to forget (`tandem forget`): peers that
 * are gone for good, or whose data dir was lost (they come back wiped,
 * under a new origin). A forgotten origin is no longer a member whose row
 * causal stability waits for (stability.ts), so it stops holding tombstone
 * collection up, and a link whose other end names it is refused, in either
 * direction: its writes that no surviving member holds are given up, and
 * must never arrive later, or a delete already collected would lose to
 * them. Kept in meta, fsynced before the forget is answered, and never
 * undone: an origin is one incarnation (multi-master rule 3), and a node
 * that comes back with that origin's data is refused for good.
 */
export class ForgottenPeers {
  private readonly origins = new Set<string>()

  constructor(private readonly store: Store) {}

  async load(): Promise<void> {
    const stored = await this.store.getMeta<string[]>('forgotten')
    for (const origin of stored ?? []) this.origins.add(origin)
  }

  has(origin: string): boolean {
    return this.origins.has(origin)
  }

  list(): string[] {
    return [...this.origins].sort()
  }

  /**
   * Adds `origin`, durably, before resolving. It counts as forgotten at
   * once (each write holds the whole set, so of two forgets at once the
   * later write holds both).
   */
  async add(origin: string): Promise<void> {
    if (this.origins.has(origin)) return
    this.origins.add(origin)
    try {
      await this.store.setMeta('forgotten', this.list())
    } catch (err) {
      this.origins.delete(origin)
      throw err
    }
  }
}
