import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { installTestClock } from './test-clock.js'

describe('test clock', () => {
  const undo: (() => void)[] = []
  afterEach(() => {
    for (const u of undo.splice(0)) u()
  })

  it('is off unless TANDEM_TEST_CLOCK_FILE is set', () => {
    const before = Date.now
    expect(installTestClock({})).toBeNull()
    expect(Date.now).toBe(before)
  })

  it('shifts Date.now by the ms in the file, and follows the file as it changes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tandem-clock-'))
    undo.push(() => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, 'offset')
    writeFileSync(file, '3600000')
    const real = Date.now
    const u = installTestClock({ TANDEM_TEST_CLOCK_FILE: file })
    expect(u).not.toBeNull()
    undo.unshift(() => u?.())
    expect(Date.now() - real()).toBeGreaterThanOrEqual(3_599_000)
    writeFileSync(file, '-60000')
    const deadline = real() + 10_000
    while (Date.now() - real() > 0 && real() < deadline) await new Promise((r) => setTimeout(r, 20))
    expect(Date.now() - real()).toBeLessThanOrEqual(-59_000)
    u?.()
    expect(Date.now).toBe(real)
  })
})
