/**
 * Redis glob patterns (SCAN MATCH, CONFIG GET, PSUBSCRIBE): `*`, `?`,
 * `[abc]`, `[^a-z]` and `\x` escapes. A pattern becomes a RegExp plus the
 * literal prefix before its first wildcard, which lets SCAN read only the
 * keys that can match (`user:*` reads the `user:` range and nothing else).
 */
export interface Glob {
  /** Literal text every match starts with. */
  prefix: string
  /** True when the pattern is `prefix*`: every key under the prefix matches. */
  prefixOnly: boolean
  test(text: string): boolean
}

const SPECIAL = /[\\^$.*+?()[\]{}|/]/g

export function compileGlob(pattern: string): Glob {
  let source = ''
  let prefix = ''
  let literal = true
  let i = 0
  while (i < pattern.length) {
    const c = pattern[i]
    if (c === '*') {
      literal = false
      source += '[\\s\\S]*'
      while (pattern[i] === '*') i++
      continue
    }
    if (c === '?') {
      literal = false
      source += '[\\s\\S]'
    } else if (c === '[') {
      const close = pattern.indexOf(']', i + 2)
      if (close === -1) {
        // An unclosed class matches the text literally.
        source += '\\['
        if (literal) prefix += '['
      } else {
        literal = false
        let body = pattern.slice(i + 1, close)
        const negate = body.startsWith('^')
        if (negate) body = body.slice(1)
        source += `[${negate ? '^' : ''}${body.replace(/[\\\]]/g, '\\$&')}]`
        i = close
      }
    } else if (c === '\\' && i + 1 < pattern.length) {
      i++
      source += pattern[i].replace(SPECIAL, '\\$&')
      if (literal) prefix += pattern[i]
    } else {
      source += c.replace(SPECIAL, '\\$&')
      if (literal) prefix += c
    }
    i++
  }
  const re = new RegExp(`^${source}$`, 'u')
  const prefixOnly = /^[^*?[\\]*\*+$/.test(pattern)
  return { prefix, prefixOnly, test: (text) => (prefixOnly ? text.startsWith(prefix) : re.test(text)) }
}
