import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { TandemClient, type Watch } from '@tandem/client'
import { newHistogram, summarize } from '../load/histogram.js'
import type { ReplicaLag } from './replication-lag.js'

/**
 * Replication lag sampled continuously (tandem only): a marker is put every
 * `intervalMs` on a writer (in turn, when there are several) without
 * waiting for the markers before it, and every reader is followed by a
 * watch on the markers' prefix. A sample is the time from the writer's
 * acknowledgement of a marker to its event on another node's watch, both
 * seen by this process; an event that comes before the acknowledgement
 * counts as no lag; one not seen within `giveUpMs` counts as missed and as
 * a sample of its age then (a lower bound). The writer and the readers never wait for one
 * another, so the probe takes 1000 / intervalMs markers a second whatever
 * the lag, and a stall of a node shows in every marker it holds up, as it
 * does to an application, instead of in the one sample a put-then-poll
 * probe takes across it.
 *
 * A watch event is sent by the reader once it has committed the marker
 * (watch.ts), when a read there sees it too; the probe's figure is that
 * moment plus the event's trip to this process (a loopback send).
 */

interface Reader {
  address: string
  client: TandemClient
  watch: Watch
  /** Markers the writer acknowledged that this reader has not shown yet: marker -> when acknowledged. */
  waiting: Map<number, number>
  /** Markers this reader showed before their acknowledgement came. */
  early: Set<number>
  hist: ReturnType<typeof newHistogram>
  missed: number
  following: Promise<void>
}

export class MarkerLagProbe {
  /** Names this probe's markers apart from any other run's on the same nodes. */
  private readonly prefix = `bench-lag:${randomBytes(4).toString('hex')}:`
  private stopped = false
  private running: Promise<ReplicaLag[]> | null = null
  private opened: Promise<{ writers: TandemClient[]; readers: Reader[] }> | null = null
  private sent = 0
  private failed = 0
  private inFlight = 0
  /** The markers' times, with traceDir (see lag-anatomy.ts). */
  private readonly trace: string[] | null

  /**
   * @param writers addresses the markers are put on, in turn
   * @param readers addresses whose watches time them (a reader that is the
   *   marker's writer does not time it)
   * @param traceDir where to write each marker's acknowledgement and events
   *   (probe-PID.txt, as the run ends) for the peer-lag anatomy
   */
  constructor(
    private readonly writers: string[],
    private readonly readers: string[],
    private readonly authToken: string | undefined,
    private readonly intervalMs = 1,
    private readonly giveUpMs = 5000,
    private readonly traceDir?: string,
  ) {
    this.trace = traceDir === undefined ? null : []
  }

  /** Connects the writers and starts the readers' watches (start() does it too if this was not called). */
  async open(): Promise<void> {
    await this.connect()
  }

  private connect(): Promise<{ writers: TandemClient[]; readers: Reader[] }> {
    this.opened ??= (async () => {
      const connect = (address: string) =>
        TandemClient.connect({ servers: [address], direct: true, authToken: this.authToken, timeoutMs: this.giveUpMs })
      const writers = await Promise.all(this.writers.map(connect))
      const readers = await Promise.all(
        this.readers.map(async (address): Promise<Reader> => {
          const client = await connect(address)
          const watch = client.watch({ prefix: this.prefix })
          const reader: Reader = {
            address,
            client,
            watch,
            waiting: new Map(),
            early: new Set(),
            hist: newHistogram(),
            missed: 0,
            following: Promise.resolve(),
          }
          reader.following = this.follow(reader)
          return reader
        }),
      )
      // Markers are put only once every watch has begun: one begins after what its node holds.
      const deadline = performance.now() + 30_000
      while (readers.some((r) => r.watch.seq === null)) {
        if (performance.now() > deadline) throw new Error('the lag probe’s watches did not begin within 30 s')
        await sleep(5)
      }
      return { writers, readers }
    })()
    return this.opened
  }

  private async follow(reader: Reader): Promise<void> {
    try {
      for await (const event of reader.watch) {
        const at = performance.now()
        const n = Number(event.key.slice(this.prefix.length))
        this.trace?.push(`E ${reader.address} ${n} ${wallMs(at)}`)
        // The reader's own markers (it is also a writer) are not lag.
        if (this.writers[n % this.writers.length] === reader.address) continue
        const acked = reader.waiting.get(n)
        if (acked === undefined) reader.early.add(n)
        else {
          reader.waiting.delete(n)
          record(reader, at - acked)
        }
      }
    } catch {
      // The watch failed (its node went away): what it did not show counts as missed.
    }
  }

  start(): void {
    this.running = this.run()
  }

  /** Samples taken so far, per reader (empty before open). */
  async taken(): Promise<number[]> {
    const { readers } = await this.connect()
    return readers.map((r) => r.hist.totalCount)
  }

  async stop(): Promise<ReplicaLag[]> {
    this.stopped = true
    return this.running ?? []
  }

  private put(writers: TandemClient[], readers: Reader[], n: number): void {
    const w = n % writers.length
    this.inFlight++
    writers[w].put(`${this.prefix}${n}`, MARKER).then(
      () => {
        const acked = performance.now()
        this.trace?.push(`P ${this.writers[w]} ${n} ${wallMs(acked)}`)
        this.inFlight--
        for (const r of readers) {
          if (r.address === this.writers[w]) continue
          if (r.early.delete(n)) record(r, 0)
          else r.waiting.set(n, acked)
        }
      },
      () => {
        this.inFlight--
        this.failed++
        for (const r of readers) r.early.delete(n)
      },
    )
  }

  private async run(): Promise<ReplicaLag[]> {
    const { writers, readers } = await this.connect()
    try {
      const started = performance.now()
      let swept = started
      while (!this.stopped) {
        // Open loop: every marker due by now is put, so a late timer makes a burst, not a gap.
        const now = performance.now()
        const due = Math.floor((now - started) / this.intervalMs) + 1
        while (this.sent < due) this.put(writers, readers, this.sent++)
        if (now - swept >= 100) {
          giveUp(readers, now - this.giveUpMs, now)
          swept = now
        }
        await sleep(this.intervalMs)
      }
      // The last markers: wait for their acknowledgements and events, within the give-up time.
      const deadline = performance.now() + this.giveUpMs
      while ((this.inFlight > 0 || readers.some((r) => r.waiting.size > 0)) && performance.now() < deadline) {
        await sleep(5)
      }
      giveUp(readers, Number.POSITIVE_INFINITY, performance.now())
      if (this.trace !== null && this.traceDir !== undefined) {
        writeFileSync(join(this.traceDir, `probe-${process.pid}.txt`), `${this.trace.join('\n')}\n`)
      }
    } finally {
      for (const r of readers) r.watch.close()
      await Promise.all([...writers, ...readers.map((r) => r.client)].map((c) => c.close()))
    }
    return readers.map((r) => ({
      replica: r.address,
      samples: r.hist.totalCount,
      missed: r.missed,
      lagMs: r.hist.totalCount === 0 ? null : summarize(r.hist),
      method:
        `${this.sent} markers, one every ${this.intervalMs} ms on ${this.writers.length === 1 ? 'the writer' : 'the writers in turn'}, ` +
        `from acknowledgement to watch event${this.failed > 0 ? ` (${this.failed} puts failed)` : ''}`,
    }))
  }
}

const MARKER = Buffer.from('1')

/** A performance.now() time as wall-clock ms (the servers' key trace uses the same clock). */
const wallMs = (t: number) => (performance.timeOrigin + t).toFixed(3)

/** A sample in microseconds (the histogram's unit; at least 1). */
function record(reader: Reader, ms: number): void {
  reader.hist.recordValue(Math.max(1, Math.round(ms * 1000)))
}

/**
 * Markers acknowledged before `before` and not shown yet are missed. Each
 * is still a sample, of its age at `now` (a lower bound of its lag): left
 * out, the slowest markers would vanish from the percentiles, and a p99
 * would describe only the markers that arrived.
 */
function giveUp(readers: Reader[], before: number, now: number): void {
  for (const r of readers) {
    for (const [n, acked] of r.waiting) {
      if (acked >= before) continue
      r.waiting.delete(n)
      r.missed++
      record(r, now - acked)
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
