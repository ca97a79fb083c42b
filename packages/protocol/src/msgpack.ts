// Order matters: keep-bom patches TextDecoder before msgpackr's module
// runs (a side-effect import is never moved by import sorting).
import './keep-bom.js'
import { isNativeAccelerationEnabled, Packr } from 'msgpackr'
import { restoreTextDecoder } from './keep-bom.js'

/**
 * The one way tandem's packages load msgpackr (import Packr from here, not
 * from 'msgpackr'): see keep-bom.ts. True when strings that start with
 * U+FEFF survive decoding: msgpackr's JavaScript decoder was built while
 * the BOM was kept, or its native addon does the decoding. False only if
 * something loaded msgpackr before tandem did and the addon is missing.
 */
export const msgpackKeepsBom = restoreTextDecoder() > 0 || isNativeAccelerationEnabled

export { Packr }
