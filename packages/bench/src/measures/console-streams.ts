import { type ClientRequest, get } from 'node:http'
import { bearerHeaders } from '@tandem/protocol'

/**
 * Open web consoles, without a browser: N readers of a node's console event
 * stream (/ui/api/events), each reading every event the node pushes, as an
 * open console tab does. What a console costs the node is its share of
 * this stream (the node polls its group once a tick and sends the view to
 * every stream); the page's own drawing happens in the browser.
 */
export class ConsoleStreams {
  /** Events received, per stream. */
  readonly events: number[]
  private readonly requests: ClientRequest[] = []

  private constructor(count: number) {
    this.events = new Array(count).fill(0)
  }

  /** Opens `count` streams to `address` and resolves once each has received its first event. */
  static async open(address: string, count: number, authToken?: string, timeoutMs = 30_000): Promise<ConsoleStreams> {
    const streams = new ConsoleStreams(count)
    try {
      await Promise.all(Array.from({ length: count }, (_, i) => streams.openOne(address, i, authToken, timeoutMs)))
    } catch (err) {
      streams.close()
      throw err
    }
    return streams
  }

  private openOne(address: string, i: number, authToken: string | undefined, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const headers = { accept: 'text/event-stream', ...bearerHeaders(authToken) }
      const timer = setTimeout(
        () => reject(new Error(`console stream ${i}: no event within ${timeoutMs} ms`)),
        timeoutMs,
      )
      const req = get(`http://${address}/ui/api/events`, { headers }, (res) => {
        if (res.statusCode !== 200) {
          clearTimeout(timer)
          res.resume()
          reject(new Error(`console stream ${i}: HTTP ${res.statusCode} from ${address}/ui/api/events`))
          return
        }
        res.setEncoding('utf8')
        let tail = ''
        res.on('data', (chunk: string) => {
          // Count event blocks (`event: ...` lines); the text itself is not parsed.
          const text = tail + chunk
          const lines = text.split('\n')
          tail = lines.pop() ?? ''
          for (const line of lines) if (line.startsWith('event: ')) this.events[i]++
          if (this.events[i] > 0) {
            clearTimeout(timer)
            resolve()
          }
        })
        res.on('error', () => {})
      })
      req.on('error', (err) => {
        clearTimeout(timer)
        reject(err)
      })
      this.requests.push(req)
    })
  }

  /** The fewest events any stream has received so far. */
  minEvents(): number {
    return Math.min(...this.events)
  }

  close(): void {
    for (const r of this.requests) r.destroy()
  }
}
