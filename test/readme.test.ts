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
    const dir = tempDir('tandem-readme-')
    symlinkSync(join(REPO_ROOT, 'node_modules'), join(dir.path, 'node_modules'))
    let script = block
    for (const port of new Set(block.match(/\b[67]\d{3}\b/g) ?? [])) {
      script = script.replace(new RegExp(`\\b${port}\\b`, 'g'), String(await freePort()))
    }
    // The harness's part: stop what the block started in the background.
    const harness = `trap 'kill $(jobs -p) 2> /dev/null; wait' EXIT\n`
    const proc = spawn('bash', ['-euo', 'pipefail', '-c', harness + script], { cwd: dir.path, detached: true })
    let output = ''
    proc.stdout.on('data', (d) => (output += d))
    proc.stderr.on('data', (d) => (output += d))
    try {
      const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve))
      const logs = script.match(/\S+\.log/g) ?? []
      const tails = logs.map((f) => {
        try {
          return `${f}: ${readFileSync(join(dir.path, f), 'utf8').split('\n').slice(-5).join('\n')}`
        } catch {
          return `${f}: (none)`
        }
      })
      expect(code, `${output}\n${tails.join('\n')}`).toBe(0)
    } finally {
      try {
        process.kill(-(proc.pid as number), 'SIGKILL')
      } catch {
        // the group is gone: all stopped
      }
      dir.remove()
    }
  })
})
