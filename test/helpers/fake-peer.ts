import { randomBytes } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { decodeFrame, encodeFrame } from '@tandem/protocol'
import { WebSocketServer } from 'ws'

/**
 * An impostor at a node's address: a WebSocket server that speaks tandem's
 * link protocols as an attacker without the token would. It records every
 * request header and frame it receives, so a test can check that nothing
 * secret reached it.
 *
 * - On /replication it challenges the downstream, answers its hello with a
 *   welcome whose proof is `proof` (random bytes, or null as a node without
 *   a token sends), then a forged full sync: `forged` keys at `epoch`.
 * - On /cluster it challenges the member, answers its hello "ok" with a
 *   random proof, and answers every other request "ok" too (a vote, a
 *   heartbeat), counting them.
 */
export interface FakePeerOptions {
  port: number
  proof: 'random' | 'null'
  forged?: Record<string, string>
  epoch?: number
}

export class FakePeer {
  readonly headers: IncomingHttpHeaders[] = []
  readonly frames: Buffer[] = []
  hellos = 0
  /** Requests other than hello that a cluster member sent (heartbeats, votes). */
  clusterRequests = 0
  connections = 0
  private wss!: WebSocketServer

  constructor(readonly options: FakePeerOptions) {}

  async listen(): Promise<this> {
    this.wss = new WebSocketServer({ host: '127.0.0.1', port: this.options.port })
    await new Promise<void>((resolve, reject) => {
      this.wss.once('listening', resolve)
      this.wss.once('error', reject)
    })
    this.wss.on('connection', (ws, req) => {
      this.connections++
      this.headers.push(req.headers)
      const proof = () => (this.options.proof === 'random' ? randomBytes(32) : null)
      ws.send(encodeFrame({ type: 'challenge', nonce: randomBytes(32) }))
      ws.on('error', () => {})
      ws.on('message', (data) => {
        this.frames.push(data as Buffer)
        let message: { type?: string; id?: number }
        try {
          message = decodeFrame(data as Buffer) as typeof message
        } catch {
          return
        }
        if (req.url?.startsWith('/cluster')) {
          if (message.type !== 'hello') this.clusterRequests++
          if (message.type === 'hello') this.hellos++
          const reply = { id: message.id, type: 'reply', nodeId: 'impostor', epoch: 1_000, ok: true, proof: proof() }
          ws.send(encodeFrame(reply))
          return
        }
        if (message.type !== 'hello') return
        this.hellos++
        ws.send(encodeFrame({ type: 'welcome', proof: proof() }))
        this.sendForgedFullSync(ws)
      })
    })
    return this
  }

  private sendForgedFullSync(ws: import('ws').WebSocket): void {
    const forged = Object.entries(this.options.forged ?? { forged: 'by the impostor' })
    const epoch = this.options.epoch ?? 99
    const history = [{ epoch, startSeq: 1, by: 'impostor' }]
    ws.send(encodeFrame({ type: 'fullsync', seq: 1, history, master: null, rollbackAfter: null }))
    ws.send(encodeFrame({ type: 'snapshot', chunk: chunkOf(forged), count: forged.length }))
    ws.send(encodeFrame({ type: 'snapshotEnd', seq: 1 }))
  }

  /** Whether `secret` appears in any header or frame received. */
  saw(secret: string): boolean {
    if (this.headers.some((h) => JSON.stringify(h).includes(secret))) return true
    return this.frames.some((f) => f.includes(Buffer.from(secret)))
  }

  close(): Promise<void> {
    for (const client of this.wss.clients) client.terminate()
    return new Promise((resolve) => this.wss.close(() => resolve()))
  }
}

/** A snapshot chunk as the replication protocol lays it out: u32 key length, key, u32 record length, record. */
function chunkOf(entries: [string, string][]): Buffer {
  const parts: Buffer[] = []
  for (const [key, value] of entries) {
    const k = Buffer.from(key)
    const record = Buffer.concat([Buffer.from([0]), Buffer.from(value)])
    const head = Buffer.alloc(4)
    head.writeUInt32BE(k.length)
    const recordHead = Buffer.alloc(4)
    recordHead.writeUInt32BE(record.length)
    parts.push(head, k, recordHead, record)
  }
  return Buffer.concat(parts)
}
