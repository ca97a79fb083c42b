/**
 * The same string as V8 keeps it as a property name: one object for every
 * equal string made this way. A Map looks a key up by its hash, then tells
 * a candidate apart by identity before it compares characters: an origin
 * id (32 hex digits) read from an entry was another object than the one
 * the version vector's Map holds it under (parsed from JSON), so every
 * get and set of a peer's counter compared the 32 characters. Only for
 * strings made once and used many times: each call makes an object.
 */
export function interned(s: string): string {
  return Object.keys({ [s]: 0 })[0]
}
