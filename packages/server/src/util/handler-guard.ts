import type { Logger } from './logger.js'

/**
 * What a connection's socket handler does when it throws. Node calls a
 * socket's 'data' listener (and ws its 'message' listeners, from inside
 * that) with nothing above it: a throw there is an uncaught exception,
 * and it ends the process with every other connection. So each handler
 * that parses what a remote end sends (the client API's frames, RESP
 * commands, replication, fail-over and peer links, watches) runs inside
 * `guarded`: a throw closes that one connection, is logged as an error
 * (a bug, or input no check foresaw: the stack says where) and is counted
 * by link in tandem_handler_errors_total. The HTTP server's own listeners
 * (requests, WebSocket handshakes) are guarded in http/http-guard.ts.
 *
 * The count is one per process rather than per server object: the
 * handlers are spread over every kind of link, and tandem-server runs one
 * node per process.
 */
type HandlerLink = 'client' | 'resp' | 'replication' | 'peer' | 'cluster' | 'watch' | 'http'

const thrown = new Map<HandlerLink, number>()

/** Counts and logs a throw out of a connection's handler; the caller closes that connection. */
export function handlerThrew(link: HandlerLink, logger: Logger, err: unknown): void {
  thrown.set(link, (thrown.get(link) ?? 0) + 1)
  logger.error('a connection handler threw; that connection is closed', {
    link,
    err,
    stack: (err as Error)?.stack?.split('\n').slice(0, 8).join('\n'),
  })
}

/**
 * `handler`, wrapped: a throw out of it is counted and logged
 * (handlerThrew) and `drop` closes the connection it was handling.
 */
export function guarded<A, B>(
  link: HandlerLink,
  logger: Logger,
  drop: () => void,
  handler: (a: A, b: B) => void,
): (a: A, b: B) => void {
  return (a, b) => {
    try {
      handler(a, b)
    } catch (err) {
      handlerThrew(link, logger, err)
      try {
        drop()
      } catch {}
    }
  }
}

/** Throws counted so far, by link (tandem_handler_errors_total). */
export function handlerErrors(): { labels: { link: string }; value: number }[] {
  return [...thrown].map(([link, value]) => ({ labels: { link }, value }))
}
