// Order matters: keep-bom patches TextDecoder before msgpackr's module
// runs (a side-effect import is never moved by import sorting).
import './keep-bom.js'
import { addExtension, C1, isNativeAccelerationEnabled, type Options, Packr, Unpackr } from 'msgpackr'
import { restoreTextDecoder } from './keep-bom.js'

/**
 * The one way tandem's packages load msgpackr (import Packr from here, not
 * from 'msgpackr'): see keep-bom.ts. True when strings that start with
 * U+FEFF survive decoding: msgpackr's JavaScript decoder was built while
 * the BOM was kept, or its native addon does the decoding. False only if
 * something loaded msgpackr before tandem did and the addon is missing.
 */
export const msgpackKeepsBom = restoreTextDecoder() > 0 || isNativeAccelerationEnabled

/**
 * The msgpackr extension types tandem refuses to decode. tandem speaks plain
 * msgpack and sends none of them, but msgpackr decodes them whatever the
 * options: structured-clone references (a peer could send a cycle), Error,
 * Set, RegExp, typed arrays, BigInt, bundled strings. The timestamp (-1) is
 * standard msgpack, but no field of tandem's messages is a time value (times
 * are integer milliseconds) and values are strings or binary, so it is
 * refused too. Ext 0 (msgpackr's `undefined`, which its encoder writes for an
 * undefined field) stays: it decodes to nothing more than a missing field.
 */
const REFUSED_EXTENSIONS: ReadonlyMap<number, string> = new Map([
  [0x42, 'BigInt'],
  [0x62, 'bundled strings'],
  [0x65, 'Error'],
  [0x69, 'structured-clone reference'],
  [0x70, 'structured-clone pointer'],
  [0x73, 'Set'],
  [0x74, 'typed array'],
  [0x78, 'RegExp'],
  [0xff, 'timestamp'],
])

function refuse(type: number, name: string): () => never {
  return () => {
    throw new Error(`extension type ${type === 0xff ? -1 : type} (${name}) is not part of tandem's msgpack`)
  }
}

let refusing = false

/**
 * Makes this process's msgpackr refuse REFUSED_EXTENSIONS. msgpackr keeps
 * one extension table per process, not per Packr, so the refusal is made
 * once, for every decoder in the process: no cost per value, and no decoder
 * (client frames, replication, peers, watches, log entries, contexts) can
 * forget it. The server makes it when its node module loads; the SDK and
 * the CLI do not, since they decode only what a node sent them and an
 * application that loads the SDK may use msgpackr's own types itself.
 * TANDEM_TEST_MSGPACKR_EXTENSIONS=1 keeps msgpackr's table: a test-only
 * path, for the test that needs an input reaching a throwing handler (a
 * cyclic request), which plain msgpack cannot build.
 */
export function refuseForeignExtensions(): void {
  if (refusing || process.env.TANDEM_TEST_MSGPACKR_EXTENSIONS === '1') return
  refusing = true
  for (const [type, name] of REFUSED_EXTENSIONS) addExtension({ type, unpack: refuse(type, name) })
}

/** A record definition was refused (see plainUnpackr). */
export const RECORD_REFUSED = 'msgpackr record definitions (ext 0x72) are not part of tandem’s msgpack'

/**
 * An Unpackr for bytes that another process wrote. msgpackr reads a record
 * definition (fixext 0x72) before its extension table and whatever
 * useRecords says, and then reads the integers 0x40-0x7f of that value as
 * records. It stores the definition in the unpackr's structures: an empty
 * list that takes no elements makes that store throw (a TypeError, which
 * isRecordRefusal recognises), and costs nothing per value. Only for
 * decoding: msgpackr's encoder writes to its structures.
 */
export function plainUnpackr(options: Options): Unpackr {
  const unpackr = new Unpackr(options)
  // Set after construction: the constructor writes sharedLength into a given
  // list. restoreStructures, which unpackMultiple() sets per value, reads as
  // none, so that a refused definition leaves nothing to undo.
  const structures = Object.defineProperties([], {
    sharedLength: { value: 0 },
    restoreStructures: { get: () => null, set: () => {} },
  })
  Object.assign(unpackr, { structures: Object.preventExtensions(structures) })
  return unpackr
}

/** Whether a decode failed on a record definition (the store into plainUnpackr's structures). */
export function isRecordRefusal(err: unknown): boolean {
  return err instanceof TypeError && /not extensible/.test(err.message)
}

/** A refused 0xc1 (see holdsNeverUsed). */
export const NEVER_USED_REFUSED = 'byte 0xc1 is never used in msgpack'

/**
 * Whether bytes that decoded to `value` held 0xc1, the one type byte
 * msgpack never uses. msgpackr reads it as a marker object (its C1) instead
 * of failing, and has no option to refuse it; as a map key it already
 * throws (keys must be strings), so it can only sit where a value does.
 * The byte must be somewhere in `data` for the marker to be in the value,
 * so the value is searched only when it is: one native scan of the bytes
 * per decode, and a walk of the value only for the frames whose strings,
 * binary or numbers happen to hold that byte (never valid UTF-8, so
 * string-only requests hold it only in their numbers).
 */
export function holdsNeverUsed(data: Uint8Array, value: unknown): boolean {
  if (data.indexOf(0xc1) === -1) return false
  // A stack rather than recursion: msgpackr decodes deeper nestings than a recursive walk could follow.
  const pending: unknown[] = [value]
  while (pending.length > 0) {
    const next = pending.pop()
    if (next === C1) return true
    if (typeof next !== 'object' || next === null || ArrayBuffer.isView(next)) continue
    if (Array.isArray(next)) {
      for (const item of next) pending.push(item)
    } else {
      for (const item of Object.values(next)) pending.push(item)
    }
  }
  return false
}

export { Packr }
