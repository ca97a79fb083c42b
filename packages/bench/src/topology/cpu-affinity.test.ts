import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { cannotPin, pinProcess } from './cpu-affinity.js'

const allowed = (pid: number) => /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]

describe('cpu affinity', () => {
  let child: ReturnType<typeof spawn> | null = null
  afterEach(() => {
    child?.kill('SIGKILL')
    child = null
  })

  it('pins a running process to one CPU, or says why it cannot', async () => {
    // A Node process already runs several threads (its pool), all of which must move.
    child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' })
    const pid = child.pid as number
    const why = await cannotPin(2)
    if (why !== null) {
      expect(why).toMatch(/CPU|taskset/)
      return
    }
    await pinProcess(pid, 1)
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      expect(allowed(Number(task))).toBe('1')
    }
    expect(allowed(pid)).toBe('1')
  })
})
