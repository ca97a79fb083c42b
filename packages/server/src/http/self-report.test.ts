import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { NodeStatus } from '@tandem/protocol'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { DataDirSize } from '../storage/data-dir-size.js'
import { DEFAULT_TUNING } from '../tuning.js'
import { SelfReporter } from './self-report.js'

// What a console's ticks cost the node they read, counted in data-dir
// walks with a driven clock: the console accepts an older size than
// status and /metrics do, so a tick a second does not walk the dir every
// time status would.

describe('console self report', () => {
  let dir = ''
  let t = 0
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tandem-self-report-'))
    writeFileSync(join(dir, 'file'), Buffer.alloc(100))
    t = 0
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('ten ticks a second apart walk the data dir once, where status alone would walk it every 2 s', async () => {
    const disk = new DataDirSize(dir, DEFAULT_TUNING, () => t)
    const reporter = new SelfReporter({
      dataDir: dir,
      disk,
      // As the node's status does: its diskBytes from the shared DataDirSize.
      status: (diskMaxAgeMs) => ({ diskBytes: disk.bytes(diskMaxAgeMs) }) as unknown as NodeStatus,
      requests: () => new Map(),
      now: () => t,
      tuning: DEFAULT_TUNING,
    })
    await reporter.ready()
    const before = disk.walks
    let last = null as number | null
    for (let tick = 1; tick <= 10; tick++) {
      t = tick * 1000
      last = reporter.report().diskBytes
      await reporter.ready()
    }
    expect(last).toBe(100)
    expect(disk.walks - before).toBe(1)

    // The same ten seconds read by status and /metrics' own age.
    const statusWalks = disk.walks
    for (let tick = 11; tick <= 20; tick++) {
      t = tick * 1000
      await disk.ready()
    }
    expect(disk.walks - statusWalks).toBe(5)
  })
})
