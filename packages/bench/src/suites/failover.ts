import { randomFillSync } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { TandemClient } from '@tandem/client'
import { keyName } from '../keys.js'
import { newHistogram, summarize } from '../load/histogram.js'
import { cpuSeconds, peakRssBytes } from '../measures/proc.js'
import type { BenchOptions } from '../options.js'
import type { ProgressLine } from '../report/progress.js'
import type {
  ColdRestartResult,
  FailoverResult,
  FailoverRound,
  ServerMeasure,
  TargetCheck,
  TargetResult,
} from '../report/result.js'
import { scenarioResult } from '../report/scenario-result.js'
import { NodeProcess } from '../topology/node-process.js'
import { type FullStatus, statusOf } from '../topology/node-state.js'
import { freePort } from '../topology/server-process.js'
import type { Topology } from '../topology/topology.js'
import { holdsWithin } from '../wait.js'
import { dirBytes, loadKeys, round, sampleSummary, sleep } from './common.js'
import type { SuiteOutput } from './suite.js'

/**
 * Issue 4's figures. A 3-member `--failover auto` group on fixed ports and
 * one SDK client (seeded with all three) writing continuously from
 * `--pipeline` loops. Each round: find the master, SIGKILL it, time until
 * the first write *sent after the kill* is acknowledged (so it can only be
 * the new master's), restart the killed node with the same data dir and
 * port, and wait until all three are healthy again (one master, two
 * replicas streaming and caught up, every member link connected). Then a
 * cold restart: a lone master holding --keys keys is killed and started
 * again; kill to the first acknowledged write.
 */

const GIVE_UP_MS = 30_000

interface Member {
  address: string
  node: NodeProcess
}

/** One SDK client writing continuously; remembers when writes sent after a given moment are first acknowledged. */
class Writer {
  ops = 0
  errors = 0
  firstError: string | undefined
  readonly histogram = newHistogram()
  private stopping = false
  private loops: Promise<void>[] = []
  private watch: { after: number; resolve: (at: number) => void } | null = null
  private lastAck = 0

  constructor(
    private readonly client: TandemClient,
    private readonly loopCount: number,
    private readonly valueSize: number,
  ) {}

  start(): void {
    for (let i = 0; i < this.loopCount; i++) this.loops.push(this.loop(i))
  }

  /** Resolves with the moment the first write sent at or after `after` is acknowledged. */
  firstAckAfter(after: number): Promise<number> {
    return new Promise((resolve) => (this.watch = { after, resolve }))
  }

  /** Resolves once some write has been acknowledged after `after` (the writer is steady). */
  async ackedSince(after: number, timeoutMs: number): Promise<boolean> {
    return holdsWithin(async () => this.lastAck > after, timeoutMs, 5)
  }

  async stop(): Promise<void> {
    this.stopping = true
    await Promise.all(this.loops)
  }

  private async loop(id: number): Promise<void> {
    const value = randomFillSync(Buffer.alloc(this.valueSize))
    for (let n = 0; !this.stopping; n++) {
      const sent = performance.now()
      try {
        await this.client.put(`bench-failover:${id}:${n % 10_000}`, value)
        const at = performance.now()
        this.ops++
        this.lastAck = at
        this.histogram.recordValue(Math.max(1, Math.round((at - sent) * 1000)))
        if (this.watch && sent >= this.watch.after) {
          this.watch.resolve(at)
          this.watch = null
        }
      } catch (err) {
        // UNCERTAIN (the connection died with the write in flight), TIMEOUT,
        // NOMASTER past the client's own retries: expected during a fail-over.
        this.errors++
        this.firstError ??= `${(err as { code?: string }).code ?? 'Error'}: ${(err as Error).message}`
        await sleep(1)
      }
    }
  }
}

/** A member's status, or null when it cannot answer within a second. */
function statusOrNull(address: string, authToken?: string): Promise<FullStatus | null> {
  return statusOf(address, { timeoutMs: 1000, authToken }).catch(() => null)
}

/** All members up, exactly one writable master, the others replicas streaming from it and caught up, all links up. */
async function healthy(members: Member[], authToken?: string): Promise<{ master: string } | null> {
  const statuses = await Promise.all(members.map((m) => statusOrNull(m.address, authToken)))
  if (statuses.some((s) => s === null)) return null
  const all = statuses as FullStatus[]
  const masters = all.filter((s) => s.role === 'master' && !s.readOnly)
  if (masters.length !== 1) return null
  const master = masters[0]
  const masterAddr = members[all.indexOf(master)].address
  for (const s of all) {
    if (s.failover && !s.failover.members.every((m) => m.connected)) return null
    if (s === master) continue
    if (s.role !== 'replica' || s.link?.state !== 'streaming' || s.upstream !== masterAddr) return null
  }
  // Caught up: each replica holds what the master held a moment before.
  const seq = master.seq
  const again = await Promise.all(
    members.filter((m) => m.address !== masterAddr).map((m) => statusOrNull(m.address, authToken)),
  )
  if (again.some((s) => s === null || s.seq < seq)) return null
  return { master: masterAddr }
}

export async function failoverSuite(
  o: BenchOptions,
  progress: ProgressLine,
  live: Set<Topology>,
): Promise<SuiteOutput> {
  const root = await mkdtemp(join(tmpdir(), 'tandem-bench-failover-'))
  const members: Member[] = []
  const topology: Topology = {
    target: 'tandem',
    master: '',
    replicas: [],
    processes: [],
    root,
    waitForReplicas: async () => true,
    close: async () => {
      await Promise.all(members.map((m) => m.node.stop()))
      await rm(root, { recursive: true, force: true })
    },
  }
  live.add(topology)
  let writer: Writer | undefined
  let client: TandemClient | undefined
  try {
    const ports = [await freePort(), await freePort(), await freePort()]
    const addresses = ports.map((p) => `127.0.0.1:${p}`)
    const extra = ['--cluster', addresses.join(','), '--failover', 'auto']
    if (o.failoverTimeout !== undefined) extra.push('--failover-timeout', String(o.failoverTimeout))
    if (o.heartbeatInterval !== undefined) extra.push('--heartbeat-interval', String(o.heartbeatInterval))
    const auth = o.authToken ? ['--auth-token', o.authToken] : []
    await Promise.all(
      ports.map(async (port, i) => {
        const flags = ['--sync', o.sync, ...auth, ...extra]
        const node = new NodeProcess(join(root, `member-${i + 1}`), flags, {}, `member ${i + 1}`)
        node.port = port
        members[i] = { address: addresses[i], node }
        await node.start(120_000)
      }),
    )
    progress.note(`failover: group ${addresses.join(', ')} (--failover auto); waiting for a master`)
    if (!(await holdsWithin(async () => (await healthy(members, o.authToken)) !== null, 60_000, 100)))
      throw new Error('the fail-over group did not elect a master within 60 s')

    client = await TandemClient.connect({ servers: addresses, authToken: o.authToken, timeoutMs: 10_000 })
    const loops = o.pipeline[0]
    writer = new Writer(client, loops, o.valueSize)
    const cpu0 = process.cpuUsage()
    const started = performance.now()
    writer.start()

    const rounds: FailoverRound[] = []
    for (let r = 1; r <= o.rounds; r++) {
      let master: string | undefined
      await holdsWithin(async () => (master = (await healthy(members, o.authToken))?.master) !== undefined, 60_000, 25)
      if (!master) throw new Error(`round ${r}: the group was not healthy within 60 s`)
      const victim = members.find((m) => m.address === master)!
      // The writer must be writing to this master right now.
      if (!(await writer.ackedSince(performance.now(), 10_000)))
        throw new Error(`round ${r}: the writer made no progress for 10 s before the kill`)
      const errorsBefore = writer.errors
      let electedAt: number | undefined
      let newMaster: string | null = null
      const unwatch = members
        .filter((m) => m !== victim)
        .map((m) =>
          m.node.watch((line, at) => {
            if (electedAt === undefined && line.msg === 'became master') {
              electedAt = at
              newMaster = m.address
            }
          }),
        )
      const killedAt = performance.now()
      const acked = writer.firstAckAfter(killedAt)
      await victim.node.kill()
      const ackAt = await Promise.race([acked, sleep(GIVE_UP_MS).then(() => undefined)])
      for (const u of unwatch) u()
      const downtimeMs = ackAt === undefined ? null : round(ackAt - killedAt)
      const electionMs = electedAt === undefined ? null : round(electedAt - killedAt)

      // Restart the killed node where it was; it must rejoin as a replica.
      const restartAt = performance.now()
      await victim.node.start(120_000)
      const ok = await holdsWithin(async () => (await healthy(members, o.authToken)) !== null, 60_000, 25)
      const rejoinMs = ok ? round(performance.now() - restartAt) : null
      const back = await statusOrNull(victim.address, o.authToken)
      const round_: FailoverRound = {
        round: r,
        killed: victim.address,
        newMaster,
        downtimeMs,
        electionMs,
        failedWrites: writer.errors - errorsBefore,
        rejoinMs,
        rejoinedAs: back?.role ?? null,
      }
      rounds.push(round_)
      progress.note(
        `failover round ${r}/${o.rounds}: killed ${victim.address}; ` +
          `became master ${electionMs ?? '-'} ms, first ack ${downtimeMs ?? 'none'} ms on ${newMaster ?? '?'}; ` +
          `${round_.failedWrites} failed writes; rejoined as ${round_.rejoinedAs} in ${rejoinMs ?? '-'} ms`,
      )
      if (!ok) throw new Error(`round ${r}: the group did not become healthy within 60 s of the restart`)
    }
    await writer.stop()
    const elapsedS = (performance.now() - started) / 1000
    const cpu = process.cpuUsage(cpu0)
    const harnessCores = (cpu.user + cpu.system) / 1e6 / elapsedS
    const servers: ServerMeasure[] = await Promise.all(
      members.map(async (m) => ({
        role: m.node.role,
        pid: m.node.pid ?? null,
        peakRssMB: m.node.pid ? round(((await peakRssBytes(m.node.pid)) ?? 0) / 2 ** 20) : null,
        cpuCores: null,
      })),
    )
    const writerResult = writer
    writer = undefined
    await client.close()
    client = undefined
    await topology.close()
    live.delete(topology)

    const coldRestart = o.noColdRestart ? null : await coldRestartRun(o, progress, live)

    const downtimes = rounds.map((x) => x.downtimeMs).filter((x): x is number => x !== null)
    const failover: FailoverResult = {
      members: addresses,
      failoverTimeoutMs: o.failoverTimeout ?? null,
      heartbeatIntervalMs: o.heartbeatInterval ?? null,
      writerLoops: loops,
      rounds,
      downtimeMs: sampleSummary(downtimes),
      electionMs: sampleSummary(rounds.map((x) => x.electionMs).filter((x): x is number => x !== null)),
      rejoinMs: sampleSummary(rounds.map((x) => x.rejoinMs).filter((x): x is number => x !== null)),
      unrecovered: rounds.length - downtimes.length,
      coldRestart,
    }
    const t: TargetResult = {
      target: 'tandem',
      master: addresses.join(','),
      replicas: [],
      version: null,
      // The scenario's load is the writer, over all the rounds (kills included).
      throughput: Math.round(writerResult.ops / elapsedS),
      ops: writerResult.ops,
      errors: writerResult.errors,
      firstError: writerResult.firstError ?? null,
      durationS: round(elapsedS, 3),
      latencyMs: summarize(writerResult.histogram),
      harness: { cpuCores: round(harnessCores, 2), threads: 1, cpuBound: harnessCores >= 0.85 },
      servers,
      commit: null,
      replicationLag: null,
      failover,
      fullSync: null,
    }
    const scenario = scenarioResult(o, {
      name: `failover: ${o.rounds} master kills, 1 client x ${loops} writers`,
      workload: 'failover',
      clients: 1,
      pipeline: loops,
      w: null,
      targets: { tandem: t },
      replicas: 2,
    })
    const timeout = o.failoverTimeout === undefined ? 'default timeouts' : `--failover-timeout ${o.failoverTimeout}`
    const checks: TargetCheck[] = [
      {
        id: 'failover.downtime.p50',
        name: `fail-over downtime median, kill to first acknowledged write (${rounds.length} kills, ${timeout})`,
        measured: failover.downtimeMs?.p50 ?? null,
        unit: 'ms',
        target: '< 1500',
        met: failover.downtimeMs ? failover.downtimeMs.p50 < 1500 && failover.unrecovered === 0 : false,
      },
      {
        id: 'failover.downtime.p99',
        name: `fail-over downtime p99 (${rounds.length} kills, ${timeout})`,
        measured: failover.downtimeMs?.p99 ?? null,
        unit: 'ms',
        target: '< 3000',
        met: failover.downtimeMs ? failover.downtimeMs.p99 < 3000 && failover.unrecovered === 0 : false,
      },
    ]
    if (coldRestart)
      checks.push({
        id: 'failover.coldRestart',
        name: `cold restart of a master holding ${coldRestart.keys} keys, kill to first acknowledged write`,
        measured: coldRestart.killToFirstAckMs,
        unit: 'ms',
        target: '-',
        met: null,
      })
    return { scenarios: [scenario], checks }
  } finally {
    await writer?.stop()
    await client?.close()
    if (live.has(topology)) {
      live.delete(topology)
      await topology.close()
    }
  }
}

/** A lone master holding --keys keys: SIGKILL, start again on the same port and data dir, first acknowledged write. */
async function coldRestartRun(
  o: BenchOptions,
  progress: ProgressLine,
  live: Set<Topology>,
): Promise<ColdRestartResult> {
  const root = await mkdtemp(join(tmpdir(), 'tandem-bench-restart-'))
  let node: NodeProcess | undefined
  const topology: Topology = {
    target: 'tandem',
    master: '',
    replicas: [],
    processes: [],
    root,
    waitForReplicas: async () => true,
    close: async () => {
      await node?.stop()
      await rm(root, { recursive: true, force: true })
    },
  }
  live.add(topology)
  try {
    const dataDir = join(root, 'master')
    const auth = o.authToken ? ['--auth-token', o.authToken] : []
    node = new NodeProcess(dataDir, ['--sync', o.sync, ...auth], {}, 'master')
    await node.start(120_000)
    const address = node.address
    progress.note(`cold restart: loading ${o.keys.toLocaleString('en-US')} keys into ${address}`)
    const load = await loadKeys(address, { ...o, connections: 4 }, (n) =>
      progress.note(`  ${n.toLocaleString('en-US')} keys loaded`),
    )
    // Keep writing until the kill, as a live master would be.
    const writerClient = await TandemClient.connect({ servers: [address], authToken: o.authToken })
    const value = randomFillSync(Buffer.alloc(o.valueSize))
    let writing = true
    const background = (async () => {
      for (let n = 0; writing; n++) {
        try {
          await writerClient.put(keyName(n % o.keys), value)
        } catch {
          break
        }
      }
    })()
    await sleep(1000)
    const dataDirBytes = await dirBytes(dataDir)
    const killedAt = performance.now()
    await node.kill()
    writing = false
    const spawnedAt = performance.now()
    await node.start(120_000)
    const listeningAt = performance.now()
    await background
    await writerClient.close()
    // First acknowledged write: a fresh client, retried until one is acknowledged.
    let ackAt = 0
    const ok = await holdsWithin(
      async () => {
        const c = await TandemClient.connect({
          servers: [address],
          authToken: o.authToken,
          connectTimeoutMs: 1000,
          timeoutMs: 5000,
        })
        try {
          await c.put('bench-restart:first', value)
          ackAt = performance.now()
          return true
        } finally {
          await c.close()
        }
      },
      GIVE_UP_MS,
      1,
    )
    if (!ok) throw new Error(`the restarted master took no write within ${GIVE_UP_MS} ms`)
    const result: ColdRestartResult = {
      keys: o.keys,
      valueSize: o.valueSize,
      dataDirMB: dataDirBytes === null ? null : round(dataDirBytes / 2 ** 20),
      killToListeningMs: round(listeningAt - killedAt),
      killToFirstAckMs: round(ackAt - killedAt),
      spawnToListeningMs: round(listeningAt - spawnedAt),
      load: { batch: load.batch, connections: load.connections, ms: load.ms, keysPerSec: load.keysPerSec },
    }
    const cpu = node.pid ? await cpuSeconds(node.pid) : undefined
    progress.note(
      `cold restart: ${result.dataDirMB} MB data dir; listening ${result.killToListeningMs} ms, ` +
        `first ack ${result.killToFirstAckMs} ms after the kill` +
        (cpu === undefined ? '' : ` (restarted process used ${cpu.toFixed(2)} CPU s)`),
    )
    return result
  } finally {
    live.delete(topology)
    await topology.close()
  }
}
