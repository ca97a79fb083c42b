import type { TargetName } from '../drivers/driver.js'

/** A server the harness started: what the measures need of it (a ServerProcess or a NodeProcess). */
export interface StartedServer {
  readonly role: string
  readonly pid: number | undefined
  stop(): Promise<void>
}

/**
 * The servers one target runs on: a master and its replicas, either started
 * by the harness (`processes` holds them, with their pids, and close() tears
 * them down and removes their data) or already running (`processes` empty,
 * close() leaves them alone).
 */
export interface Topology {
  target: TargetName
  master: string
  replicas: string[]
  processes: StartedServer[]
  /** Temp dir holding the data dirs of the servers the harness started (tandem: root/master, root/replica-N). */
  root?: string
  /** tandem started with --resp-port: where its master speaks RESP (Redis: the master itself). */
  respAddress?: string
  /** Server version, when known (Redis: redis_version). */
  version?: string
  /** Resolves true once every replica holds what the master holds, false on timeout. */
  waitForReplicas(timeoutMs: number): Promise<boolean>
  close(): Promise<void>
}

export class TargetUnavailable extends Error {
  readonly code = 'UNAVAILABLE'
}
