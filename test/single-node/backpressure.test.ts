import { setImmediate as nextTurn } from 'node:timers/promises'
import { metricSum } from '@tandem/bench/fixtures'
import { TandemClient } from '@tandem/client'
import { afterEach, describe, expect, it } from 'vitest'
import { type NodeProcess, startNode } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'
import { RawClient } from './raw-client.js'

const KiB = 1024
const MiB = 1024 * KiB

describe('backpressure', () => {
  const cleanups: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })

  async function setup(args: string[]): Promise<{ node: NodeProcess; db: TandemClient }> {
    const dir = tempDir()
    cleanups.push(() => dir.remove())
    const node = await startNode(dir.path, args)
    cleanups.push(() => node.stop())
    const db = await TandemClient.connect({ servers: [node.address] })
    cleanups.push(() => db.close())
    return { node, db }
  }

  /**
   * Rule: a client that sends faster than it reads is slowed by
   * backpressure, not buffered without limit. The flood asks for 64 KiB
   * replies with ~20-byte requests, so an unbounded server would try to
   * hold gigabytes; a bounded one stops taking requests once
   * --max-in-flight are unanswered or --max-reply-buffer-bytes of replies
   * wait to be sent, and TCP pushes the rest back onto the client. What it
   * holds is counted in requests taken (each one a 64 KiB reply), checked
   * after every burst so that an unbounded server fails at once. This must
   * hold however the requests are framed, so it runs with small frames and
   * with frames each holding far more requests than the in-flight cap.
   */
  it.each([100, 1000])(
    'stops reading a client that never reads its replies (%i requests a frame), takes a bounded number of its requests, serves others',
    async (perFrame) => {
      const maxInFlight = 64
      const maxReplyBuffer = 1 * MiB
      const valueBytes = 64 * KiB
      const { node, db } = await setup([
        '--max-in-flight',
        String(maxInFlight),
        '--max-reply-buffer-bytes',
        String(maxReplyBuffer),
      ])
      await db.put('big', 'v'.repeat(valueBytes))
      const gets = () => metricSum(node, 'tandem_requests_total', 'op="get"')
      const before = await gets()

      // Replies can pile up in four places: the in-flight requests, the
      // server's reply buffer, and the two kernel socket buffers between the
      // server and the paused client (at most the sysctl maxima). A server
      // that respects its limits takes no more gets than fill all four.
      const kernelBytes = (await sysctlMax('net/ipv4/tcp_wmem')) + (await sysctlMax('net/ipv4/tcp_rmem'))
      const maxGetsTaken = maxInFlight + Math.ceil((maxReplyBuffer + kernelBytes) / valueBytes) + 1

      const flood = await RawClient.open(node.address)
      cleanups.push(() => flood.terminate())
      flood.tcp.pause()

      const frame = (first: number) =>
        Array.from({ length: perFrame }, (_, i) => ({ id: first + i, op: 'get', key: 'big' }))
      let sent = 0
      // Send until 16 MiB of requests sit unsent in the client: the server
      // and both kernels refuse to take more. Each step checks the server.
      while (flood.ws.bufferedAmount < 16 * MiB) {
        for (let i = 0; i < 5000 / perFrame; i++) {
          flood.send(frame(sent))
          sent += perFrame
        }
        await nextTurn()
        const takenSoFar = (await gets()) - before
        expect(takenSoFar, `took ${takenSoFar} of ${sent} gets; at most ${maxGetsTaken} fit`).toBeLessThanOrEqual(
          maxGetsTaken,
        )
      }

      // Another client is served while the flood is stuck.
      for (let i = 0; i < 20; i++) {
        await db.put(`other:${i}`, String(i))
        expect(await db.get(`other:${i}`)).toBe(String(i))
      }
      const taken = (await gets()) - before - 20
      // It took requests until one of its limits was reached: the in-flight
      // cap, or (gets answered at once, as from the read cache) the reply
      // buffer, each reply a little over the value; what the kernel buffers
      // took on top varies with their autotuning.
      expect(taken).toBeGreaterThanOrEqual(Math.min(maxInFlight, Math.floor(maxReplyBuffer / (valueBytes + 64))))
      expect(taken, `took ${taken} of ${sent} gets; at most ${maxGetsTaken} fit`).toBeLessThanOrEqual(maxGetsTaken)
      // The client's own send buffer is what backed up.
      expect(flood.ws.bufferedAmount).toBeGreaterThan(16 * MiB)

      // Once the flood client goes away, its connection and buffers go too.
      flood.terminate()
      await waitFor(async () => (await metricSum(node, 'tandem_connections')) === 1, {
        what: 'the flood connection to be dropped',
      })
      expect(await db.get('other:19')).toBe('19')
    },
  )

  /**
   * Rule: --max-in-flight bounds the requests one connection has unanswered,
   * however many it pipelines in one frame, and none is dropped: the
   * client is slowed, every request is answered once. With one writing
   * connection, no group commit can then hold more than that many writes.
   */
  it('answers every pipelined write while never having more than --max-in-flight of them in the committer', async () => {
    const maxInFlight = 16
    const { node, db } = await setup(['--max-in-flight', String(maxInFlight)])
    const raw = await RawClient.open(node.address)
    cleanups.push(() => raw.terminate())
    const total = 10_000
    const perFrame = 500
    for (let first = 0; first < total; first += perFrame) {
      raw.send(
        Array.from({ length: perFrame }, (_, i) => ({ id: first + i, op: 'put', key: `p:${first + i}`, value: 'v' })),
      )
    }
    await raw.until(() => raw.replies.size === total, `${total} replies`, 60_000)
    const seqs = new Set<number>()
    for (let id = 0; id < total; id++) {
      const reply = raw.replies.get(id)
      expect(reply?.error, `put ${id}`).toBeUndefined()
      seqs.add((reply!.result as { seq: number }).seq)
    }
    expect(seqs.size).toBe(total)
    const status = await db.status()
    expect(status.seq).toBe(total)
    const commit = status.commit as { largestGroup: number }
    expect(commit.largestGroup).toBeLessThanOrEqual(maxInFlight)
    expect(await db.get(`p:${total - 1}`)).toBe('v')
  })
})

/** The maximum of a `min default max` sysctl triple, in bytes. */
async function sysctlMax(name: string): Promise<number> {
  const { readFile } = await import('node:fs/promises')
  const text = await readFile(`/proc/sys/${name}`, 'utf8')
  return Number(text.trim().split(/\s+/).pop())
}
