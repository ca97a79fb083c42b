import { parentPort, workerData } from 'node:worker_threads'
import { ClientGroup, type GroupSnapshot, type GroupSpec } from './client-group.js'
import { encodeHistogram } from './histogram.js'

/**
 * Worker thread entry: runs one ClientGroup and speaks the runner's
 * messages. Main -> worker: start | measure | count | stop. Worker -> main:
 * ready | error | tick (every 500 ms while measuring) | count (the
 * answer to one, at once) | quota | done.
 */

export type ToWorker = { type: 'start' } | { type: 'measure' } | { type: 'count' } | { type: 'stop' }
export interface WireSnapshot {
  ops: number
  errors: number
  firstError?: string
  histogram: string
}
export type FromWorker =
  | { type: 'ready' }
  | { type: 'error'; message: string }
  | { type: 'quota' }
  | { type: 'count'; ops: number; errors: number }
  | ({ type: 'tick' } & WireSnapshot)
  | ({ type: 'done' } & WireSnapshot)

const port = parentPort!
const group = new ClientGroup(workerData as GroupSpec)
let ticker: NodeJS.Timeout | undefined

const wire = (s: GroupSnapshot): WireSnapshot => ({
  ops: s.ops,
  errors: s.errors,
  firstError: s.firstError,
  histogram: encodeHistogram(s.histogram),
})
const post = (m: FromWorker) => port.postMessage(m)

port.on('message', async (m: ToWorker) => {
  if (m.type === 'start') group.start()
  else if (m.type === 'measure') {
    group.measure().then(() => post({ type: 'quota' }))
    ticker = setInterval(() => post({ type: 'tick', ...wire(group.snapshot()) }), 500)
  } else if (m.type === 'count') {
    const { ops, errors } = group.snapshot()
    post({ type: 'count', ops, errors })
  } else if (m.type === 'stop') {
    clearInterval(ticker)
    const final = await group.stop()
    await group.close()
    post({ type: 'done', ...wire(final) })
    port.close()
  }
})

group.open().then(
  () => post({ type: 'ready' }),
  (err: Error) => post({ type: 'error', message: `${(err as { code?: string }).code ?? err.name}: ${err.message}` }),
)
