import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { metricSum, statusOf } from '@tandem/bench/fixtures'
import { TandemClient } from '@tandem/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type NodeProcess, startNode } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'

/**
 * The SDK's liveness check: a node that answers nothing, not even a
 * WebSocket ping, while requests wait for it is taken as gone; a node that
 * is merely slow to answer (a w:N write waiting for replicas) answers the
 * ping and keeps its connection.
 */
describe('SDK liveness check against a real node', () => {
  const dir = tempDir()
  let node: NodeProcess
  let db: TandemClient

  beforeAll(async () => {
    node = await startNode(dir.path)
    db = await TandemClient.connect({ servers: [node.address], livenessTimeoutMs: 1000, timeoutMs: 60_000 })
  })
  afterAll(async () => {
    await db?.close()
    await node?.stop()
    dir.remove()
  })

  it('keeps a node that is silent but alive: a w:1 write with no replica ends in the server TIMEOUT', async () => {
    // The node holds the reply for 3 s (three liveness periods) and answers pings meanwhile.
    const outcome = await db.put('waits', 'v', { w: 1, timeoutMs: 3000 }).then(
      () => 'ACKED',
      (err: { code?: string; message: string }) => `${err.code}: ${err.message}`,
    )
    expect(outcome).toMatch(/^TIMEOUT: /)
    expect(outcome).not.toMatch(/ping/)
    expect(await db.get('waits')).toBe('v')
  })

  it('gives up on a paused node: the write in flight fails UNCERTAIN long before its own timeout, and the client reconnects after SIGCONT', async () => {
    await db.put('before', '1')
    await node.kill('SIGSTOP')
    // timeoutMs 60 s and the test's own limit of 30 s: only the liveness check can end this write.
    const outcome = await db.put('during', '2').then(
      () => 'ACKED',
      (err: { code?: string; message: string }) => `${err.code}: ${err.message}`,
    )
    expect(outcome).toMatch(/^UNCERTAIN: .*answered nothing, not even a ping sent \d+ ms ago/)
    await node.kill('SIGCONT')
    await db.put('after', '3')
    expect(await db.get('before')).toBe('1')
    expect(await db.get('after')).toBe('3')
  }, 30_000)
})

describe('SDK liveness check against a node that holds back its socket', () => {
  const dir = tempDir()
  let node: NodeProcess
  let db: TandemClient

  beforeAll(async () => {
    // 16 requests in flight per connection: the node stops reading the
    // socket beyond that, so the client's own pings cannot get through.
    node = await startNode(dir.path, ['--max-in-flight', '16'])
    db = await TandemClient.connect({ servers: [node.address], livenessTimeoutMs: 1000, timeoutMs: 60_000 })
  })
  afterAll(async () => {
    await db?.close()
    await node?.stop()
    dir.remove()
  })

  it('keeps it while it owes replies: every w:1 write ends in the server TIMEOUT, none UNCERTAIN', async () => {
    // 40 writes on one connection, each held 2.5 s by the node: 16 in flight,
    // the rest unread in the paused socket, then 16 more, and so on.
    const outcomes = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        db.put(`held-${i}`, 'v', { w: 1, timeoutMs: 2500 }).then(
          () => 'ACKED',
          (err: { code?: string }) => err.code ?? 'ERROR',
        ),
      ),
    )
    expect(outcomes).toEqual(Array.from({ length: 40 }, () => 'TIMEOUT'))
  }, 30_000)
})

/** The liveness client script, run in a process of its own so that it can be paused. */
class PausableClient {
  private readonly proc: ChildProcessWithoutNullStreams
  private readonly lines: string[] = []

  constructor(address: string) {
    this.proc = spawn(process.execPath, [join(import.meta.dirname, 'liveness-client.mjs'), address])
    createInterface({ input: this.proc.stdout }).on('line', (line) => this.lines.push(line))
  }

  async ready(): Promise<void> {
    await waitFor(() => this.lines.includes('ready'), { what: 'the client process to connect' })
  }

  /** Sends a put and resolves once it is on the wire; returns the call's number. */
  async put(key: string, value: string, w?: { w: number; timeoutMs: number }): Promise<number> {
    const id = this.lines.filter((l) => l.startsWith('sent ')).length + 1
    this.proc.stdin.write(`put ${key} ${value}${w ? ` ${w.w} ${w.timeoutMs}` : ''}\n`)
    await waitFor(() => this.lines.includes(`sent ${id}`), { what: `call ${id} to be sent` })
    return id
  }

  /** The call's outcome line once it has settled: "OK" or "CODE: message". */
  outcome(id: number): string | undefined {
    return this.lines.find((l) => l.startsWith(`outcome ${id} `))?.slice(`outcome ${id} `.length)
  }

  signal(signal: NodeJS.Signals): void {
    this.proc.kill(signal)
  }

  stop(): void {
    this.proc.kill('SIGCONT')
    this.proc.kill('SIGKILL')
  }
}

describe('SDK liveness check in a client process that is itself paused', () => {
  const dir = tempDir()
  let node: NodeProcess
  let client: PausableClient

  beforeAll(async () => {
    node = await startNode(dir.path)
    client = new PausableClient(node.address)
    await client.ready()
  })
  afterAll(async () => {
    client?.stop()
    await node?.stop()
    dir.remove()
  })

  it('keeps a node whose reply arrived while the client was paused: the reply in the socket counts', async () => {
    // The node answers TIMEOUT 3 s after it took the write; the client is
    // stopped from when the node has the write until that reply has been
    // sent and for longer than its liveness timeout (1 s), so when it
    // resumes its liveness check runs before the socket is read and finds
    // more than 1 s of silence. Its own timer for the call (3 s + 1 s) has
    // not run out yet. Each step waits for its condition, not for a fixed
    // time: on a loaded machine the write can reach the node late, the
    // reply come late, or a fixed pause end late, past that timer.
    const timeouts = () => metricSum(node, 'tandem_errors_total', 'code="TIMEOUT"')
    const [timeoutsBefore, seqBefore] = [await timeouts(), (await statusOf(node)).seq]
    const id = await client.put('stalled', 'v', { w: 1, timeoutMs: 3000 })
    await waitFor(async () => (await statusOf(node)).seq > seqBefore, { what: 'the node to take the write' })
    client.signal('SIGSTOP')
    const pausedAt = Date.now()
    await waitFor(async () => Date.now() - pausedAt > 1100 && (await timeouts()) > timeoutsBefore, {
      what: 'the node to send its TIMEOUT reply to the paused client',
      intervalMs: 10,
    }).finally(() => client.signal('SIGCONT'))
    const outcome = await waitFor(() => client.outcome(id), { what: 'the call to settle' })
    expect(outcome).toMatch(/^TIMEOUT: write \d+ is committed on this node but reached 0 of 1 replicas/)
  })

  it('gives up on a paused node even when the client runs only briefly between long pauses', async () => {
    await node.kill('SIGSTOP')
    try {
      const id = await client.put('busy-client', 'x')
      // The client runs ~20 ms in every 600: each of its liveness checks runs late.
      const deadline = Date.now() + 20_000
      while (client.outcome(id) === undefined && Date.now() < deadline) {
        client.signal('SIGSTOP')
        await new Promise((resolve) => setTimeout(resolve, 580)) // the fault itself
        client.signal('SIGCONT')
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      expect(client.outcome(id)).toMatch(/^UNCERTAIN: .*answered nothing, not even a ping/)
    } finally {
      client.signal('SIGCONT')
      await node.kill('SIGCONT')
    }
  }, 30_000)
})
