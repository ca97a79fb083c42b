import { parentPort, workerData } from 'node:worker_threads'
import { LinkForwarder } from './link-forwarder.js'

/**
 * Worker thread entry of a LinkProxy: one LinkForwarder, driven by the
 * handle's messages. Main -> thread: delay | cut | heal | close, each
 * answered with `done` (in order). Thread -> main: listening (the port)
 * first, or failed.
 */
export type ToLinkThread = { type: 'delay'; ms: number } | { type: 'cut' } | { type: 'heal' } | { type: 'close' }
export type FromLinkThread =
  | { type: 'listening'; port: number }
  | { type: 'failed'; message: string }
  | { type: 'done' }

const port = parentPort
if (port === null) throw new Error('link-proxy-thread runs as a worker thread')
const { host, targetPort } = workerData as { host: string; targetPort: number }
const forwarder = new LinkForwarder(host, targetPort)
const post = (m: FromLinkThread) => port.postMessage(m)

port.on('message', async (m: ToLinkThread) => {
  if (m.type === 'delay') forwarder.delayMs = m.ms
  else if (m.type === 'cut') forwarder.cut()
  else if (m.type === 'heal') forwarder.heal()
  else if (m.type === 'close') await forwarder.close()
  post({ type: 'done' })
  // Closing the port lets the thread end once its sockets are gone.
  if (m.type === 'close') port.close()
})

forwarder.start().then(
  (listening) => post({ type: 'listening', port: listening }),
  (err: Error) => post({ type: 'failed', message: err.message }),
)
