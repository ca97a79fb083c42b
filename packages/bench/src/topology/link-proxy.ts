import { Worker } from 'node:worker_threads'
import type { FromLinkThread, ToLinkThread } from './link-proxy-thread.js'

/**
 * A TCP proxy for one directed link between two multi-master peers, so the
 * multimaster suite can cut a link (a partition), heal it, and add latency
 * (each chunk delayed by `delayMs`, in order, both ways). Cut: connections
 * are destroyed and new ones refused until heal().
 *
 * The forwarding runs on a worker thread of its own (link-forwarder.ts).
 * On the bench's main thread it waited behind the load generator: with
 * `--workers 0` the clients' callbacks fill that thread's event loop, and
 * every chunk a peer link carried waited for a turn of it, so a link of
 * +0 ms carried the load generator's event-loop lag in both directions
 * (peer lag, conflict rates and convergence times measured through it
 * included the bench's own work).
 */
export class LinkProxy {
  private worker: Worker | null = null
  private readonly answers: (() => void)[] = []
  private delay = 0
  port = 0

  constructor(
    readonly targetHost: string,
    readonly targetPort: number,
  ) {}

  get address(): string {
    return `127.0.0.1:${this.port}`
  }

  /** Added to every chunk, both ways (ms; 0 forwards at once). */
  get delayMs(): number {
    return this.delay
  }

  /** Sets delayMs; resolves once the proxy's thread applies it. */
  setDelay(ms: number): Promise<void> {
    this.delay = ms
    return this.ask({ type: 'delay', ms })
  }

  async start(): Promise<this> {
    const worker = new Worker(new URL('./link-proxy-thread.js', import.meta.url), {
      workerData: { host: this.targetHost, targetPort: this.targetPort },
    })
    this.worker = worker
    this.port = await new Promise<number>((resolve, reject) => {
      worker.on('message', (m: FromLinkThread) => {
        if (m.type === 'listening') resolve(m.port)
        else if (m.type === 'failed') reject(new Error(`link proxy: ${m.message}`))
        else this.answers.shift()?.()
      })
      worker.once('error', reject)
      worker.once('exit', () => {
        reject(new Error('link proxy thread exited'))
        for (const answer of this.answers.splice(0)) answer()
      })
    })
    return this
  }

  /** Destroys the link's connections and refuses new ones; resolves once done. */
  cut(): Promise<void> {
    return this.ask({ type: 'cut' })
  }

  /** Accepts connections again; resolves once it does. */
  heal(): Promise<void> {
    return this.ask({ type: 'heal' })
  }

  /** Closes the listener and every connection and ends the thread. Safe to call twice. */
  async close(): Promise<void> {
    const worker = this.worker
    this.worker = null
    if (worker === null) return
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()))
    this.answers.push(() => {})
    worker.postMessage({ type: 'close' } satisfies ToLinkThread)
    await exited
  }

  /** Sends a command to the thread; resolves when the thread has carried it out (answers come in order). */
  private ask(m: ToLinkThread): Promise<void> {
    const worker = this.worker
    if (worker === null) return Promise.resolve()
    return new Promise((resolve) => {
      this.answers.push(resolve)
      worker.postMessage(m)
    })
  }
}
