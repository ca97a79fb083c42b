import { randomBytes } from 'node:crypto'
import type { AddressInfo, Socket } from 'node:net'
import { decodeFrame, encodeFrame } from '@tandem/protocol'
import { type WebSocket, WebSocketServer } from 'ws'
import { type NodeProcess, startNode } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'

/** A message the node's link sent the pusher (an ack carries vv and frames). */
export interface LinkMessage {
  type: string
  vv?: Record<string, number>
  frames?: number
}

/**
 * A peer written by hand, for tests that need frames no real feed sends:
 * it answers the node's link with a challenge, a welcome and a continue
 * (from seq 1, as `origin`), then calls `burst` once with the socket
 * corked, so that everything it sends reaches the node together. Every
 * message the link sends is handed to `onMessage`. Starts a multi-master
 * LWW node whose only peer is the pusher; `cleanups` stops both.
 */
export async function startHandPusher(options: {
  origin: string
  prefix: string
  cleanups: (() => Promise<void> | void)[]
  burst: (ws: WebSocket) => void
  onMessage?: (message: LinkMessage) => void
}): Promise<NodeProcess> {
  const { origin, cleanups } = options
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  cleanups.push(() => new Promise<void>((resolve) => wss.close(() => resolve())))
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()))
  let sent = false
  wss.on('connection', (ws) => {
    ws.on('error', () => {})
    ws.send(encodeFrame({ type: 'challenge', nonce: randomBytes(32) }))
    ws.on('message', (data) => {
      const message = decodeFrame(data as Buffer) as LinkMessage
      options.onMessage?.(message)
      if (message.type !== 'hello' || sent) return
      sent = true
      ws.send(encodeFrame({ type: 'welcome', proof: null }))
      ws.send(
        encodeFrame({
          type: 'continue',
          fromSeq: 1,
          nodeId: 'fake-pusher',
          origin,
          vv: {},
          time: Date.now(),
          incarnation: 'fake-run',
        }),
      )
      const socket = (ws as unknown as { _socket: Socket })._socket
      socket.cork()
      options.burst(ws)
      socket.uncork()
    })
  })
  const dir = tempDir(options.prefix)
  cleanups.push(() => dir.remove())
  const port = (wss.address() as AddressInfo).port
  const node = await startNode(dir.path, ['--mode', 'multi', '--conflict', 'lww', '--peers', `127.0.0.1:${port}`])
  cleanups.push(() => node.stop())
  return node
}
