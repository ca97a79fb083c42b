import { describe, expect, it } from 'vitest'
import { createLogger } from './logger.js'

// A log line is often written about whatever was thrown: values JSON
// cannot hold must neither make the log call throw nor lose the line.
describe('logger with values JSON cannot hold', () => {
  const cyclic: Record<string, unknown> = { why: 'a cycle' }
  cyclic.self = cyclic
  const throwingToJson = {
    toJSON: () => {
      throw new Error('toJSON threw')
    },
  }
  const throwingGetter = Object.defineProperty({}, 'x', {
    enumerable: true,
    get: () => {
      throw new Error('getter threw')
    },
  })
  const noString = Object.create(null) as object
  const cases: [string, unknown][] = [
    ['a cycle', cyclic],
    ['a BigInt', 12n],
    ['a throwing toJSON', throwingToJson],
    ['a throwing getter', throwingGetter],
    [
      'an object without toString',
      Object.assign(noString, {
        toJSON: () => {
          throw new Error('no')
        },
      }),
    ],
  ]

  for (const format of ['json', 'pretty'] as const) {
    for (const [name, value] of cases) {
      it(`${format}: ${name} is written, with the rest of the line`, () => {
        const lines: string[] = []
        const log = createLogger({ level: 'debug', format, write: (line) => lines.push(line) }, { node: 'n1' })
        expect(() => log.error('something failed', { err: value, count: 3 })).not.toThrow()
        expect(lines).toHaveLength(1)
        if (format === 'json') {
          const record = JSON.parse(lines[0]) as Record<string, unknown>
          expect(record).toMatchObject({ level: 'error', msg: 'something failed', node: 'n1', count: 3 })
          expect(record.err).toBeDefined()
        } else {
          expect(lines[0]).toMatch(/ERROR something failed node=n1 err=.* count=3\n$/)
        }
      })
    }
  }

  it('keeps what it can hold: the cycle as a marker, the BigInt as digits', () => {
    const lines: string[] = []
    const log = createLogger({ level: 'debug', format: 'json', write: (line) => lines.push(line) })
    log.error('x', { err: cyclic, n: 12n })
    const record = JSON.parse(lines[0]) as { err: { why: string; self: string }; n: string }
    expect(record.err).toEqual({ why: 'a cycle', self: '[seen above]' })
    expect(record.n).toBe('12')
  })
})
