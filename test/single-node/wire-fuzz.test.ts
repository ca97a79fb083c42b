import { connect } from 'node:net'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { TandemClient, type Value } from '@tandem/client'
import { prng } from '@tandem/protocol'
import { afterAll, describe, expect, it } from 'vitest'
import { type NodeProcess, startNode } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'
import { HandRolledSocket, pack, RawClient } from './raw-client.js'

/**
 * Wire fuzz: rounds of hostile and broken clients against one real node,
 * mixed at random from a seed: malformed and oversized frames, requests
 * of every op with fields of the wrong type or bytes that are not UTF-8,
 * mgets and pipelined gets whose replies pass the frame limit, clients
 * that never read what they asked for, sockets left half-open in the
 * middle of a frame or of the HTTP handshake. Between rounds a checker
 * reads back every key it wrote (values exact, type kept) and reads the
 * bounds the node reports in status.clients: the reply bytes a connection
 * held never pass the reply budget (or the frame limit), frames still
 * arriving never pass their budget. At the end every hostile connection is
 * gone and the node holds nothing for them.
 *
 * Replay a failure with TANDEM_WIRE_FUZZ_SEED=<seed printed>. A longer run:
 * TANDEM_WIRE_FUZZ_LONG=1 (or TANDEM_WIRE_FUZZ_ROUNDS=N).
 */
const SEED = Number(process.env.TANDEM_WIRE_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31))
const ROUNDS = Number(process.env.TANDEM_WIRE_FUZZ_ROUNDS ?? (process.env.TANDEM_WIRE_FUZZ_LONG ? 300 : 12))

const KiB = 1024
const MiB = 1024 * KiB
const TOKEN = 'fuzz-token'
const LIMITS = {
  frame: 2 * MiB,
  value: 512 * KiB,
  replyBudget: 1 * MiB,
  partial: 4 * MiB,
  frameTimeoutMs: 1500,
}
/** Reply bytes a connection may hold: the larger of the budget and a frame, plus one error reply. */
const REPLY_BOUND = Math.max(LIMITS.replyBudget, LIMITS.frame) + 64 * KiB
/** Bytes of frames arriving the node may hold: the budget plus one socket read. */
const PARTIAL_BOUND = LIMITS.partial + 64 * KiB
/** Close codes the contract allows for a connection the node hangs up on. */
const CLOSE_CODES = new Set([1003, 1007, 1008, 1009, 1013, 4401])

interface ClientsStatus {
  connections: number
  replyBytes: number
  peakReplyBytes: number
  partialFrameBytes: number
  peakPartialFrameBytes: number
}

type Random = () => number

/** Something hostile or broken, running until stopped. */
interface Actor {
  what: string
  stop(): void
}

describe('wire fuzz', () => {
  const dir = tempDir()
  let node: NodeProcess
  const actors: Actor[] = []
  const closeCodes: number[] = []
  afterAll(async () => {
    for (const a of actors.splice(0)) a.stop()
    await node?.stop()
    dir.remove()
  })

  async function clientsOf(): Promise<ClientsStatus> {
    const res = await fetch(`http://${node.address}/status`, { headers: { authorization: `Bearer ${TOKEN}` } })
    return ((await res.json()) as { clients: ClientsStatus }).clients
  }

  it(
    `${ROUNDS} rounds of malformed frames, oversized replies, non-reading and half-open clients (seed ${SEED})`,
    async () => {
      console.log(`wire fuzz: seed ${SEED}, ${ROUNDS} rounds (replay with TANDEM_WIRE_FUZZ_SEED=${SEED})`)
      const random = prng(SEED)
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]
      node = await startNode(dir.path, [
        '--auth-token',
        TOKEN,
        '--max-frame-bytes',
        String(LIMITS.frame),
        '--max-value-bytes',
        String(LIMITS.value),
        '--max-reply-buffer-bytes',
        String(LIMITS.replyBudget),
        '--max-partial-frame-bytes',
        String(LIMITS.partial),
        '--frame-timeout',
        String(LIMITS.frameTimeoutMs),
        '--auth-timeout',
        '1000',
        '--max-in-flight',
        '256',
      ])
      const db = await TandemClient.connect({
        servers: [node.address],
        authToken: TOKEN,
        maxFrameBytes: LIMITS.frame,
        timeoutMs: 20_000,
        // The node is flooded on purpose: this client checks its data, and a
        // liveness drop while the node is busy would be noise, not a finding.
        livenessTimeoutMs: 10_000,
      })
      try {
        // Known keys: every kind of value, and large ones to make replies heavy.
        const known = new Map<string, Value>()
        const write = async (key: string, value: Value) => {
          await db.put(key, value)
          known.set(key, value)
        }
        for (let i = 0; i < 40; i++) await write(`known:${i}`, randomValue(random, i < 4 ? 300 * KiB : 2 * KiB))
        await write('known:big', 'B'.repeat(LIMITS.value - 64))

        const failures: string[] = []
        // Between rounds a sample of the keys, at the end all of them.
        const check = async (round: number, all = false) => {
          if (!node.running) failures.push(`round ${round}: the node exited (${node.exitCode ?? node.exitSignal})`)
          for (const [key, value] of known) {
            if (!all && random() > 0.2) continue
            const got = await db.get(key)
            if (!sameValue(got, value))
              failures.push(`round ${round}: ${key} read back ${show(got)}, wrote ${show(value)}`)
          }
          const keys = [...known.keys()].filter(() => random() < 0.1)
          const values = await db.mget(keys)
          keys.forEach((k, i) => {
            if (!sameValue(values[i], known.get(k)))
              failures.push(`round ${round}: mget ${k} read back ${show(values[i])}`)
          })
          const clients = await clientsOf()
          if (clients.peakReplyBytes > REPLY_BOUND) {
            failures.push(
              `round ${round}: a connection held ${clients.peakReplyBytes} reply bytes (bound ${REPLY_BOUND})`,
            )
          }
          if (clients.peakPartialFrameBytes > PARTIAL_BOUND) {
            failures.push(
              `round ${round}: frames arriving held ${clients.peakPartialFrameBytes} bytes (bound ${PARTIAL_BOUND})`,
            )
          }
        }

        const kinds = [
          'malformed',
          'fields',
          'notUtf8',
          'oversizedFrame',
          'oversizedReply',
          'nonReader',
          'halfOpenFrame',
          'halfOpenHandshake',
          'silentTcp',
          'unauthenticated',
        ] as const
        const counts = new Map<string, number>()
        const started = Date.now()
        for (let round = 0; round < ROUNDS; round++) {
          // Stop some of what is running, start some more.
          for (let i = actors.length - 1; i >= 0; i--) if (random() < 0.5) actors.splice(i, 1)[0].stop()
          const starting = 2 + Math.floor(random() * 4)
          await Promise.all(
            Array.from({ length: starting }, async () => {
              const kind = pick(kinds)
              counts.set(kind, (counts.get(kind) ?? 0) + 1)
              const actor = await startActor(kind, random, node.address, {
                onClose: (code) => closeCodes.push(code),
                onViolation: (what) => failures.push(`round ${round}: ${kind}: ${what}`),
              }).catch((err: unknown) => ({ what: `${kind} (could not start: ${String(err)})`, stop() {} }))
              actors.push(actor)
            }),
          )
          // The checker writes while they run.
          await write(`known:r${round}`, randomValue(random, round % 3 === 0 ? 200 * KiB : 512))
          await check(round)
          console.log(`wire fuzz: round ${round} done at ${Date.now() - started} ms, ${actors.length} actors running`)
          if (failures.length > 0) break
        }

        for (const a of actors.splice(0)) a.stop()
        await waitFor(
          async () => {
            const c = await clientsOf()
            return c.connections === 1 && c.partialFrameBytes === 0 && c.replyBytes === 0
          },
          { what: 'every hostile connection to be gone and its bytes forgotten', timeoutMs: 30_000 },
        )
        await check(ROUNDS, true)
        const clients = await clientsOf()
        console.log(
          `wire fuzz: seed ${SEED}; actors ${JSON.stringify(Object.fromEntries(counts))}; close codes ${JSON.stringify(countOf(closeCodes))}; ` +
            `peak reply bytes ${clients.peakReplyBytes} (bound ${REPLY_BOUND}), peak partial frame bytes ${clients.peakPartialFrameBytes} (bound ${PARTIAL_BOUND})`,
        )
        expect(failures, `replay with TANDEM_WIRE_FUZZ_SEED=${SEED}`).toEqual([])
        expect(
          closeCodes.filter((c) => !CLOSE_CODES.has(c) && c !== 1005 && c !== 1006),
          `replay with TANDEM_WIRE_FUZZ_SEED=${SEED}`,
        ).toEqual([])
        expect(node.running).toBe(true)
      } catch (err) {
        console.log(`wire fuzz failed: replay with TANDEM_WIRE_FUZZ_SEED=${SEED}`)
        throw err
      } finally {
        await db.close()
      }
    },
    60_000 + ROUNDS * 10_000,
  )
})

/** A value of about `size` bytes: a string (ASCII, or with astral characters and U+FFFD) or binary. */
function randomValue(random: Random, size: number): Value {
  const n = Math.max(1, Math.floor(size * (0.5 + random() / 2)))
  const kind = Math.floor(random() * 3)
  if (kind === 0) return Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)))
  if (kind === 1) return 'v'.repeat(n)
  const alphabet = ['a', 'é', '\uFFFD', '\uD83D\uDE00', '\u0000', ' ']
  return Array.from({ length: Math.ceil(n / 4) }, () => alphabet[Math.floor(random() * alphabet.length)]).join('')
}

function sameValue(a: Value | undefined, b: Value | undefined): boolean {
  if (a === undefined || b === undefined) return a === b
  if (typeof a === 'string' || typeof b === 'string') return a === b
  return Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0
}

function show(v: Value | undefined): string {
  if (v === undefined) return 'nothing'
  return typeof v === 'string' ? `a string of ${v.length}` : `${v.byteLength} bytes`
}

function countOf(xs: number[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const x of xs) out[x] = (out[x] ?? 0) + 1
  return out
}

/** A random value of a random msgpack type, for fields of the wrong type. */
function junk(random: Random, depth = 0): unknown {
  switch (Math.floor(random() * (depth > 2 ? 6 : 8))) {
    case 0:
      return Math.floor(random() * 2 ** 40) * (random() < 0.5 ? -1 : 1)
    case 1:
      return random() * 1e6
    case 2:
      return 'x'.repeat(Math.floor(random() * 300))
    case 3:
      return Buffer.alloc(Math.floor(random() * 300), 0xc1)
    case 4:
      return random() < 0.5 ? null : random() < 0.5
    case 5:
      return 'known:0'
    case 6:
      return Array.from({ length: Math.floor(random() * 4) }, () => junk(random, depth + 1))
    default:
      return { [`f${Math.floor(random() * 10)}`]: junk(random, depth + 1) }
  }
}

const OPS = ['auth', 'ping', 'get', 'mget', 'put', 'del', 'batch', 'scan', 'status', 'wait', 'nonsense']
/**
 * Fields a request may carry. Not `epoch`: like promote and replicaof it is
 * obeyed (a master steps down for a newer epoch a client has seen), so a
 * random one would fence the node, as designed.
 */
const FIELDS = ['key', 'keys', 'value', 'ops', 'w', 'timeoutMs', 'prefix', 'gt', 'lt', 'limit', 'replicas', 'token']

/** A request of a random op whose fields hold random things (never promote or replicaof: admin ops are obeyed). */
function fieldFuzz(random: Random, id: number): Record<string, unknown> {
  const request: Record<string, unknown> = { id, op: OPS[Math.floor(random() * OPS.length)] }
  for (const f of FIELDS) if (random() < 0.3) request[f] = junk(random)
  // Keys the fuzz writes never collide with the checker's.
  if (typeof request.key === 'string') request.key = `fz:${request.key}`
  if (request.op === 'put' || request.op === 'del' || request.op === 'batch') {
    if (typeof request.key !== 'string') request.key = `fz:${id}`
    if (Array.isArray(request.ops)) request.ops = []
  }
  return request
}

/** Bytes that are not one whole msgpack value, or not a request. */
function malformed(random: Random): Buffer | string {
  switch (Math.floor(random() * 7)) {
    case 0:
      return Buffer.from(Array.from({ length: Math.floor(random() * 64) }, () => Math.floor(random() * 256)))
    case 1:
      return '{"id":1,"op":"ping"}'
    case 2:
      return Buffer.alloc(0)
    case 3:
      return pack(junk(random))
    case 4: {
      const good = pack({ id: 1, op: 'get', key: 'known:1' })
      return good.subarray(0, Math.floor(random() * good.length))
    }
    case 5: {
      // Deep nesting.
      const depth = 100 + Math.floor(random() * 2000)
      return Buffer.concat([Buffer.alloc(depth, 0x91), Buffer.from([0xc0])])
    }
    default:
      return pack({ id: 1, op: 'x'.repeat(100_000 + Math.floor(random() * 500_000)) })
  }
}

/** A frame with a request whose strings were written as bytes that are not UTF-8. */
function notUtf8(random: Random, id: number): Buffer {
  const request = pick(random, [
    { id, op: 'put', key: 'fz:MARK', value: 'v' },
    { id, op: 'put', key: 'fz:k', value: 'MARK' },
    { id, op: 'get', key: 'MARK' },
    { id, op: 'mget', keys: ['known:1', 'MARK'] },
    { id, op: 'batch', ops: [{ type: 'put', key: 'fz:MARK', value: 'v' }] },
    { id, op: 'scan', prefix: 'MARK' },
  ])
  const frame = Buffer.from(pack(request))
  for (let at = frame.indexOf('MARK'); at >= 0; at = frame.indexOf('MARK', at + 1)) {
    Buffer.from([0xed, 0xa0, 0x80, 0x41]).copy(frame, at)
  }
  return frame
}

function pick<T>(random: Random, xs: readonly T[]): T {
  return xs[Math.floor(random() * xs.length)]
}

interface ActorHooks {
  /** The node closed the actor's socket with this code. */
  onClose(code: number): void
  /** The actor saw the node break the contract. */
  onViolation(what: string): void
}

async function authed(address: string, onClose: (code: number) => void): Promise<RawClient> {
  const raw = await RawClient.open(address, { headers: { authorization: `Bearer ${TOKEN}` } })
  raw.ws.on('close', (code: number) => onClose(code))
  return raw
}

/** Starts one actor of `kind`; it runs in the background until stop(). */
async function startActor(kind: string, random: Random, address: string, hooks: ActorHooks): Promise<Actor> {
  const onClose = (code: number) => hooks.onClose(code)
  const seed = Math.floor(random() * 2 ** 31)
  const r = prng(seed)
  let stopped = false
  const loop = (step: () => Promise<boolean | undefined> | boolean | undefined) => {
    void (async () => {
      while (!stopped) {
        if ((await step()) === false) return
        await new Promise((resolve) => setTimeout(resolve, 5 + r() * 40))
      }
    })().catch((err: unknown) => hooks.onViolation(String(err)))
  }
  switch (kind) {
    case 'malformed': {
      const raw = await authed(address, onClose)
      loop(() => {
        if (!raw.isOpen) return false
        raw.sendRaw(malformed(r))
      })
      return {
        what: kind,
        stop: () => {
          stopped = true
          raw.terminate()
        },
      }
    }
    case 'fields':
    case 'notUtf8': {
      const raw = await authed(address, onClose)
      let id = 1
      loop(() => {
        if (!raw.isOpen) return false
        const n = 1 + Math.floor(r() * 20)
        const frames = Array.from({ length: n }, () =>
          kind === 'fields' ? pack(fieldFuzz(r, id++)) : notUtf8(r, id++),
        )
        for (const f of frames) raw.sendRaw(f)
      })
      return {
        what: kind,
        stop: () => {
          stopped = true
          raw.terminate()
        },
      }
    }
    case 'oversizedFrame': {
      const raw = await authed(address, onClose)
      raw.send({ id: 1, op: 'put', key: 'fz:huge', value: Buffer.alloc(LIMITS.frame + 1 + Math.floor(r() * MiB)) })
      return {
        what: kind,
        stop: () => {
          stopped = true
          raw.terminate()
        },
      }
    }
    case 'oversizedReply': {
      // mgets past the frame limit, and pipelined gets of large values it reads.
      const raw = await authed(address, onClose)
      let id = 1
      loop(() => {
        if (!raw.isOpen) return false
        if (r() < 0.5) raw.send({ id: id++, op: 'mget', keys: Array(8 + Math.floor(r() * 40)).fill('known:big') })
        else
          raw.send(Array.from({ length: 4 + Math.floor(r() * 20) }, () => ({ id: id++, op: 'get', key: 'known:big' })))
        const over = raw.frameSizes.find((s) => s > LIMITS.frame)
        if (over !== undefined) throw new Error(`a frame of ${over} bytes left the node`)
      })
      return {
        what: kind,
        stop: () => {
          stopped = true
          raw.terminate()
        },
      }
    }
    case 'nonReader': {
      const raw = await authed(address, onClose)
      raw.tcp.pause()
      let id = 1
      loop(async () => {
        if (raw.ws.bufferedAmount > 2 * MiB) return
        raw.send(Array.from({ length: 200 }, () => ({ id: id++, op: 'get', key: pick(r, ['known:big', 'known:0']) })))
        await nextTurn()
      })
      return {
        what: kind,
        stop: () => {
          stopped = true
          raw.terminate()
        },
      }
    }
    case 'halfOpenFrame': {
      // Most of a frame, then silence (or the socket dropped without a close).
      const s = await HandRolledSocket.open(address, { authorization: `Bearer ${TOKEN}` })
      const size = 64 * KiB + Math.floor(r() * LIMITS.frame * 0.9)
      s.startFrame(size, Math.floor(size * r()))
      void s.closed(60_000).then(
        (code) => code !== null && onClose(code),
        () => {},
      )
      if (r() < 0.3) s.destroy()
      return { what: kind, stop: () => s.destroy() }
    }
    case 'halfOpenHandshake': {
      const socket = connect(Number(address.split(':')[1]), '127.0.0.1')
      socket.on('error', () => {})
      socket.write(`GET / HTTP/1.1\r\nHost: ${address}\r\nUpgrade: websocket\r\n`)
      return { what: kind, stop: () => socket.destroy() }
    }
    case 'silentTcp': {
      const socket = connect(Number(address.split(':')[1]), '127.0.0.1')
      socket.on('error', () => {})
      return { what: kind, stop: () => socket.destroy() }
    }
    default: {
      // unauthenticated: connected, never shows the token (closed after --auth-timeout).
      const s = await HandRolledSocket.open(address)
      void s.closed(60_000).then(
        (code) => code !== null && onClose(code),
        () => {},
      )
      return { what: kind, stop: () => s.destroy() }
    }
  }
}
