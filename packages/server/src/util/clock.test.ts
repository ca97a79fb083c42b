import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { fileClock, systemClock } from './clock.js'

describe('test clock (--test-clock-file)', () => {
  const undo: (() => void)[] = []
  afterEach(() => {
    for (const u of undo.splice(0)) u()
  })

  it('shifts wall() by the ms in the file and follows the file as it changes; now() does not move', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tandem-clock-'))
    undo.push(() => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, 'offset')
    writeFileSync(file, '3600000')
    const clock = fileClock(file)
    undo.unshift(() => clock.close())
    expect(clock.wall() - Date.now()).toBeGreaterThanOrEqual(3_599_000)
    expect(Math.abs(clock.now() - systemClock.now())).toBeLessThan(1000)
    writeFileSync(file, '-60000')
    const deadline = Date.now() + 10_000
    while (clock.wall() - Date.now() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    expect(clock.wall() - Date.now()).toBeLessThanOrEqual(-59_000)
    expect(Math.abs(clock.now() - systemClock.now())).toBeLessThan(1000)
  })

  it('reads a missing or unreadable file as no offset', () => {
    const clock = fileClock(join(tmpdir(), 'tandem-clock-none', 'offset'))
    undo.push(() => clock.close())
    expect(Math.abs(clock.wall() - Date.now())).toBeLessThan(1000)
  })
})
