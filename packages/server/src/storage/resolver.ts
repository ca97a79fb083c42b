import type { ApplyOp } from './entry-scan.js'
import type { EntryIdentity } from './log-entry.js'
import { seqRecordFromBytes } from './record.js'
import type { WriteValue } from './text-bytes.js'

/**
 * A conflict resolver decides what a write does to a key, given what the
 * key holds now. It is the one thing that differs between following a
 * master and being one of several masters; the Store applies remote entries
 * through whichever resolver its caller hands it (Store.applyRemote), so a
 * mode is a resolver, not a change to replication or transport code.
 *
 * A resolver must be a pure function of (op, write identity, current
 * record): every node applies the same writes, in different orders, and
 * must end with the same bytes.
 */
export interface ConflictResolver {
  readonly name: string
  /**
   * True when resolve() needs the key's current record: the Store then reads
   * every key a group's entries write before it builds the group's batch.
   * False keeps the apply path free of reads (a replica's blind writes).
   */
  readonly readsCurrent: boolean
  /**
   * The record to store at the op's key, null to delete it, or KEEP to leave
   * it as it is (the key's current state wins). `current` is the stored
   * record, undefined when there is none or when readsCurrent is false;
   * `seq` is the entry's seq in this node's log.
   */
  resolve(op: ApplyOp, write: EntryIdentity, current: Buffer | undefined, seq?: number): Buffer | null | typeof KEEP
  /**
   * A write this node takes from a client, before it is logged: the op as
   * it will be logged and replicated (vclock fills in a delete's context and
   * extends a context to drop values past the sibling cap). Absent: as is.
   */
  prepareLocal?(op: ApplyOp, write: EntryIdentity, current: Buffer | undefined): ApplyOp
  /**
   * resolve() of a client's put with no options, its value as the write
   * carries it (a string, bytes or TextBytes), the record sealed for the
   * user key (`key` from `keyStart`): the same record resolve() gives for
   * the op, which the Store then need not make (nor the value's bytes).
   * A record it gives is versionPutRecord's: the Store takes its digest
   * span as PUT_RECORD_SPAN, without reading it from the record.
   * Absent: the Store makes the op and calls resolve().
   */
  resolvePut?(
    write: EntryIdentity,
    value: WriteValue,
    key: Uint8Array,
    keyStart: number,
    current: Buffer | undefined,
  ): Buffer | null | typeof KEEP
  /**
   * replicatedSpan() of the record resolve() gives for `op` when it gives
   * one, as known from how it builds it, so that the digest takes it
   * without reading the record again; DECODE_SPAN when not known. Absent:
   * never known. PUT_RECORD_SPAN says more: the record is a sealed value
   * holding the write's own version (the identity resolve() was given) and
   * no other field, as versionPutRecord's are, so LwwHeads takes that
   * version as given (setValue) instead of reading it back.
   */
  recordSpan?(op: ApplyOp): number
  /** A record from a peer's snapshot joined with the current one (multi-master full sync); KEEP when it adds nothing. */
  merge?(current: Buffer | undefined, incoming: Buffer): Buffer | typeof KEEP
}

/** resolve()'s answer when the current record wins and nothing is written. */
export const KEEP: unique symbol = Symbol('keep')

/**
 * Master -> replica: the upstream's log order is the truth, so the newest
 * entry wins, whatever the key held. The upstream already resolved any
 * conflict when it wrote the entry.
 */
export const logOrderWins: ConflictResolver = {
  name: 'log-order',
  readsCurrent: false,
  resolve(op: ApplyOp, _write: EntryIdentity, _current: Buffer | undefined, seq = 0): Buffer | null {
    // The key's modification seq is the entry's: the master's seq, which this node's log keeps.
    return op.value === null ? null : seqRecordFromBytes(op.key, 0, op.value, op.binary, seq, op.expiresAt)
  },
}
