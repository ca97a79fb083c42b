import { describe, expect, it } from 'vitest'
import { Metrics } from './metrics.js'

describe('Metrics.perScrape', () => {
  it('builds a shared reading once per render, however many figures read it, and again at the next', async () => {
    const metrics = new Metrics()
    let builds = 0
    let value = 1
    const shared = metrics.perScrape(() => {
      builds++
      return { a: value, b: value * 2, c: value * 3 }
    })
    metrics.gauge('test_a', 'a', () => shared().a)
    metrics.gauge('test_b', 'b', () => shared().b)
    metrics.counterOf('test_c_total', 'c', () => shared().c)

    const first = await metrics.render()
    expect(builds).toBe(1)
    expect(first).toMatch(/^test_a 1$/m)
    expect(first).toMatch(/^test_b 2$/m)
    expect(first).toMatch(/^test_c_total 3$/m)

    value = 5
    const second = await metrics.render()
    expect(builds).toBe(2)
    expect(second).toMatch(/^test_a 5$/m)
    expect(second).toMatch(/^test_c_total 15$/m)
  })
})
