import { TandemError } from '@tandem/protocol'
import { type DialOptions, dial } from './connection.js'

/**
 * The bytes of a snapshot file (see `tandem snapshot save`) from the node
 * at `address`, streamed as the node reads its data. The socket is paused
 * while the caller holds 16 chunks it has not taken, and so is the node.
 */
export async function* snapshotFrom(address: string, options: DialOptions): AsyncGenerator<Buffer> {
  const ws = dial(address, '/snapshot', options)
  const queue: Buffer[] = []
  let paused = false
  let ended: TandemError | 'done' | null = null
  let wake: (() => void) | null = null
  const notify = () => {
    const w = wake
    wake = null
    w?.()
  }
  ws.on('message', (data) => {
    queue.push(data as Buffer)
    if (queue.length >= 16 && !paused) {
      paused = true
      ws.pause()
    }
    notify()
  })
  ws.on('unexpected-response', (_req, res) => {
    const code = res.statusCode === 401 ? 'UNAUTHORIZED' : res.statusCode === 503 ? 'UNAVAILABLE' : 'INVALID'
    const body: Buffer[] = []
    res.on('data', (b: Buffer) => body.push(b))
    res.on('end', () => {
      let reason = `HTTP ${res.statusCode}`
      try {
        // {error: {code, message}}; older nodes sent {error: message}.
        const error = JSON.parse(Buffer.concat(body).toString()).error
        reason = typeof error === 'string' ? error : typeof error?.message === 'string' ? error.message : reason
      } catch {}
      ended = new TandemError(code, `${address} refused the snapshot: ${reason}`)
      notify()
    })
    ws.terminate()
  })
  ws.on('error', (err) => {
    ended ??= new TandemError('UNAVAILABLE', `snapshot from ${address}: ${err.message}`)
    notify()
  })
  ws.on('close', (code, reason) => {
    const text = reason.toString()
    ended ??=
      code === 1000
        ? 'done'
        : code === 1011 && text.startsWith('CORRUPT: ')
          ? new TandemError('CORRUPT', `the snapshot from ${address} stopped at a damaged record: ${text.slice(9)}`)
          : new TandemError(
              code === 1013 ? 'BUSY' : 'UNAVAILABLE',
              `the snapshot from ${address} ended before it was complete (${code}${text ? ` ${text}` : ''})`,
            )
    notify()
  })
  try {
    for (;;) {
      const chunk = queue.shift()
      if (chunk !== undefined) {
        if (paused && queue.length < 4) {
          paused = false
          ws.resume()
        }
        yield chunk
        continue
      }
      if (ended === 'done') return
      if (ended) throw ended
      await new Promise<void>((resolve) => {
        wake = resolve
      })
    }
  } finally {
    if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.terminate()
  }
}
