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
      requestFailed(logger, res, err)
    }
  }
}

/**
 * Answers a request once `answer` has: an answer made after the listener
 * returned (/metrics awaits prom-client's collection of every figure) is
 * out of the listener's guard, and its rejection, had nothing handled it,
 * would be an unhandled rejection, which ends a Node 20 process. A figure
 * whose source throws or rejects, or a throw while answering, fails that
 * request as a throw in the listener does.
 */
export function answerLater(logger: Logger, res: ServerResponse, answer: () => Promise<void>): void {
  let answering: Promise<void>
  try {
    answering = answer()
  } catch (err) {
    answering = Promise.reject(err)
  }
  answering.catch((err: unknown) => requestFailed(logger, res, err))
}

/** Logs and counts a failed request; answers 500 INTERNAL while nothing of an answer went out, else destroys its socket. */
function requestFailed(logger: Logger, res: ServerResponse, err: unknown): void {
  try {
    handlerThrew('http', logger, err)
  } catch {}
  try {
    if (res.writableEnded) return
    if (res.headersSent) return void res.destroy()
    sendJson(res, 500, { error: { code: 'INTERNAL', message: FAILED } })
  } catch {
    res.destroy()
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
