import { createServer } from 'node:net'
import { formatHostPort, TandemError } from '@tandem/protocol'

/**
 * A node that cannot listen where it was told must say so before it opens
 * its data dir: opening it creates the dir, checks its files
 * (--verify-at-start all reads every table) and lets LevelDB write, all for
 * a start that fails. So each fixed port is tried first, by listening on it
 * and closing it again at once; the node then opens the data dir and
 * listens for real. Another process can take the port in between: the real
 * listen then fails with the same message (listenError), the store is
 * closed and its lock released.
 */

/** Listens on `host:port` and closes again; throws listenError's TandemError when it cannot. Port 0 is not tried. */
export async function tryListen(flag: string, host: string, port: number): Promise<void> {
  if (port === 0) return
  const probe = createServer()
  await new Promise<void>((resolve, reject) => {
    probe.once('error', (err) => reject(listenError(err, flag, host, port)))
    probe.listen({ host, port, exclusive: true }, () => resolve())
  })
  await new Promise<void>((resolve) => probe.close(() => resolve()))
}

/**
 * What a failed listen means to the operator, as one line naming the flag
 * and the address (UNAVAILABLE, like a data dir held by another server);
 * any other error is returned as it is.
 */
export function listenError(err: unknown, flag: string, host: string, port: number): unknown {
  const code = (err as NodeJS.ErrnoException)?.code
  // The errno stays in the line: scripts that start nodes on picked ports look for EADDRINUSE to pick again.
  const where = `${flag} ${port}: cannot listen on ${formatHostPort(host, port)} (${code})`
  const why =
    code === 'EADDRINUSE'
      ? 'the address is already in use by another process'
      : code === 'EADDRNOTAVAIL'
        ? `${host} (--host) is not an address of this machine`
        : code === 'EACCES'
          ? 'permission denied (ports below 1024 need privileges)'
          : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
            ? `${host} (--host) does not resolve`
            : null
  if (why === null) return err
  return new TandemError('UNAVAILABLE', `${where}: ${why}`, { cause: err })
}
