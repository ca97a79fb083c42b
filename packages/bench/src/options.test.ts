import { describe, expect, it } from 'vitest'
import { parseOptions, redisFsyncOf } from './options.js'

describe('redisFsyncOf', () => {
  it('gives Redis the appendfsync that matches tandem --sync', () => {
    expect(redisFsyncOf(parseOptions(['compare', '--sync', 'always']))).toBe('always')
    expect(redisFsyncOf(parseOptions(['compare', '--sync', 'periodic']))).toBe('everysec')
    expect(redisFsyncOf(parseOptions(['compare', '--sync', 'none']))).toBe('no')
    // tandem's default --sync is always.
    expect(redisFsyncOf(parseOptions(['compare']))).toBe('always')
  })

  it('takes --redis-fsync over the one --sync implies, and refuses anything else', () => {
    expect(redisFsyncOf(parseOptions(['compare', '--sync', 'always', '--redis-fsync', 'everysec']))).toBe('everysec')
    expect(() => parseOptions(['compare', '--redis-fsync', 'sometimes'])).toThrow(/--redis-fsync/)
  })
})

describe('--repeat', () => {
  it('is left unset when not given, so that each suite takes its own default of passes', () => {
    expect(parseOptions(['run', '--workload', 'multimaster']).repeat).toBeUndefined()
    expect(parseOptions(['run', '--workload', 'multimaster', '--repeat', '6']).repeat).toBe(6)
    expect(() => parseOptions(['run', '--repeat', '0'])).toThrow(/--repeat/)
  })
})
