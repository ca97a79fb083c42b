import { Worker } from 'node:worker_threads'
import { ClientGroup, type GroupSnapshot, type GroupSpec } from './client-group.js'
import { decodeHistogram, type Histogram, newHistogram } from './histogram.js'
import type { FromWorker, ToWorker, WireSnapshot } from './worker.js'

/**
 * Runs one scenario's clients on the main thread or spread over worker
 * threads, behind one interface, and merges what they measured.
 */

interface LoadSpec extends Omit<GroupSpec, 'requests'> {
  workers: number
  warmupS: number
  /** Awaited after the warm-up's seconds, before the window opens: a warm-up that lasts until a condition holds. */
  warmedUp?: () => Promise<void>
  durationS: number
  requests?: number
}

export interface Progress {
  ops: number
  errors: number
  histogram: Histogram
  elapsedS: number
}

/** Requests completed so far in the measured window, every thread's added up. */
export interface LoadCount {
  ops: number
  errors: number
}

interface LoadResult extends GroupSnapshot {
  elapsedS: number
  /** CPU the harness process (every thread) used while measuring, in cores. */
  harnessCores: number
  /** Threads that drive clients (1 on the main thread, else the worker count). */
  harnessThreads: number
}

interface GroupHandle {
  ready: Promise<void>
  start(): void
  /** Resolves when this group's request quota is used up. */
  measure(): Promise<void>
  latest(): GroupSnapshot
  /** The counts now (a worker answers a message: the 500 ms ticks are too coarse to cut windows with). */
  count(): Promise<LoadCount>
  stop(): Promise<GroupSnapshot>
  abort(): Promise<void>
}

function inProcess(spec: GroupSpec): GroupHandle {
  const group = new ClientGroup(spec)
  return {
    ready: group.open(),
    start: () => group.start(),
    measure: () => group.measure(),
    latest: () => group.snapshot(),
    count: async () => {
      const { ops, errors } = group.snapshot()
      return { ops, errors }
    },
    stop: async () => {
      const s = await group.stop()
      await group.close()
      return s
    },
    abort: () => group.close(),
  }
}

function inWorker(spec: GroupSpec): GroupHandle {
  const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: spec })
  const send = (m: ToWorker) => worker.postMessage(m)
  let latest: GroupSnapshot = { ops: 0, errors: 0, histogram: newHistogram() }
  let onQuota: () => void = () => {}
  let onDone: (s: GroupSnapshot) => void = () => {}
  let onFail: (err: Error) => void = () => {}
  // Answers come back in the order the questions went.
  const counting: ((c: LoadCount) => void)[] = []
  const unwire = (w: WireSnapshot): GroupSnapshot => ({ ...w, histogram: decodeHistogram(w.histogram) })
  const ready = new Promise<void>((resolve, reject) => {
    onFail = reject
    worker.on('message', (m: FromWorker) => {
      if (m.type === 'ready') resolve()
      else if (m.type === 'error') onFail(new Error(m.message))
      else if (m.type === 'tick') latest = unwire(m)
      else if (m.type === 'quota') onQuota()
      else if (m.type === 'count') counting.shift()?.({ ops: m.ops, errors: m.errors })
      else if (m.type === 'done') onDone((latest = unwire(m)))
    })
    worker.on('error', (err) => onFail(err))
  })
  return {
    ready,
    start: () => send({ type: 'start' }),
    measure: () => {
      send({ type: 'measure' })
      return new Promise((resolve) => (onQuota = resolve))
    },
    latest: () => latest,
    count: () =>
      new Promise((resolve) => {
        counting.push(resolve)
        send({ type: 'count' })
      }),
    stop: () =>
      new Promise((resolve, reject) => {
        onDone = resolve
        onFail = reject
        send({ type: 'stop' })
      }),
    abort: async () => {
      await worker.terminate()
    },
  }
}

function merge(snapshots: GroupSnapshot[]): GroupSnapshot {
  const histogram = newHistogram()
  let ops = 0
  let errors = 0
  let firstError: string | undefined
  for (const s of snapshots) {
    histogram.add(s.histogram)
    ops += s.ops
    errors += s.errors
    firstError ??= s.firstError
  }
  return { ops, errors, firstError, histogram }
}

/** Splits `total` into `parts` near-equal whole shares, dropping zeros. */
function split(total: number, parts: number): number[] {
  const out: number[] = []
  for (let i = 0; i < parts; i++) {
    const share = Math.floor(total / parts) + (i < total % parts ? 1 : 0)
    if (share > 0) out.push(share)
  }
  return out
}

/**
 * Runs the load: warm-up, then a measured window of `durationS` (or until
 * `requests` are made). With `measureFor`, the window lasts until the
 * promise it returns settles instead; it is given `count`, which reads the
 * requests completed so far, so that a caller can cut the window into
 * windows of its own while one load runs throughout.
 */
export async function runLoad(
  spec: LoadSpec,
  onProgress: (p: Progress) => void,
  onMeasureStart: () => void = () => {},
  measureFor?: (count: () => Promise<LoadCount>) => Promise<void>,
): Promise<LoadResult> {
  const threads = spec.workers === 0 ? 1 : Math.min(spec.workers, spec.clients)
  const clientShares = split(spec.clients, threads)
  const requestShares = spec.requests === undefined ? undefined : split(spec.requests, clientShares.length)
  const groups = clientShares.map((clients, i) => {
    const g: GroupSpec = {
      ...spec,
      clients,
      requests: requestShares?.[i] ?? (requestShares ? 0 : undefined),
      rate: spec.rate === undefined ? undefined : (spec.rate * clients) / spec.clients,
    }
    return spec.workers === 0 ? inProcess(g) : inWorker(g)
  })
  try {
    await Promise.all(groups.map((g) => g.ready))
  } catch (err) {
    await Promise.all(groups.map((g) => g.abort()))
    throw err
  }
  for (const g of groups) g.start()
  if (spec.warmupS > 0) await sleep(spec.warmupS * 1000)
  if (spec.warmedUp) {
    try {
      await spec.warmedUp()
    } catch (err) {
      await Promise.all(groups.map((g) => g.abort()))
      throw err
    }
  }

  onMeasureStart()
  const cpuStart = process.cpuUsage()
  const started = performance.now()
  const quotas = Promise.all(groups.map((g) => g.measure()))
  const elapsed = () => (performance.now() - started) / 1000
  const ticker = setInterval(() => onProgress({ ...merge(groups.map((g) => g.latest())), elapsedS: elapsed() }), 250)
  const count = async (): Promise<LoadCount> => {
    const counts = await Promise.all(groups.map((g) => g.count()))
    return counts.reduce((a, c) => ({ ops: a.ops + c.ops, errors: a.errors + c.errors }), { ops: 0, errors: 0 })
  }
  try {
    if (measureFor) await measureFor(count)
    else if (spec.requests === undefined) await sleep(spec.durationS * 1000)
    else await quotas
  } catch (err) {
    clearInterval(ticker)
    await Promise.all(groups.map((g) => g.abort()))
    throw err
  }
  clearInterval(ticker)
  const final = merge(await Promise.all(groups.map((g) => g.stop())))
  const elapsedS = elapsed()
  const cpu = process.cpuUsage(cpuStart)
  return {
    ...final,
    elapsedS,
    harnessCores: (cpu.user + cpu.system) / 1e6 / elapsedS,
    harnessThreads: clientShares.length,
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
