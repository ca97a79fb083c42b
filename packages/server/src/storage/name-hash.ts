/**
 * The hash the Store's in-memory key tables (read-cache.ts, key-presence.ts)
 * find a name by: FNV-1a over its characters, then mixed so that the low
 * bits, which pick a table's slot, depend on every character. 31 bits, so
 * that NOT_KEPT (-1) stands apart from every hash.
 */

/** The answer for a name with a character above the caller's limit: a table never keeps it. */
export const NOT_KEPT = -1

/**
 * The hash of `name`'s characters from `skip` on, or NOT_KEPT when one is
 * above `limit` (0x7f: ASCII names only, 0xff: latin1 names).
 */
export function hashName(name: string, skip: number, limit: number): number {
  let h = 0x811c9dc5
  for (let i = skip; i < name.length; i++) {
    const c = name.charCodeAt(i)
    if (c > limit) return NOT_KEPT
    h = Math.imul(h ^ c, 0x01000193)
  }
  return mix(h)
}

/** hashName for a name given as its bytes: the same hash as the string of those bytes' latin1 characters. */
export function hashBytes(key: Uint8Array, limit: number): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    const c = key[i]
    if (c > limit) return NOT_KEPT
    h = Math.imul(h ^ c, 0x01000193)
  }
  return mix(h)
}

function mix(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h & 0x7fffffff
}
