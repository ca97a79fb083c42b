import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { SERVER_BIN } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'

/** True while `pid` is a live process (not gone, not a zombie waiting to be reaped). */
function alive(pid: number): boolean {
  if (!existsSync(`/proc/${pid}/stat`)) return false
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
}

/**
 * `pnpm start` as a user runs it: npx, then pnpm, then the package.json
 * script, which runs the node. A process manager (or `kill PID`) signals
 * only the top process; Ctrl-C signals the whole process group.
 */
describe('a node started by a package.json script', () => {
  const cleanups: (() => void)[] = []
  afterEach(() => {
    for (const c of cleanups.splice(0).reverse()) c()
  })

  async function startByPnpm(): Promise<{ launcher: ChildProcess; nodePid: number; output: () => string }> {
    const dir = tempDir()
    cleanups.push(() => dir.remove())
    const script = `exec node ${JSON.stringify(SERVER_BIN)} --port 0 --data-dir ./data`
    writeFileSync(
      join(dir.path, 'package.json'),
      JSON.stringify({ name: 'start-test', private: true, scripts: { start: script } }),
    )
    // detached: its own process group, so that a group signal reaches it and nothing of the test runner.
    const launcher = spawn('npx', ['-y', 'pnpm@12.4.2', 'run', 'start'], { cwd: dir.path, detached: true })
    let text = ''
    launcher.stdout?.on('data', (d) => (text += d))
    launcher.stderr?.on('data', (d) => (text += d))
    let nodePid = 0
    cleanups.push(() => {
      for (const pid of [launcher.pid, nodePid]) {
        if (pid && alive(pid)) process.kill(pid, 'SIGKILL')
      }
    })
    const listening = await waitFor(() => /"msg":"listening".*"pid":(\d+)/.exec(text), {
      timeoutMs: 60_000,
      what: 'the node to listen',
    })
    nodePid = Number(listening[1])
    expect(nodePid).not.toBe(launcher.pid)
    return { launcher, nodePid, output: () => text }
  }

  it('stops cleanly when only the top process gets SIGTERM', async () => {
    const { launcher, nodePid, output } = await startByPnpm()
    process.kill(launcher.pid as number, 'SIGTERM')
    await waitFor(() => !alive(nodePid), { timeoutMs: 20_000, what: 'the node to exit' })
    // Its last lines can still be in the pipe when it is gone: wait for them to be read.
    await waitFor(() => /"msg":"closed"/.test(output()), { timeoutMs: 5_000, what: "the node's last log lines" })
    expect(output()).toMatch(/"msg":"the package manager that started this node exited/)
  })

  it('stops cleanly on Ctrl-C (SIGINT to the process group), and so does the launcher', async () => {
    const { launcher, nodePid, output } = await startByPnpm()
    const exited = new Promise((resolve) => launcher.once('exit', resolve))
    process.kill(-(launcher.pid as number), 'SIGINT')
    await waitFor(() => !alive(nodePid), { timeoutMs: 20_000, what: 'the node to exit' })
    await exited
    await waitFor(() => /"msg":"closed"/.test(output()), { timeoutMs: 5_000, what: "the node's last log lines" })
    expect(output()).toMatch(/"msg":"stopping","signal":"SIGINT"/)
  })
})
