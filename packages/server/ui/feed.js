/**
 * The console's live feed: server-sent events read with fetch (EventSource
 * cannot send an Authorization header). Reconnects with backoff, and
 * treats a stream silent for STALE_MS as lost.
 */

const STALE_MS = 5000
const MAX_BACKOFF_MS = 5000

export class Feed {
  /**
   * @param {object} handlers
   * @param {() => string | null} handlers.token
   * @param {(state: 'connecting' | 'live' | 'retrying' | 'unauthorized', detail?: string) => void} handlers.onState
   * @param {(event: string, data: unknown) => void} handlers.onEvent
   */
  constructor(handlers) {
    this.handlers = handlers
    this.controller = null
    this.stopped = true
    this.backoff = 500
  }

  start() {
    this.stopped = false
    this.backoff = 500
    void this.loop()
  }

  stop() {
    this.stopped = true
    this.controller?.abort()
  }

  async loop() {
    while (!this.stopped) {
      const outcome = await this.connectOnce()
      if (outcome === 'unauthorized' || this.stopped) return
      this.handlers.onState('retrying', outcome)
      await new Promise((resolve) => setTimeout(resolve, this.backoff))
      this.backoff = Math.min(MAX_BACKOFF_MS, this.backoff * 2)
    }
  }

  /** One stream, read until it ends; resolves with why it ended. */
  async connectOnce() {
    const controller = new AbortController()
    this.controller = controller
    let watchdog = 0
    const arm = () => {
      clearTimeout(watchdog)
      watchdog = setTimeout(() => controller.abort(), STALE_MS)
    }
    this.handlers.onState('connecting')
    try {
      const headers = { accept: 'text/event-stream' }
      const token = this.handlers.token()
      if (token) headers.authorization = `Bearer ${token}`
      arm()
      const res = await fetch('api/events', { headers, signal: controller.signal, cache: 'no-store' })
      if (res.status === 401) {
        this.handlers.onState('unauthorized')
        return 'unauthorized'
      }
      if (!res.ok || !res.body) return `HTTP ${res.status}`
      this.handlers.onState('live')
      this.backoff = 500
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
      let buffer = ''
      for (;;) {
        const { value, done } = await reader.read()
        if (done) return 'the node closed the stream'
        arm()
        buffer += value
        let end = buffer.indexOf('\n\n')
        while (end >= 0) {
          this.dispatch(buffer.slice(0, end))
          buffer = buffer.slice(end + 2)
          end = buffer.indexOf('\n\n')
        }
      }
    } catch (err) {
      return this.stopped ? 'stopped' : `no connection (${err?.name === 'AbortError' ? 'timed out' : err?.message})`
    } finally {
      clearTimeout(watchdog)
      controller.abort()
    }
  }

  dispatch(block) {
    let event = 'message'
    const data = []
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue
      if (line.startsWith('event: ')) event = line.slice(7)
      else if (line.startsWith('data: ')) data.push(line.slice(6))
    }
    if (data.length === 0) return
    this.handlers.onEvent(event, JSON.parse(data.join('\n')))
  }
}
