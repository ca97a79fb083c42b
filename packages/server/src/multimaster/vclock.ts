import type { ApplyOp } from '../storage/entry-scan.js'
import type { EntryIdentity } from '../storage/log-entry.js'
import { compareBytes, compareDots, readRecord, type Sibling, writeRecord } from '../storage/record.js'
import { type ConflictResolver, KEEP } from '../storage/resolver.js'
import type { VersionVectorObject } from '../storage/version-vector.js'

/**
 * vclock: dotted version vectors (Preguiça, Baquero et al.), one dot per
 * value. A key holds
 *
 *   siblings  its concurrent values, each with its dot: the (origin,
 *             counter) of the write that made it, and that write's HLC;
 *   context   what the key has seen: per origin, the highest counter among
 *             the dots and causal contexts of every write applied to it.
 *
 * A write carries its dot (its origin and originSeq) and the causal context
 * its client read (nothing, for a blind write). Applying it:
 *
 *   - siblings whose dot the write's context covers are the ones the client
 *     saw: they go; the others stay (they are concurrent with it);
 *   - a put adds its value with its dot, unless the key's context already
 *     covers that dot (a later write saw it, or it is a duplicate); a
 *     delete adds nothing;
 *   - the key's context joins the write's context and dot.
 *
 * Origins number their writes densely and every node applies each origin's
 * writes in order, so a context that names counter n of origin o stands for
 * all of o's writes up to n: a node holding n holds the rest. The result is
 * a function of the set of writes applied, whatever their order (tested by
 * permutation in vclock.test.ts). A read returns the siblings and the
 * key's context; a write with that context replaces exactly what was read.
 *
 * A deleted key is a record with no sibling and its context: its tombstone,
 * collected once every node holds every write the context names (see
 * tombstone-gc.ts), so that none of them can come back.
 *
 * Siblings are capped at the origin, never when applying a peer's write
 * (which every node must apply alike): a local write that would leave more
 * than maxSiblings extends its own context to cover the oldest ones, by
 * (hlc, origin, counter). Dropping by that order covers, for each origin,
 * all its dots up to the highest dropped (an origin's later writes have
 * later timestamps), so a context can say it. The write is logged with that
 * context, so every node drops the same values. A node whose siblings pass
 * the cap through its peers' writes issues such a write itself (the
 * trimmer in mesh.ts: a delete with an empty context). Dropped values are
 * counted and reported to onDropped (the conflicts file).
 */
interface KeyState {
  siblings: Sibling[]
  context: VersionVectorObject
}

interface VclockStats {
  /** Values dropped past the sibling cap by writes this node took. */
  dropped: number
}

type DroppedListener = (key: Uint8Array, dropped: Sibling[], by: EntryIdentity) => void

function stateOf(record: Buffer | undefined): KeyState {
  if (record === undefined) return { siblings: [], context: {} }
  const { body } = readRecord(record)
  if (body.kind !== 'siblings') throw new Error('the record is not a vclock record')
  return { siblings: body.siblings, context: body.context }
}

function encodeState(state: KeyState): Buffer {
  return writeRecord({ body: { kind: 'siblings', siblings: state.siblings, context: state.context } })
}

const covers = (ctx: VersionVectorObject, dot: { origin: string; counter: number }) =>
  (ctx[dot.origin] ?? 0) >= dot.counter

function join(into: VersionVectorObject, from: VersionVectorObject): void {
  for (const origin in from) if (from[origin] > (into[origin] ?? 0)) into[origin] = from[origin]
}

/** Oldest first: the LWW order on dots. */
function byAge(a: Sibling, b: Sibling): number {
  if (a.hlc !== b.hlc) return a.hlc < b.hlc ? -1 : 1
  return compareBytes(a.origin, b.origin) || a.counter - b.counter
}

export class VclockResolver implements ConflictResolver {
  readonly name = 'vclock'
  readonly readsCurrent = true
  readonly stats: VclockStats = { dropped: 0 }

  constructor(
    private readonly maxSiblings: number,
    private readonly onDropped: DroppedListener = () => {},
  ) {}

  resolve(op: ApplyOp, write: EntryIdentity, current: Buffer | undefined): Buffer | typeof KEEP {
    const state = stateOf(current)
    const dot = { origin: write.origin, counter: write.originSeq }
    const ctx = op.ctx ?? {}
    const siblings = state.siblings.filter((s) => !covers(ctx, s))
    // A write already superseded adds no value, but what it saw still goes:
    // its context counts whether it arrives before or after the write that
    // superseded it (a context may name a write without naming what that
    // write saw: a trim's does).
    if (op.value !== null && !covers(state.context, dot)) {
      const value = op.binary ? Buffer.from(op.value) : Buffer.from(op.value).toString('utf8')
      siblings.push({ origin: write.origin, counter: write.originSeq, hlc: write.hlc, value })
    }
    const context = { ...state.context }
    join(context, ctx)
    join(context, { [dot.origin]: dot.counter })
    const next = encodeState({ siblings, context })
    return current !== undefined && next.equals(current) ? KEEP : next
  }

  prepareLocal(op: ApplyOp, write: EntryIdentity, current: Buffer | undefined): ApplyOp {
    const state = stateOf(current)
    // A delete without a context removes every value this node holds.
    let ctx = op.ctx ?? (op.del ? { ...state.context } : undefined)
    const remaining = state.siblings.filter((s) => ctx === undefined || !covers(ctx, s))
    const excess = remaining.length + (op.del ? 0 : 1) - this.maxSiblings
    if (excess > 0) {
      const dropped = [...remaining].sort(byAge).slice(0, excess)
      ctx = { ...(ctx ?? {}) }
      for (const s of dropped) if (s.counter > (ctx[s.origin] ?? 0)) ctx[s.origin] = s.counter
      this.stats.dropped += dropped.length
      this.onDropped(op.key, dropped.sort(compareDots), write)
    }
    if (ctx === op.ctx) return op
    return { ...op, ctx }
  }

  merge(current: Buffer | undefined, incoming: Buffer): Buffer | typeof KEEP {
    const ours = stateOf(current)
    const theirs = stateOf(incoming)
    const dots = (state: KeyState) => new Set(state.siblings.map((s) => `${s.counter}:${s.origin}`))
    const ourDots = dots(ours)
    const theirDots = dots(theirs)
    const siblings = ours.siblings.filter(
      (s) => theirDots.has(`${s.counter}:${s.origin}`) || !covers(theirs.context, s),
    )
    for (const s of theirs.siblings) {
      if (!ourDots.has(`${s.counter}:${s.origin}`) && !covers(ours.context, s)) siblings.push(s)
    }
    const context = { ...ours.context }
    join(context, theirs.context)
    const merged = encodeState({ siblings, context })
    return current !== undefined && merged.equals(current) ? KEEP : merged
  }
}
