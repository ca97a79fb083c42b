import {
  type ClusterReply,
  type ClusterReplyBody,
  type ClusterRequest,
  type ClusterRequestBody,
  clusterListenerMessageSchema,
  clusterRequestSchema,
  decodeFrame,
  encodeFrame,
} from '@tandem/protocol'
import WebSocket from 'ws'
import { guarded } from '../util/handler-guard.js'
import type { Logger } from '../util/logger.js'
import { dialPeer, type PeerTls } from './dial.js'
import { newNonce, proofHolds, proveToken } from './peer-auth.js'

/**
 * Member-to-member channel of a fail-over group (WebSocket at /cluster).
 * Each member keeps one outbound link to every other member in its
 * `--cluster` list and sends its requests there (heartbeats, vote requests,
 * hand-overs); replies come back on the same socket. Members are known by
 * node id: the address in this node's list is only its route to them (it
 * may be a proxy), learned to belong to a node id by the hello exchange,
 * in which both ends prove they hold the token (peer-auth.ts); the wire
 * schemas are in @tandem/protocol (cluster.ts).
 */

interface ClusterHost {
  readonly nodeId: string
  readonly address: string
  readonly authToken?: string
  readonly tls?: PeerTls
  readonly logger: Logger
  epoch(): number
  onRequest(request: ClusterRequest): Promise<ClusterReplyBody>
}

export class Peer {
  /** Node id at the other end, once the hello exchange told us. */
  nodeId: string | null = null
  /** Where clients reach it. */
  clientAddr: string | null = null
  /** Where Redis-protocol clients reach it, if it serves that protocol. */
  respAddr: string | null = null
  witness = false
  ws: WebSocket | null = null
  connected = false
  /** Monotonic ms of the last reply from it. */
  lastReplyAt = 0
  isSelf = false
  /**
   * The route listed before this one that reaches the same member (the
   * same node id), or null: an alias is neither counted in the group's
   * size nor asked for votes or heartbeat acks, so that one member listed
   * under two spellings (a name and its address, a proxy) cannot count
   * twice towards a majority.
   */
  aliasOf: string | null = null
  private readonly pending = new Map<
    number,
    { resolve: (r: ClusterReply | undefined) => void; timer: NodeJS.Timeout }
  >()
  /** Whether the current socket's listener has sent its challenge (it must, exactly once). */
  private challenged = false
  private retry: NodeJS.Timeout | null = null
  private nextId = 1

  constructor(
    readonly route: string,
    private readonly host: ClusterHost,
    private readonly now: () => number,
    /** Told when the hello names who answers at this route (node id or self): membership changed. */
    private readonly onIdentified: () => void = () => {},
  ) {}

  connect(): void {
    if (this.isSelf || this.ws) return
    this.challenged = false
    const ws = dialPeer(this.route, '/cluster', this.host.tls, { perMessageDeflate: false, handshakeTimeout: 2000 })
    this.ws = ws
    const nonce = newNonce()
    const onMessage = (data: WebSocket.RawData) => {
      let message: ReturnType<typeof clusterListenerMessageSchema.parse>
      try {
        message = clusterListenerMessageSchema.parse(decodeFrame(data as Buffer))
      } catch {
        ws.terminate()
        return
      }
      if (message.type === 'challenge') return this.onChallenge(ws, message.nonce, nonce)
      this.lastReplyAt = this.now()
      const waiter = this.pending.get(message.id)
      if (waiter) {
        this.pending.delete(message.id)
        clearTimeout(waiter.timer)
        waiter.resolve(message)
      }
    }
    ws.on(
      'message',
      guarded('cluster', this.host.logger, () => ws.terminate(), onMessage),
    )
    ws.on('error', () => {})
    ws.on('close', () => {
      this.ws = null
      this.connected = false
      for (const [id, w] of this.pending) {
        clearTimeout(w.timer)
        this.pending.delete(id)
        w.resolve(undefined)
      }
      if (!this.isSelf && !this.closed) this.retry = setTimeout(() => this.connect(), 200)
    })
  }

  /** The listener's challenge: prove the token in hello, and use this link only once the listener has proven it too. */
  private onChallenge(ws: WebSocket, listenerNonce: Uint8Array, dialerNonce: Buffer): void {
    if (this.challenged) return void ws.terminate()
    this.challenged = true
    const { authToken } = this.host
    const proof = proveToken(authToken, 'cluster', 'dialer', listenerNonce, dialerNonce)
    const hello = {
      type: 'hello' as const,
      nodeId: this.host.nodeId,
      epoch: this.host.epoch(),
      nonce: dialerNonce,
      proof,
    }
    this.request(hello, 2000).then((reply) => {
      // Without the hello this route cannot be tied to a node id (and so
      // would not be used to follow it): start over.
      if (!reply?.ok) {
        if (reply?.reason)
          this.host.logger.warn('member refused this node', { route: this.route, reason: reply.reason })
        ws.terminate()
        return
      }
      if (!proofHolds(authToken, 'cluster', 'listener', listenerNonce, dialerNonce, reply.proof)) {
        this.host.logger.warn('a member could not prove it holds the auth token; not using it', { route: this.route })
        ws.terminate()
        return
      }
      if (reply.nodeId === this.host.nodeId) {
        this.isSelf = true
        this.onIdentified()
        ws.close()
        return
      }
      if (this.nodeId !== reply.nodeId) {
        this.nodeId = reply.nodeId
        this.onIdentified()
      }
      this.clientAddr = reply.clientAddr ?? null
      this.respAddr = reply.respAddr ?? null
      this.witness = reply.witness ?? false
      this.connected = true
    })
  }

  /** Sends a request; resolves with the reply, or undefined on timeout or a lost link. */
  request(body: ClusterRequestBody, timeoutMs: number): Promise<ClusterReply | undefined> {
    const ws = this.ws
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.resolve(undefined)
    // Nothing but the hello goes to a member before it has proven itself:
    // an impostor must not see, let alone answer, a vote request.
    if (body.type !== 'hello' && !this.connected) return Promise.resolve(undefined)
    // A stuck link must not collect requests without bound.
    if (this.pending.size > 1000) return Promise.resolve(undefined)
    const id = this.nextId++
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        resolve(undefined)
      }, timeoutMs)
      this.pending.set(id, { resolve, timer })
      ws.send(encodeFrame({ id, ...body }))
    })
  }

  private closed = false
  close(): void {
    this.closed = true
    if (this.retry) clearTimeout(this.retry)
    this.ws?.terminate()
  }
}

export class Cluster {
  readonly peers: Peer[]
  /**
   * Bumped whenever a member's identity becomes known or changes, so that
   * what is derived from membership (size, majority, isMember) can be
   * cached until it moves.
   */
  membershipVersion = 0

  constructor(
    routes: readonly string[],
    private readonly host: ClusterHost,
    now: () => number,
  ) {
    this.peers = [...new Set(routes)]
      .filter((r) => r !== host.address)
      .map(
        (route) =>
          new Peer(route, host, now, () => {
            this.markAliases()
            this.membershipVersion++
          }),
      )
  }

  /** Sets each peer's aliasOf from the node ids known now; warns of a route newly found to reach a member twice. */
  private markAliases(): void {
    const first = new Map<string, Peer>()
    for (const p of this.peers) {
      const before = p.isSelf || p.nodeId === null ? undefined : first.get(p.nodeId)
      const aliasOf = before?.route ?? null
      if (aliasOf !== null && p.aliasOf !== aliasOf) {
        this.host.logger.warn('two --cluster routes reach one member; the later is not counted', {
          nodeId: p.nodeId,
          route: before?.route,
          alias: p.route,
        })
      }
      p.aliasOf = aliasOf
      if (before === undefined && !p.isSelf && p.nodeId !== null) first.set(p.nodeId, p)
    }
  }

  start(): void {
    for (const p of this.peers) p.connect()
  }

  /** Members of the group, this node included. */
  get size(): number {
    return this.others().length + 1
  }

  get majority(): number {
    return Math.floor(this.size / 2) + 1
  }

  /** The other members, each once: neither this node nor an alias (a second route to a member). */
  others(): Peer[] {
    return this.peers.filter((p) => !p.isSelf && p.aliasOf === null)
  }

  byNodeId(nodeId: string): Peer | undefined {
    return this.peers.find((p) => p.nodeId === nodeId && !p.isSelf && p.aliasOf === null)
  }

  /**
   * Serves one inbound member connection: challenges it, and answers
   * nothing but its hello until its proof checks out.
   */
  accept(ws: WebSocket): void {
    const nonce = newNonce()
    let proven = false
    ws.send(encodeFrame({ type: 'challenge', nonce }))
    const onMessage = (data: WebSocket.RawData) => {
      let request: ClusterRequest
      try {
        request = clusterRequestSchema.parse(decodeFrame(data as Buffer))
      } catch {
        ws.close(1007, 'invalid cluster message')
        return
      }
      let proof: Buffer | null | undefined
      if (request.type === 'hello') {
        const { authToken } = this.host
        if (proven || !proofHolds(authToken, 'cluster', 'dialer', nonce, request.nonce, request.proof)) {
          this.host.logger.warn('a member could not prove it holds the auth token; refusing it', {
            nodeId: request.nodeId,
          })
          const refusal = {
            id: request.id,
            type: 'reply',
            nodeId: this.host.nodeId,
            epoch: 0,
            ok: false,
            reason: 'unauthorized',
          }
          ws.send(encodeFrame(refusal))
          ws.close(4401, 'unauthorized')
          return
        }
        proven = true
        proof = proveToken(authToken, 'cluster', 'listener', nonce, request.nonce)
      } else if (!proven) {
        ws.close(4401, 'hello first')
        return
      }
      this.host.onRequest(request).then(
        (body) => {
          if (ws.readyState === WebSocket.OPEN) {
            const reply = { id: request.id, type: 'reply', nodeId: this.host.nodeId, ...body }
            ws.send(encodeFrame(proof === undefined ? reply : { ...reply, proof }))
          }
        },
        (err) => this.host.logger.warn('cluster request failed', { type: request.type, err }),
      )
    }
    ws.on(
      'message',
      guarded('cluster', this.host.logger, () => ws.terminate(), onMessage),
    )
    ws.on('error', () => {})
  }

  close(): void {
    for (const p of this.peers) p.close()
  }
}
