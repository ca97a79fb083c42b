import { spawn } from 'node:child_process'
import { readFileSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { freePort } from './helpers/fault-proxy.js'
import { REPO_ROOT } from './helpers/node-process.js'
import { tempDir } from './helpers/temp-dir.js'

/**
 * The README's shell blocks marked `<!-- runnable -->` paste and work as
 * written: each runs in bash (-euo pipefail, so every command must
 * succeed) in a fresh directory laid out like the repository root after
 * the install (its node_modules), with its ports (4-digit numbers from
 * 6000 to 7999) moved to free ones so that tests can run side by side.
 * The nodes a block leaves running in the background are stopped when
 * it ends.
 */
const README = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8')
const blocks = [...README.matchAll(/<!-- runnable -->\n```sh\n([\s\S]*?)```/g)].map((m) => m[1])

function title(block: string): string {
  return block.split('\n').find((l) => l.startsWith('tandem-server')) ?? block.split('\n')[0]
}

describe('README snippets', () => {
  it('has runnable blocks', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(3)
  })

  it.each(blocks.map((b) => [title(b), b]))('runs: %s', async (_title, block) => {
    // A port found free can be taken by a test running beside this one
    // before the block's server binds it: that run is ended and the block
    // runs again on other ports (a server that cannot listen says
    // EADDRINUSE in its log; the block would wait for it for ever).
    for (let attempt = 1; ; attempt++) {
      const run = await runBlock(block)
      if (run.portTaken && attempt < 3) continue
      expect(run.code, run.report).toBe(0)
      return
    }
  })
})

/** Runs a block once in a fresh directory, on free ports; ends it early when one of its servers finds its port taken. */
async function runBlock(block: string): Promise<{ code: number | null; portTaken: boolean; report: string }> {
  const dir = tempDir('tandem-readme-')
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(dir.path, 'node_modules'))
  let script = block
  for (const port of new Set(block.match(/\b[67]\d{3}\b/g) ?? [])) {
    script = script.replace(new RegExp(`\\b${port}\\b`, 'g'), String(await freePort()))
  }
  const logs = script.match(/\S+\.log/g) ?? []
  const readLog = (f: string) => {
    try {
      return readFileSync(join(dir.path, f), 'utf8')
    } catch {
      return ''
    }
  }
  // The harness's part: stop what the block started in the background.
  const harness = `trap 'kill $(jobs -p) 2> /dev/null; wait' EXIT\n`
  const proc = spawn('bash', ['-euo', 'pipefail', '-c', harness + script], { cwd: dir.path, detached: true })
  let output = ''
  proc.stdout.on('data', (d) => (output += d))
  proc.stderr.on('data', (d) => (output += d))
  let portTaken = false
  const watch = setInterval(() => {
    if (!logs.some((f) => readLog(f).includes('EADDRINUSE'))) return
    portTaken = true
    try {
      process.kill(-(proc.pid as number), 'SIGKILL')
    } catch {
      // already gone
    }
  }, 200)
  try {
    const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve))
    portTaken ||= logs.some((f) => readLog(f).includes('EADDRINUSE'))
    const tails = logs.map((f) => `${f}: ${readLog(f).split('\n').slice(-5).join('\n') || '(none)'}`)
    return { code, portTaken, report: `${output}\n${tails.join('\n')}` }
  } finally {
    clearInterval(watch)
    try {
      process.kill(-(proc.pid as number), 'SIGKILL')
    } catch {
      // the group is gone: all stopped
    }
    dir.remove()
  }
}
