/** The SDK's options, results and events, as the caller sees them (index.ts lists them). */
import type { Consistency, TandemError, WriteConcern } from '@tandem/protocol'
import type { ClientTls } from './connection.js'

export interface ConnectOptions {
  /** Seed addresses, HOST:PORT (an array or a comma-separated string). */
  servers: string[] | string
  /** Sent to the nodes as is: beyond loopback, use `tls` too. */
  authToken?: string
  /**
   * Connect over TLS (wss://): `true` to check the nodes' certificates
   * against the system's CAs, or `{ ca }` with the PEM of the CA that signed
   * them (as given to the servers' --tls-ca). A node whose certificate does
   * not check out is not connected to (UNAVAILABLE).
   */
  tls?: ClientTls
  /** Where reads go: the master (default), a replica, or whichever node is connected. */
  readFrom?: 'master' | 'replica' | 'any'
  /** Talk to exactly the first server, whatever its role; never re-route. */
  direct?: boolean
  /**
   * What reads may return, unless a call says otherwise (see the README):
   * 'linearizable' (the master, holding its lease, answers once a majority
   * holds every write the read could see), 'lease' (the master, holding its
   * lease, answers from its own data) or 'local' (the node read from answers
   * from its own data). linearizable and lease reads go to the master
   * whatever readFrom says. Default: linearizable for reads that go to the
   * master of a fail-over group (--cluster), else what the node serves by
   * default (local).
   */
  consistency?: Consistency
  /**
   * Largest frame the client sends, in bytes: the nodes' --max-frame-bytes
   * (default 8 MiB). Calls made together are split across frames under it;
   * a single request larger fails with TOOLARGE without being sent.
   */
  maxFrameBytes?: number
  /** Default per-request timeout in ms (default 10,000): a finite number above 0, else a TypeError. */
  timeoutMs?: number
  /** How long to keep trying to connect before a request fails with UNAVAILABLE (default 5,000). */
  connectTimeoutMs?: number
  /** Most requests waiting for a connection or a reply at once; more fail with BUSY (default 100,000). */
  maxQueued?: number
  /**
   * A node that, while requests wait for its replies, sends nothing, not
   * even the answer to a ping, for this many ms is taken as gone (a paused
   * or cut-off master): its sent writes fail with UNCERTAIN, reads are
   * retried, and the client looks for the master again. Default 2,000;
   * at least 1,000 (nodes send a ping every 500 ms of quiet); 0 turns the
   * check off.
   */
  livenessTimeoutMs?: number
  /**
   * `connect` fails at once when no seed can be reached (refused, no such
   * host) instead of retrying for connectTimeoutMs: what a command-line
   * tool wants; a service that may start before its nodes wants the retry.
   */
  failFast?: boolean
}

export interface WriteOptions {
  /**
   * Replicas that must hold the write before it is acknowledged: a number or
   * 'majority'. In a multi-master group: peers.
   */
  w?: WriteConcern
  /** This call's timeout in ms (a finite number above 0; a call with another fails with a TypeError). */
  timeoutMs?: number
  /**
   * Multi-master (vclock): the context a read returned (getAll, or a
   * SIBLINGS error). The write replaces exactly the values that read saw;
   * without it, a put adds a value beside the others.
   */
  context?: string
}

/**
 * Compare-and-set: the write happens only if the key is as said when the
 * master commits it, else it fails with CONFLICT (details: the key and its
 * modification seq). ifSeq: the key's modification seq (get with meta) is
 * this, 0 meaning the key does not exist.
 */
interface DelConditions {
  ifSeq?: number
  ifPresent?: boolean
}
export interface PutConditions extends DelConditions {
  ifAbsent?: boolean
  /** The key expires this long (ms) after the master takes the write; without it, a put clears any TTL. */
  ttlMs?: number
}
export type PutOptions = WriteOptions & PutConditions
export type DelOptions = WriteOptions & DelConditions

export interface RequestOptions {
  /** This call's timeout in ms (a finite number above 0; a call with another fails with a TypeError). */
  timeoutMs?: number
}

export interface ReadOptions extends RequestOptions {
  /** This call's consistency (see ConnectOptions.consistency). */
  consistency?: Consistency
}

export type ClientStatus = 'open' | 'closing' | 'closed'

/** What the master is, as the client last learned it (a fail-over's new master and epoch). */
export interface Topology {
  master: string
  epoch: number
  /** The master before, when the client knew one. */
  previous: { master: string; epoch: number } | null
}

/**
 * The client's events, for an application to log or alert on. None is
 * needed to use the client: calls report their own errors.
 * - connect (address): a connection to a node opened.
 * - disconnect (address, error): an open connection was lost (or closed).
 * - reconnecting (address): a connection to a node this client had lost is being opened again.
 * - topology (Topology): the master changed (a fail-over, a promote), as a
 *   node pushed it or the client found it out.
 * - error (error): a failure no call reports (a lost connection's cause,
 *   a discovery that found no node). Emitted only while an `error`
 *   listener is attached, so an application that attaches none is never
 *   thrown at, unlike a plain EventEmitter.
 */
export interface TandemClientEvents {
  connect: [address: string]
  disconnect: [address: string, error: TandemError]
  reconnecting: [address: string]
  topology: [topology: Topology]
  error: [error: TandemError]
}

export interface CloseOptions {
  /**
   * Wait for the calls already made to settle (as ioredis `quit()` does)
   * before closing; new calls fail with CLOSED meanwhile. Each call still
   * ends at its own timeout. Default false: calls in flight fail with CLOSED.
   */
  drain?: boolean
}
