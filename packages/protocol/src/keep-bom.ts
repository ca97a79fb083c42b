/**
 * msgpackr decodes strings longer than 64 bytes with one TextDecoder that
 * it builds when its module loads. It takes that path whenever its native
 * addon is missing (a platform without a prebuilt binary, or
 * MSGPACKR_NATIVE_ACCELERATION_DISABLED), and a default TextDecoder drops a
 * leading U+FEFF: a key or a string value that starts with one would be
 * stored one character short.
 *
 * Importing this module makes every TextDecoder keep the BOM until
 * restoreTextDecoder() is called. msgpack.ts imports it, then msgpackr,
 * then restores, so that only msgpackr's decoder is built this way.
 */

const Original = globalThis.TextDecoder
let built = 0

class BomKeepingTextDecoder extends Original {
  constructor(label?: string, options?: { fatal?: boolean; ignoreBOM?: boolean }) {
    super(label, { ...options, ignoreBOM: true })
    built++
  }
}

globalThis.TextDecoder = BomKeepingTextDecoder as typeof TextDecoder

/** Puts the global TextDecoder back; returns how many decoders were built meanwhile. */
export function restoreTextDecoder(): number {
  globalThis.TextDecoder = Original
  return built
}
