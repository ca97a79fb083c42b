import type { HistoryEpoch } from '../storage/store.js'

/**
 * Histories and resync decisions. A history lists the epochs a node's log
 * went through, each with the seq it began at and the node that began it.
 * Two logs agree up to seq S when their histories assign every seq <= S to
 * the same epoch: entries are only ever written by the one master of an
 * epoch, so same epoch and same seq means the same entry.
 */

/** The epoch a seq belongs to under a history, or 0 when before its first epoch. */
export function epochAt(history: HistoryEpoch[], seq: number): number {
  let epoch = 0
  for (const e of history) {
    if (e.startSeq > seq) break
    epoch = e.epoch
  }
  return epoch
}

export function lastEpoch(history: HistoryEpoch[]): number {
  return history.length === 0 ? 0 : history[history.length - 1].epoch
}

/**
 * The last seq up to which two logs agree: `a` with history `ha` and last
 * seq `la`, `b` likewise. Found as the first epoch boundary where the
 * histories differ, capped by both ends.
 */
export function forkPoint(ha: HistoryEpoch[], la: number, hb: HistoryEpoch[], lb: number): number {
  const common = Math.min(la, lb)
  for (let i = 0; i < Math.max(ha.length, hb.length); i++) {
    const x = ha[i]
    const y = hb[i]
    if (x && y && x.epoch === y.epoch && x.startSeq === y.startSeq && x.by === y.by && x.id === y.id) continue
    const divergeAt = Math.min(x?.startSeq ?? Number.POSITIVE_INFINITY, y?.startSeq ?? Number.POSITIVE_INFINITY)
    return Math.min(common, divergeAt - 1)
  }
  return common
}

type ResyncPlan =
  | { kind: 'continue'; fromSeq: number }
  | {
      kind: 'fullsync'
      reason: string /** Entries after this seq are a divergent tail the downstream must roll back. */
      rollbackAfter?: number
    }
  | { kind: 'refuse'; reason: 'behind' | 'diverged' | 'stale'; message: string }

interface LogView {
  history: HistoryEpoch[]
  lastSeq: number
  /** Oldest seq still in the log (lastSeq + 1 when the log is empty). */
  firstLogSeq?: number
}

/**
 * What an upstream does for a downstream that says it holds `down`.
 *
 * - Same history and the upstream still holds the next entry: CONTINUE.
 * - Same history but the entries are gone from the upstream's log, or the
 *   downstream is empty: FULLSYNC.
 * - The downstream holds entries the upstream lacks:
 *   - in an epoch the upstream's history has moved past (a newer epoch
 *     began at or before them): that tail is divergent and must go, so
 *     FULLSYNC (the downstream first writes the tail to its rollback file);
 *   - in epochs older than the newest the upstream's history holds (the
 *     downstream was a master of an epoch that lost): FULLSYNC with the same
 *     rollback;
 *   - otherwise the upstream is behind or was restarted empty: REFUSE, so
 *     that an empty or lagging upstream never wipes a downstream that has
 *     more than it. The downstream waits and retries.
 * - The downstream is in a newer epoch than the upstream: REFUSE (stale
 *   upstream; it is the one that must catch up or step down).
 */
export function planResync(up: Required<LogView>, down: LogView): ResyncPlan {
  if (lastEpoch(down.history) > lastEpoch(up.history)) {
    return {
      kind: 'refuse',
      reason: 'stale',
      message: `downstream is at epoch ${lastEpoch(down.history)}, newer than this node's ${lastEpoch(up.history)}`,
    }
  }
  if (down.lastSeq === 0) return { kind: 'fullsync', reason: 'downstream is empty' }
  const fork = forkPoint(up.history, up.lastSeq, down.history, down.lastSeq)
  if (fork < down.lastSeq) {
    // The downstream has entries the upstream does not share. They are a
    // divergent tail only if the upstream began a newer epoch over them.
    const overtaking = up.history.find((e) => e.startSeq <= down.lastSeq && e.epoch > epochAt(down.history, e.startSeq))
    if (overtaking) {
      return {
        kind: 'fullsync',
        reason: `divergent tail after seq ${fork} (epoch ${overtaking.epoch})`,
        rollbackAfter: fork,
      }
    }
    if (up.lastSeq < down.lastSeq && fork === up.lastSeq) {
      return {
        kind: 'refuse',
        reason: 'behind',
        message: `this node is at seq ${up.lastSeq}, behind the downstream's ${down.lastSeq}`,
      }
    }
    // Both logs hold entries after the fork and they differ. If the upstream's
    // history went on to an epoch newer than every epoch in the downstream's
    // log, the downstream's tail belongs to an epoch that lost: an entry a
    // majority held would be in the log of every later master (fail-over rule
    // 2, and a promoted master starts from the newest log it is given), and
    // the upstream carries that later history. It goes to the rollback file,
    // as a returning old master's tail does. Unrelated histories (fork 0) and
    // logs of the same last epoch are still refused.
    const supersededBy = lastEpoch(up.history)
    if (fork > 0 && supersededBy > lastEpoch(down.history)) {
      return {
        kind: 'fullsync',
        reason: `divergent tail after seq ${fork} (epoch ${epochAt(down.history, fork + 1)}, superseded by epoch ${supersededBy})`,
        rollbackAfter: fork,
      }
    }
    return {
      kind: 'refuse',
      reason: 'diverged',
      message: `histories diverge after seq ${fork} and this node's is not newer; refusing to discard the downstream's ${down.lastSeq - fork} entries`,
    }
  }
  if (down.lastSeq + 1 < up.firstLogSeq) {
    return { kind: 'fullsync', reason: `seq ${down.lastSeq + 1} is no longer in the log (oldest ${up.firstLogSeq})` }
  }
  return { kind: 'continue', fromSeq: down.lastSeq + 1 }
}
