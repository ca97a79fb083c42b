import { connect, type Socket } from 'node:net'

/** A raw TCP client for RESP tests: writes bytes as given, collects what comes back. */
export class RawResp {
  readonly received: Buffer[] = []
  /** Bytes received in all (received may be cleared by a test; this is not). */
  bytes = 0
  closed = false
  private readonly closedPromise: Promise<void>
  private waiters: (() => void)[] = []

  private constructor(readonly socket: Socket) {
    socket.on('data', (d) => {
      this.received.push(d)
      this.bytes += d.length
      for (const w of this.waiters.splice(0)) w()
    })
    this.closedPromise = new Promise((resolve) => {
      socket.on('close', () => {
        this.closed = true
        for (const w of this.waiters.splice(0)) w()
        resolve()
      })
    })
    socket.on('error', () => {})
  }

  static open(port: number): Promise<RawResp> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => resolve(new RawResp(socket)))
      socket.once('error', reject)
    })
  }

  get text(): string {
    return Buffer.concat(this.received).toString('latin1')
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.write(data)) resolve()
      else this.socket.once('drain', () => resolve())
    })
  }

  /** Resolves once what was received satisfies `done`; rejects after timeoutMs. */
  async until(done: (text: string) => boolean, timeoutMs = 10_000, what = 'a reply'): Promise<string> {
    const deadline = Date.now() + timeoutMs
    while (!done(this.text)) {
      if (this.closed)
        throw new Error(`connection closed before ${what}; got ${JSON.stringify(this.text.slice(0, 300))}`)
      const left = deadline - Date.now()
      if (left <= 0)
        throw new Error(`no ${what} within ${timeoutMs} ms; got ${JSON.stringify(this.text.slice(0, 300))}`)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        this.waiters.push(() => {
          clearTimeout(t)
          resolve()
        })
      })
    }
    return this.text
  }

  /** Resolves once `n` bytes in all have been received; rejects after timeoutMs. */
  async untilBytes(n: number, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (this.bytes < n) {
      if (this.closed) throw new Error(`connection closed after ${this.bytes} of ${n} bytes`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`only ${this.bytes} of ${n} bytes within ${timeoutMs} ms`)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        this.waiters.push(() => {
          clearTimeout(t)
          resolve()
        })
      })
    }
  }

  /** Resolves once the server has closed the connection; rejects after timeoutMs. */
  async closedByServer(timeoutMs = 10_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      this.closedPromise,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`connection still open after ${timeoutMs} ms`)), timeoutMs)
      }),
    ])
    clearTimeout(timer)
  }

  close(): void {
    this.socket.destroy()
  }
}

/** A command as a RESP array of bulk strings. */
export function command(...args: (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)]
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(a)
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'))
  }
  return Buffer.concat(parts)
}
