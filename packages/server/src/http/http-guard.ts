import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { handlerThrew } from '../util/handler-guard.js'
import type { Logger } from '../util/logger.js'
import { rejectUpgrade, sendJson } from './answer.js'

type RequestListener = (req: IncomingMessage, res: ServerResponse) => void
type UpgradeListener = (req: IncomingMessage, socket: Duplex, head: Buffer) => void

const FAILED = 'the node failed while answering this request (logged on the node)'

/**
 * The HTTP server's 'request' listener, guarded. Node calls it from the
 * socket's parser with nothing above it, so a throw there is an uncaught
 * exception that ends the node. Guarded, the throw is logged with its stack
 * and counted (tandem_handler_errors_total{link="http"}), and only that
 * request fails: 500 INTERNAL while no part of an answer has gone out,
 * else its socket is destroyed (a half-sent answer cannot become another).
 */
export function guardRequest(logger: Logger, handler: RequestListener): RequestListener {
  return (req, res) => {
    try {
      handler(req, res)
    } catch (err) {
      handlerThrew('http', logger, err)
      try {
        if (res.writableEnded) return
        if (res.headersSent) return void res.destroy()
        sendJson(res, 500, { error: { code: 'INTERNAL', message: FAILED } })
      } catch {
        res.destroy()
      }
    }
  }
}

/**
 * The 'upgrade' listener, guarded the same way: a throw answers 500
 * INTERNAL while nothing has been written to the socket, else (a WebSocket
 * past its 101, a refusal under way) destroys it.
 */
export function guardUpgrade(logger: Logger, handler: UpgradeListener): UpgradeListener {
  return (req, socket, head) => {
    try {
      handler(req, socket, head)
    } catch (err) {
      handlerThrew('http', logger, err)
      try {
        // An upgrade's socket is a net.Socket (a TLSSocket under https):
        // bytesWritten counts what was written to it, sent or still queued.
        if (socket.writableEnded || socket.destroyed || (socket as Socket).bytesWritten > 0) socket.destroy()
        else rejectUpgrade(socket, 500, 'INTERNAL', FAILED)
      } catch {
        socket.destroy()
      }
    }
  }
}
