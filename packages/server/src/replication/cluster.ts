import { decodeFrame, encodeFrame } from '@tandem/protocol'
import WebSocket from 'ws'
import { z } from 'zod'
import type { Logger } from '../util/logger.js'

/**
 * Member-to-member channel of a fail-over group (WebSocket at /cluster).
 * Each member keeps one outbound link to every other member in its
 * `--cluster` list and sends its requests there (heartbeats, vote requests,
 * hand-overs); replies come back on the same socket. Members are known by
 * node id: the address in this node's list is only its route to them (it
 * may be a proxy), learned to belong to a node id by the hello exchange.
 */

export const clusterRequestSchema = z.discriminatedUnion('type', [
  z.object({ id: z.number().int(), type: z.literal('hello'), nodeId: z.string(), epoch: z.number().int() }),
  z.object({
    id: z.number().int(),
    type: z.literal('heartbeat'),
    epoch: z.number().int(),
    masterId: z.string(),
    /** Where clients reach the master. */
    masterAddr: z.string(),
    seq: z.number().int(),
  }),
  z.object({
    id: z.number().int(),
    type: z.literal('vote'),
    epoch: z.number().int(),
    candidateId: z.string(),
    lastEpoch: z.number().int(),
    lastSeq: z.number().int(),
    /** Set by a candidate the master handed over to: skip the "lost the master" rule. */
    force: z.boolean(),
  }),
  /** Would you vote for me in `epoch`? Answered by rules 2 and 3 alone; nothing is recorded. */
  z.object({
    id: z.number().int(),
    type: z.literal('prevote'),
    epoch: z.number().int(),
    candidateId: z.string(),
    lastEpoch: z.number().int(),
    lastSeq: z.number().int(),
  }),
  z.object({ id: z.number().int(), type: z.literal('handover'), epoch: z.number().int(), candidateId: z.string() }),
])
export type ClusterRequest = z.infer<typeof clusterRequestSchema>
export type ClusterRequestBody = ClusterRequest extends infer R
  ? R extends ClusterRequest
    ? Omit<R, 'id'>
    : never
  : never

export const clusterReplySchema = z.object({
  id: z.number().int(),
  type: z.literal('reply'),
  nodeId: z.string(),
  epoch: z.number().int(),
  ok: z.boolean(),
  seq: z.number().int().optional(),
  clientAddr: z.string().optional(),
  reason: z.string().optional(),
})
export type ClusterReply = z.infer<typeof clusterReplySchema>
export type ClusterReplyBody = Omit<ClusterReply, 'id' | 'type' | 'nodeId'>

export interface ClusterHost {
  readonly nodeId: string
  readonly address: string
  readonly authToken?: string
  readonly logger: Logger
  epoch(): number
  onRequest(request: ClusterRequest): Promise<ClusterReplyBody>
}

export class Peer {
  /** Node id at the other end, once the hello exchange told us. */
  nodeId: string | null = null
  /** Where clients reach it. */
  clientAddr: string | null = null
  ws: WebSocket | null = null
  connected = false
  /** Monotonic ms of the last reply from it. */
  lastReplyAt = 0
  isSelf = false
  private readonly pending = new Map<number, { resolve: (r: ClusterReply) => void; timer: NodeJS.Timeout }>()
  private retry: NodeJS.Timeout | null = null
  private nextId = 1

  constructor(
    readonly route: string,
    private readonly host: ClusterHost,
    private readonly now: () => number,
  ) {}

  connect(): void {
    if (this.isSelf || this.ws) return
    const headers: Record<string, string> = {}
    if (this.host.authToken) headers.authorization = `Bearer ${this.host.authToken}`
    const ws = new WebSocket(`ws://${this.route}/cluster`, {
      headers,
      perMessageDeflate: false,
      handshakeTimeout: 2000,
    })
    this.ws = ws
    ws.on('open', () => {
      this.request({ type: 'hello', nodeId: this.host.nodeId, epoch: this.host.epoch() }, 2000).then((reply) => {
        // Without the hello this route cannot be tied to a node id (and so
        // would not be used to follow it): start over.
        if (!reply) {
          ws.terminate()
          return
        }
        if (reply.nodeId === this.host.nodeId) {
          this.isSelf = true
          ws.close()
          return
        }
        this.nodeId = reply.nodeId
        this.clientAddr = reply.clientAddr ?? null
        this.connected = true
      })
    })
    ws.on('message', (data) => {
      let reply: ClusterReply
      try {
        reply = clusterReplySchema.parse(decodeFrame(data as Buffer))
      } catch {
        ws.terminate()
        return
      }
      this.lastReplyAt = this.now()
      const waiter = this.pending.get(reply.id)
      if (waiter) {
        this.pending.delete(reply.id)
        clearTimeout(waiter.timer)
        waiter.resolve(reply)
      }
    })
    ws.on('error', () => {})
    ws.on('close', () => {
      this.ws = null
      this.connected = false
      for (const [id, w] of this.pending) {
        clearTimeout(w.timer)
        this.pending.delete(id)
        w.resolve(undefined as unknown as ClusterReply)
      }
      if (!this.isSelf && !this.closed) this.retry = setTimeout(() => this.connect(), 200)
    })
  }

  /** Sends a request; resolves with the reply, or undefined on timeout or a lost link. */
  request(body: ClusterRequestBody, timeoutMs: number): Promise<ClusterReply | undefined> {
    const ws = this.ws
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.resolve(undefined)
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

  constructor(
    routes: string[],
    private readonly host: ClusterHost,
    now: () => number,
  ) {
    this.peers = [...new Set(routes)].filter((r) => r !== host.address).map((route) => new Peer(route, host, now))
  }

  start(): void {
    for (const p of this.peers) p.connect()
  }

  /** Members of the group, this node included. */
  get size(): number {
    return this.peers.filter((p) => !p.isSelf).length + 1
  }

  get majority(): number {
    return Math.floor(this.size / 2) + 1
  }

  others(): Peer[] {
    return this.peers.filter((p) => !p.isSelf)
  }

  byNodeId(nodeId: string): Peer | undefined {
    return this.peers.find((p) => p.nodeId === nodeId && !p.isSelf)
  }

  /** Serves one inbound member connection. */
  accept(ws: WebSocket): void {
    ws.on('message', (data) => {
      let request: ClusterRequest
      try {
        request = clusterRequestSchema.parse(decodeFrame(data as Buffer))
      } catch {
        ws.close(1007, 'invalid cluster message')
        return
      }
      this.host.onRequest(request).then(
        (body) => {
          if (ws.readyState === WebSocket.OPEN) {
            ws.send(encodeFrame({ id: request.id, type: 'reply', nodeId: this.host.nodeId, ...body }))
          }
        },
        (err) => this.host.logger.warn('cluster request failed', { type: request.type, err }),
      )
    })
    ws.on('error', () => {})
  }

  close(): void {
    for (const p of this.peers) p.close()
  }
}
