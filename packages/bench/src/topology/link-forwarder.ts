import { createConnection, createServer, type Server, type Socket } from 'node:net'

/**
 * The TCP forwarding of one LinkProxy (see link-proxy.ts), run on the
 * proxy's own thread: accepts connections, dials the target for each, and
 * copies bytes both ways, each chunk delayed by `delayMs` in order. Cut:
 * connections are destroyed and new ones refused until heal().
 */
export class LinkForwarder {
  private server: Server | null = null
  private readonly sockets = new Set<Socket>()
  private cutOff = false
  delayMs = 0

  constructor(
    readonly targetHost: string,
    readonly targetPort: number,
  ) {}

  /** Listens on a port chosen by the OS; resolves with it. */
  async start(): Promise<number> {
    const server = createServer((socket) => this.onConnection(socket))
    this.server = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => resolve())
    })
    const address = server.address()
    if (address === null || typeof address === 'string') throw new Error('proxy has no TCP address')
    return address.port
  }

  cut(): void {
    this.cutOff = true
    for (const s of this.sockets) s.destroy()
    this.sockets.clear()
  }

  heal(): void {
    this.cutOff = false
  }

  async close(): Promise<void> {
    this.cut()
    const server = this.server
    this.server = null
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  private onConnection(client: Socket): void {
    client.on('error', () => {})
    if (this.cutOff) {
      client.destroy()
      return
    }
    const upstream = createConnection({ host: this.targetHost, port: this.targetPort })
    upstream.on('error', () => {})
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    this.sockets.add(client)
    this.sockets.add(upstream)
    const end = () => {
      this.sockets.delete(client)
      this.sockets.delete(upstream)
      client.destroy()
      upstream.destroy()
    }
    client.on('close', end)
    upstream.on('close', end)
    this.pipe(client, upstream)
    this.pipe(upstream, client)
  }

  private pipe(from: Socket, to: Socket): void {
    const queue: { at: number; chunk: Buffer }[] = []
    let timer: NodeJS.Timeout | null = null
    const write = (chunk: Buffer) => {
      if (!to.destroyed && !to.write(chunk)) {
        from.pause()
        to.once('drain', () => from.resume())
      }
    }
    const flush = () => {
      timer = null
      const now = Date.now()
      while (queue.length > 0 && queue[0].at <= now) write((queue.shift() as { chunk: Buffer }).chunk)
      if (queue.length > 0) timer = setTimeout(flush, queue[0].at - now)
    }
    from.on('data', (chunk: Buffer) => {
      if (this.delayMs === 0 && queue.length === 0) return write(chunk)
      const at = Math.max(Date.now() + this.delayMs, queue.length > 0 ? queue[queue.length - 1].at : 0)
      queue.push({ at, chunk })
      if (timer === null) timer = setTimeout(flush, at - Date.now())
    })
    from.on('close', () => {
      if (timer) clearTimeout(timer)
    })
  }
}
