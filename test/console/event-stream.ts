import { type ClientRequest, get, type IncomingMessage } from 'node:http'
import { get as httpsGet } from 'node:https'

/** One console event stream (/ui/api/events) read by a test: every event parsed as it arrives. */
export class EventStream {
  readonly events: { event: string; data: unknown }[] = []
  status = 0
  private buffer = ''
  private request: ClientRequest | null = null

  /** Opens the stream (over https when given the CA to check the node with); resolves once its headers are in. */
  open(address: string, token?: string, tls?: { ca: Buffer }): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { accept: 'text/event-stream' }
      if (token) headers.authorization = `Bearer ${token}`
      const onResponse = (res: IncomingMessage) => {
        this.status = res.statusCode ?? 0
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => this.onData(chunk))
        res.on('error', () => {})
        resolve(res)
      }
      this.request = tls
        ? httpsGet(`https://${address}/ui/api/events`, { headers, ca: tls.ca }, onResponse)
        : get(`http://${address}/ui/api/events`, { headers }, onResponse)
      this.request.on('error', reject)
    })
  }

  private onData(chunk: string): void {
    this.buffer += chunk
    for (let end = this.buffer.indexOf('\n\n'); end >= 0; end = this.buffer.indexOf('\n\n')) {
      const block = this.buffer.slice(0, end)
      this.buffer = this.buffer.slice(end + 2)
      let event = 'message'
      let data = ''
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7)
        else if (line.startsWith('data: ')) data += line.slice(6)
      }
      if (data) this.events.push({ event, data: JSON.parse(data) })
    }
  }

  /** The views received so far (a snapshot's view included). */
  views(): { tick: number; [k: string]: unknown }[] {
    return this.events.map((e) =>
      e.event === 'snapshot' ? (e.data as { view: { tick: number } }).view : (e.data as { tick: number }),
    )
  }

  close(): void {
    this.request?.destroy()
  }
}
