import { isUtf8 } from 'node:buffer'
import { type Request, type ScanPage, TandemError, type Value } from '@tandem/protocol'
import { checkLimits, handle } from '../api/handlers.js'
import type { Config } from '../config.js'
import type { TandemNode } from '../node.js'
import { OP_PUT } from '../storage/log-entry.js'
import { TextBytes, type WriteValue } from '../storage/text-bytes.js'
import { joinHostPort, splitHostPort } from './address.js'
import { MapReply, OK, PushReply, Replies, type Reply, SetReply, SimpleString, VerbatimReply } from './encoder.js'
import { invalid, PrefixedError, SYNTAX_ERROR, wrongArity } from './errors.js'
import type { GetBatch } from './get-batch.js'
import { compileGlob } from './glob.js'
import { infoSections, REDIS_VERSION, renderInfo, roleReply } from './info.js'
import type { KeyLocks } from './key-locks.js'
import type { PubSub, Subscriber } from './pubsub.js'
import type { ScanCursors } from './scan-cursors.js'
import { sentinelCommand } from './sentinel.js'
import { expireCommand, persistCommand, setCommand, setnxCommand, ttlCommand } from './set-command.js'
import { probeTandemAddress } from './tandem-address.js'

/**
 * The Redis commands tandem answers. Each one that touches data is
 * translated into the same request the WebSocket API takes and runs
 * through the same checkLimits() and handle() (api/handlers.ts): one place
 * decides limits, roles (READONLY, NOMASTER, FENCED), read consistency and
 * write concerns for both front ends.
 *
 * Keys are UTF-8 text in tandem (the SDK's keys are strings); a RESP key
 * that is not valid UTF-8 is refused with ERR rather than mapped, since no
 * mapping could keep it distinct from every string key. Values are
 * binary-safe: bytes that are valid UTF-8 are stored as a string (the SDK
 * reads them as one), anything else as binary, and both read back through
 * RESP as the very bytes that were written.
 */

/** How a command is ordered against the others of its connection (see RespConnection). */
export type CommandKind = 'read' | 'write' | 'barrier' | 'local'

export interface RespSession extends Subscriber {
  readonly id: number
  resp3: boolean
  name: string | null
  authenticated: boolean
  readonly remoteAddress: string
  readonly createdAt: number
  /** Closes the connection once the replies so far are written (QUIT). */
  closeAfterReplies(): void
  /** Restores the state of a new connection (RESET). */
  reset(): void
  setLimitsForAuth(): void
}

export interface RespHost {
  readonly node: TandemNode
  readonly config: Config
  readonly cursors: ScanCursors
  readonly pubsub: PubSub
  readonly version: string
  /** The port this front end listens on. */
  readonly respPort: number
  readonly stats: { connections: number; commands: number }
  /** Reads the GETs of all connections together, once per turn. */
  readonly gets: GetBatch
  clientCount(): number
  clients(): RespSession[]
  tokenMatches(token: string): boolean
  /** Read-then-write commands (SET ... GET) on one key run one at a time. */
  readonly keyLocks: KeyLocks
  /** Adds `delta` to the bytes of input all RESP connections hold; returns the new total. */
  holdInput(delta: number): number
  /** With TLS, how this node checks the RESP ports it dials (REPLICAOF asks its target over RESP). */
  readonly peerTls: { ca?: Buffer } | undefined
}

export interface CommandContext {
  host: RespHost
  session: RespSession
}

export interface CommandSpec {
  name: string
  /** Redis arity: N exactly N arguments (the name included), -N at least N. */
  arity: number
  /** Redis command flags, for COMMAND. */
  flags: string[]
  /** First key, last key, step, for COMMAND. */
  keys: [number, number, number]
  kind: CommandKind
  /** The metrics label (tandem's op where the command is one). */
  op: string
  /** Allowed before AUTH. */
  noAuth?: boolean
  /** Allowed in RESP2 subscribed mode. */
  inSubscribe?: boolean
  run(ctx: CommandContext, args: Buffer[]): Reply | Promise<Reply>
}

// ---- argument helpers -------------------------------------------------------

const NOT_UTF8_KEY = 'tandem keys are UTF-8 text; this key is not valid UTF-8'

function key(arg: Buffer): string {
  if (!isUtf8(arg)) throw invalid(NOT_UTF8_KEY)
  return arg.toString('utf8')
}

function value(arg: Buffer): Value {
  return isUtf8(arg) ? arg.toString('utf8') : Buffer.from(arg)
}

function text(arg: Buffer): string {
  return arg.toString('utf8')
}

function lower(arg: Buffer | undefined): string {
  return arg === undefined ? '' : arg.toString('latin1').toLowerCase()
}

function integer(arg: Buffer, what = 'value is not an integer or out of range'): number {
  const s = arg.toString('latin1')
  if (!/^-?\d{1,16}$/.test(s)) throw invalid(what)
  return Number(s)
}

/** Runs one tandem request through the shared validation and dispatch. */
function run(host: RespHost, req: Request): unknown {
  checkLimits(req, host.config)
  return handle(host.node, req, host.config)
}

const ID = 0

// ---- data commands ------------------------------------------------------------

function getCommand(ctx: CommandContext, args: Buffer[]): Promise<Reply> {
  return handle(
    ctx.host.node,
    { id: ID, op: 'get', key: getKey(ctx.host, args[1]) },
    ctx.host.config,
  ) as Promise<Value | null>
}

function getKey(host: RespHost, arg: Buffer): string {
  checkGetKey(host, arg)
  return arg.toString('utf8')
}

/** Whether every byte is ASCII (then the bytes are UTF-8 too): a loop cheaper than isUtf8's native call for a short key. */
function isAscii(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] > 0x7f) return false
  return true
}

/**
 * Throws unless a GET's key passes GET's checks (UTF-8, --max-key-bytes):
 * a connection hands a pipelined run of GETs to the front end's GetBatch
 * once each key has passed this, as the argument's bytes (no string made).
 * The limit is checked on those bytes, which are the key's UTF-8: the
 * same test and message as checkLimits, without building a request.
 */
export function checkGetKey(host: RespHost, arg: Buffer): void {
  if (!isAscii(arg) && !isUtf8(arg)) throw invalid(NOT_UTF8_KEY)
  if (arg.length > host.config.maxKeyBytes) throw keyTooLarge(arg.length, host.config.maxKeyBytes)
}

function keyTooLarge(bytes: number, limit: number): TandemError {
  return new TandemError('TOOLARGE', `key is ${bytes} bytes; the limit is ${limit}`)
}

/** No write concern, no condition: a plain SET's options. */
const PLAIN_PUT = Object.freeze({})

/**
 * SET key value with no options, the bulk of a write load: checked as
 * checkLimits checks a put (on the arguments' bytes, the key's and the
 * value's UTF-8 or binary length) and handed to the node's put directly,
 * without a request object, the option parsing of setCommand, or a step
 * through handle(). Resolves when the put is committed; its reply is OK.
 */
function plainSet(host: RespHost, keyArg: Buffer, valueArg: Buffer): Promise<unknown> {
  const op = plainSetOp(host, keyArg, valueArg)
  return host.node.put(op[1], op[2], PLAIN_PUT)
}

/** A plain SET checked as plainSet checks it, as the put op it writes (for node.putEach); throws what plainSet would. */
export function plainSetOp(host: RespHost, keyArg: Buffer, valueArg: Buffer): [typeof OP_PUT, string, WriteValue] {
  const k = key(keyArg)
  const config = host.config
  if (keyArg.length > config.maxKeyBytes) throw keyTooLarge(keyArg.length, config.maxKeyBytes)
  if (valueArg.length > config.maxValueBytes) {
    throw new TandemError('TOOLARGE', `value is ${valueArg.length} bytes; the limit is ${config.maxValueBytes}`)
  }
  return [OP_PUT, k, setValue(valueArg)]
}

/**
 * A SET's value: valid UTF-8 is a string, carried as its bytes (TextBytes)
 * to the record and the log entry, which write those same bytes; else
 * bytes, copied out of the read they arrived in like value() does.
 */
function setValue(arg: Buffer): WriteValue {
  return isUtf8(arg) ? new TextBytes(arg) : Buffer.from(arg)
}

const replyOk = (): Reply => OK

async function mgetCommand(ctx: CommandContext, args: Buffer[]): Promise<Reply> {
  const keys = args.slice(1).map(key)
  return (await run(ctx.host, { id: ID, op: 'mget', keys })) as (Value | null)[]
}

async function msetCommand(ctx: CommandContext, args: Buffer[]): Promise<Reply> {
  if (args.length % 2 !== 1) throw wrongArity('mset')
  const ops: { type: 'put'; key: string; value: Value }[] = []
  for (let i = 1; i < args.length; i += 2) ops.push({ type: 'put', key: key(args[i]), value: value(args[i + 1]) })
  await run(ctx.host, { id: ID, op: 'batch', ops })
  return OK
}

/**
 * DEL and UNLINK answer how many of the keys existed. tandem's delete does
 * not say, so the keys are read first and then all deleted in one atomic
 * batch; the count is as of that read (a concurrent writer on another
 * connection can make it off by its writes, never the deletes).
 */
async function delCommand(ctx: CommandContext, args: Buffer[]): Promise<Reply> {
  const keys = args.slice(1).map(key)
  const found = (await run(ctx.host, { id: ID, op: 'mget', keys })) as (Value | null)[]
  const unique = [...new Set(keys)]
  const existing = new Set(keys.filter((_, i) => found[i] !== null))
  if (existing.size === 0) return 0
  await run(ctx.host, { id: ID, op: 'batch', ops: unique.map((k) => ({ type: 'del' as const, key: k })) })
  return existing.size
}

async function existsCommand(ctx: CommandContext, args: Buffer[]): Promise<Reply> {
  const keys = args.slice(1).map(key)
  const found = (await run(ctx.host, { id: ID, op: 'mget', keys })) as (Value | null)[]
  return found.filter((v) => v !== null).length
}

const DEFAULT_SCAN_COUNT = 10
/** The most keys one SCAN reply holds, whatever COUNT says (the WebSocket API's page size). */
const MAX_SCAN_COUNT = 999

/**
 * SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]: in key order. A
 * pattern's literal prefix bounds the range read (`user:*` reads only the
 * `user:` keys); the rest of the pattern filters. COUNT is the number of
 * keys read per call, as in Redis, so a call may return fewer that match.
 */
async function scanCommand(ctx: CommandContext, args: Buffer[]): Promise<Reply> {
  const cursorText = args[1].toString('latin1')
  let match: string | null = null
  let count = DEFAULT_SCAN_COUNT
  let typeFilter: string | null = null
  for (let i = 2; i < args.length; i++) {
    const option = lower(args[i])
    if (i + 1 >= args.length) throw invalid(SYNTAX_ERROR)
    if (option === 'match') match = text(args[++i])
    else if (option === 'count') {
      count = integer(args[++i])
      if (count < 1) throw invalid(SYNTAX_ERROR)
    } else if (option === 'type') typeFilter = lower(args[++i])
    else throw invalid(SYNTAX_ERROR)
  }
  if (!/^\d+$/.test(cursorText)) throw invalid('invalid cursor')
  let after: string | undefined
  if (cursorText !== '0') {
    const position = ctx.host.cursors.get(cursorText)
    if (!position) {
      throw invalid('invalid cursor (tandem keeps SCAN cursors in memory for a while; scan again from 0)')
    }
    after = position.after
  }
  if (typeFilter !== null && typeFilter !== 'string') return ['0', []]
  const glob = match === null ? null : compileGlob(match)
  const limit = Math.min(count, MAX_SCAN_COUNT)
  const page = (await run(ctx.host, {
    id: ID,
    op: 'scan',
    ...(glob && glob.prefix !== '' ? { prefix: glob.prefix } : {}),
    ...(after !== undefined ? { gt: after } : {}),
    limit: limit + 1,
  })) as ScanPage
  let entries = page.entries
  let more = page.more
  if (entries.length > limit) {
    entries = entries.slice(0, limit)
    more = true
  }
  const keys = entries.map(([k]) => k).filter((k) => glob === null || glob.test(k))
  const next =
    more && entries.length > 0 ? ctx.host.cursors.open({ after: entries[entries.length - 1][0], match }) : '0'
  return [next, keys]
}

async function dbsizeCommand(ctx: CommandContext): Promise<Reply> {
  return ctx.host.node.countKeys()
}

// ---- replication commands ---------------------------------------------------------

async function infoCommand(ctx: CommandContext, args: Buffer[]): Promise<Reply> {
  const sections = infoSections(args.slice(1).map((a) => lower(a)))
  const host = ctx.host
  const keys = sections.includes('keyspace') && host.node.role !== 'witness' ? await host.node.countKeys() : undefined
  const body = renderInfo(
    {
      node: host.node,
      version: host.version,
      respPort: host.respPort,
      connectedClients: host.clientCount(),
      maxClients: host.config.maxConnections,
      totalConnections: host.stats.connections,
      totalCommands: host.stats.commands,
      logRetention: host.config.logRetention,
      keys,
    },
    sections,
  )
  return new VerbatimReply(body)
}

async function waitCommand(ctx: CommandContext, args: Buffer[]): Promise<Reply> {
  const replicas = integer(args[1])
  const timeout = integer(args[2], 'timeout is not an integer or out of range')
  if (replicas < 0 || timeout < 0) throw invalid('timeout is negative')
  // Redis waits forever on 0; tandem's longest wait is an hour.
  const timeoutMs = timeout === 0 ? 3_600_000 : Math.min(timeout, 3_600_000)
  return (await run(ctx.host, { id: ID, op: 'wait', replicas: Math.min(replicas, 1000), timeoutMs })) as number
}

/**
 * REPLICAOF host port: the address a Redis user knows is the upstream's
 * RESP port. When it is one this node knows (a fail-over member, a
 * replica, its upstream), it is replaced by that node's tandem address;
 * otherwise it is taken as the upstream's tandem address (--port).
 */
async function replicaofCommand(ctx: CommandContext, args: Buffer[]): Promise<Reply> {
  const host = text(args[1])
  const portText = text(args[2])
  if (host.toLowerCase() === 'no' && portText.toLowerCase() === 'one') {
    await run(ctx.host, { id: ID, op: 'replicaof', upstream: null })
    return OK
  }
  const port = integer(args[2], 'Invalid master port')
  if (port < 1 || port > 65535) throw invalid('Invalid master port')
  const given = joinHostPort(host, port)
  const upstream = tandemAddressOf(ctx.host.node, given) ?? (await askedTandemAddress(ctx.host, host, port))
  if (ctx.host.node.role === 'replica' && ctx.host.node.upstream === upstream) {
    return new SimpleString('OK Already connected to specified master')
  }
  await run(ctx.host, { id: ID, op: 'replicaof', upstream })
  return OK
}

/**
 * The tandem address behind an address this node does not know: a tandem
 * RESP port names it; an address that does not speak RESP (a tandem
 * --port) or does not answer is taken as it is, as Redis takes a master it
 * cannot reach yet; Redis, or a node that wants the token first, is refused.
 */
async function askedTandemAddress(host: RespHost, hostName: string, port: number): Promise<string> {
  const given = joinHostPort(hostName, port)
  const probe = await probeTandemAddress(hostName, port, {
    tls: host.peerTls,
    timeoutMs: host.config.tune.respProbeTimeoutMs,
    maxReplyBytes: host.config.tune.respProbeMaxReplyBytes,
  })
  switch (probe.kind) {
    case 'tandem':
      return probe.address
    case 'not-resp':
    case 'unreachable':
      return given
    case 'noauth':
      throw invalid(
        `${given} wants the token before it says its tandem address, and tandem sends its token to no address it does not know: REPLICAOF its tandem port (--port) instead`,
      )
    case 'not-tandem':
      throw invalid(`${given} is not tandem (${probe.server}): a tandem node replicates only from tandem`)
  }
}

function tandemAddressOf(node: TandemNode, respAddr: string): string | null {
  const target = splitHostPort(respAddr)
  const same = (addr: string | null | undefined) => {
    if (!addr) return false
    const a = splitHostPort(addr)
    return a.port === target.port && (a.host === target.host || (isLoopback(a.host) && isLoopback(target.host)))
  }
  for (const peer of node.failover?.cluster.others() ?? []) if (same(peer.respAddr)) return peer.route
  for (const r of node.upstreamSide.replicas()) if (same(r.respAddr)) return r.addr
  if (node.downstream && same(node.downstream.upstreamRespAddr)) return node.upstream
  return null
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.')
}

/**
 * FAILOVER: tandem's promote. Redis sends FAILOVER to the master, which
 * hands over to a replica; tandem's hand-over is started by the node that
 * is to become master, so FAILOVER goes to that node.
 */
async function failoverCommand(ctx: CommandContext, args: Buffer[]): Promise<Reply> {
  if (args.length > 1 && lower(args[1]) === 'abort') throw invalid('No failover in progress.')
  if (ctx.host.node.role === 'master') {
    throw invalid('this node is already the master; send FAILOVER to the replica that should take over')
  }
  await run(ctx.host, { id: ID, op: 'promote' })
  return OK
}

// ---- connection commands -------------------------------------------------------------

function authenticate(ctx: CommandContext, token: string): void {
  if (ctx.host.config.authToken === undefined) {
    throw invalid(
      'AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?',
    )
  }
  if (!ctx.host.tokenMatches(token)) {
    throw new PrefixedError('UNAUTHORIZED', 'WRONGPASS', 'invalid username-password pair or user is disabled.')
  }
  ctx.session.authenticated = true
  ctx.session.setLimitsForAuth()
}

function authCommand(ctx: CommandContext, args: Buffer[]): Reply {
  if (args.length > 3) throw invalid(SYNTAX_ERROR)
  // The user name (AUTH user token) is accepted and ignored: tandem has one token.
  authenticate(ctx, text(args[args.length - 1]))
  return OK
}

function helloCommand(ctx: CommandContext, args: Buffer[]): Reply {
  let proto: number | null = null
  if (args.length > 1) {
    proto = /^\d+$/.test(args[1].toString('latin1')) ? Number(args[1].toString('latin1')) : -1
    if (proto === -1) throw invalid('Protocol version is not an integer or out of range')
    if (proto !== 2 && proto !== 3) throw new PrefixedError('INVALID', 'NOPROTO', 'unsupported protocol version')
  }
  let name: string | null | undefined
  for (let i = 2; i < args.length; i++) {
    const option = lower(args[i])
    if (option === 'auth' && i + 2 < args.length) {
      authenticate(ctx, text(args[i + 2]))
      i += 2
    } else if (option === 'setname' && i + 1 < args.length) {
      name = text(args[++i])
    } else {
      throw invalid(`Syntax error in HELLO option '${text(args[i])}'`)
    }
  }
  if (!ctx.session.authenticated) {
    throw new TandemError(
      'UNAUTHORIZED',
      'HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time',
    )
  }
  if (proto !== null) ctx.session.resp3 = proto === 3
  if (name !== undefined) ctx.session.name = name
  const node = ctx.host.node
  return new MapReply([
    ['server', 'redis'],
    ['version', REDIS_VERSION],
    ['proto', ctx.session.resp3 ? 3 : 2],
    ['id', ctx.session.id],
    ['mode', node.role === 'witness' ? 'sentinel' : 'standalone'],
    [
      'role',
      node.role === 'master' || node.role === 'peer' ? 'master' : node.role === 'witness' ? 'sentinel' : 'replica',
    ],
    ['modules', []],
  ])
}

function clientCommand(ctx: CommandContext, args: Buffer[]): Reply {
  const sub = lower(args[1])
  const s = ctx.session
  switch (sub) {
    case 'id':
      return s.id
    case 'setname': {
      if (args.length !== 3) throw wrongArity('client|setname')
      const name = text(args[2])
      if (/[\s]/.test(name)) throw invalid('Client names cannot contain spaces, newlines or special characters.')
      s.name = name === '' ? null : name
      return OK
    }
    case 'getname':
      return s.name
    case 'setinfo':
      if (args.length !== 4) throw wrongArity('client|setinfo')
      return OK
    case 'info':
      return new VerbatimReply(`${clientLine(s, ctx.host.node.clock.wall())}\n`)
    case 'list':
      return new VerbatimReply(
        ctx.host
          .clients()
          .map((c) => `${clientLine(c, ctx.host.node.clock.wall())}\n`)
          .join(''),
      )
    case 'no-evict':
    case 'no-touch':
      return OK
    default:
      throw invalid(`unknown subcommand '${args[1] ? text(args[1]) : ''}'. Try CLIENT HELP.`)
  }
}

function clientLine(s: RespSession, wallMs: number): string {
  const age = Math.floor((wallMs - s.createdAt) / 1000)
  return `id=${s.id} addr=${s.remoteAddress} name=${s.name ?? ''} age=${age} db=0 sub=${s.channels.size} psub=${s.patterns.size} resp=${s.resp3 ? 3 : 2}`
}

function commandEntry(spec: CommandSpec): Reply {
  return [
    spec.name,
    spec.arity,
    new SetReply(spec.flags.map((f) => new SimpleString(f))),
    spec.keys[0],
    spec.keys[1],
    spec.keys[2],
    new SetReply([]),
    new SetReply([]),
    [],
    [],
  ]
}

function commandCommand(_ctx: CommandContext, args: Buffer[]): Reply {
  const sub = lower(args[1])
  if (args.length === 1) return [...COMMANDS.values()].map(commandEntry)
  switch (sub) {
    case 'count':
      return COMMANDS.size
    case 'docs':
      return new MapReply([])
    case 'info':
      return args.slice(2).map((a) => {
        const spec = COMMANDS.get(lower(a))
        return spec ? commandEntry(spec) : null
      })
    case 'list':
      return [...COMMANDS.keys()]
    default:
      throw invalid(`unknown subcommand '${text(args[1])}'. Try COMMAND HELP.`)
  }
}

/** CONFIG GET for the settings tools read (redis-benchmark asks for save and appendonly). */
function configCommand(ctx: CommandContext, args: Buffer[]): Reply {
  const sub = lower(args[1])
  if (sub === 'resetstat') return OK
  if (sub !== 'get')
    throw invalid(`CONFIG ${text(args[1])} is not supported; tandem is configured by tandem-server flags`)
  if (args.length < 3) throw wrongArity('config|get')
  const config = ctx.host.config
  const settings: [string, string][] = [
    ['save', ''],
    ['appendonly', 'yes'],
    ['appendfsync', config.sync === 'always' ? 'always' : config.sync === 'periodic' ? 'everysec' : 'no'],
    ['databases', '1'],
    ['maxclients', String(config.maxConnections)],
    ['proto-max-bulk-len', String(config.maxFrameBytes)],
    ['port', String(ctx.host.respPort)],
    ['replica-read-only', 'yes'],
    ['slave-read-only', 'yes'],
  ]
  const patterns = args.slice(2).map((a) => compileGlob(text(a).toLowerCase()))
  return new MapReply(settings.filter(([name]) => patterns.some((p) => p.test(name))))
}

function selectCommand(_ctx: CommandContext, args: Buffer[]): Reply {
  const db = integer(args[1])
  if (db !== 0) throw invalid('DB index is out of range')
  return OK
}

function pingCommand(ctx: CommandContext, args: Buffer[]): Reply {
  if (args.length > 2) throw wrongArity('ping')
  if (!ctx.session.resp3 && (ctx.session.channels.size > 0 || ctx.session.patterns.size > 0)) {
    return ['pong', args.length > 1 ? args[1] : '']
  }
  return args.length > 1 ? Buffer.from(args[1]) : new SimpleString('PONG')
}

function subscribeReplies(kind: string, names: (string | null)[], count: () => number, apply: (name: string) => void) {
  return new Replies(
    names.map((name) => {
      if (name !== null) apply(name)
      return new PushReply([kind, name, count()])
    }),
  )
}

const MAX_SUBSCRIPTIONS = 1024

function subscribeCommand(ctx: CommandContext, args: Buffer[], pattern: boolean): Reply {
  const s = ctx.session
  const names = args.slice(1).map(text)
  if (s.channels.size + s.patterns.size + names.length > MAX_SUBSCRIPTIONS) {
    throw new TandemError('TOOLARGE', `a connection may hold at most ${MAX_SUBSCRIPTIONS} subscriptions`)
  }
  const pubsub = ctx.host.pubsub
  return subscribeReplies(
    pattern ? 'psubscribe' : 'subscribe',
    names,
    () => s.channels.size + s.patterns.size,
    (name) => (pattern ? pubsub.psubscribe(s, name) : pubsub.subscribe(s, name)),
  )
}

function unsubscribeCommand(ctx: CommandContext, args: Buffer[], pattern: boolean): Reply {
  const s = ctx.session
  const pubsub = ctx.host.pubsub
  let names: (string | null)[] = args.slice(1).map(text)
  if (names.length === 0) names = pattern ? [...s.patterns.keys()] : [...s.channels]
  if (names.length === 0) names = [null]
  return subscribeReplies(
    pattern ? 'punsubscribe' : 'unsubscribe',
    names,
    () => s.channels.size + s.patterns.size,
    (name) => (pattern ? pubsub.punsubscribe(s, name) : pubsub.unsubscribe(s, name)),
  )
}

// ---- the table ------------------------------------------------------------------

type Spec = Omit<CommandSpec, 'name'>

const table: Record<string, Spec> = {
  get: { arity: 2, flags: ['readonly', 'fast'], keys: [1, 1, 1], kind: 'read', op: 'get', run: getCommand },
  set: {
    arity: -3,
    flags: ['write', 'denyoom'],
    keys: [1, 1, 1],
    kind: 'write',
    op: 'put',
    run: (ctx, args) =>
      args.length === 3
        ? plainSet(ctx.host, args[1], args[2]).then(replyOk)
        : setCommand(ctx, args, key(args[1]), value(args[2])),
  },
  setnx: {
    arity: 3,
    flags: ['write', 'denyoom', 'fast'],
    keys: [1, 1, 1],
    kind: 'write',
    op: 'put',
    run: (ctx, args) => setnxCommand(ctx, key(args[1]), value(args[2])),
  },
  expire: {
    arity: -3,
    flags: ['write', 'fast'],
    keys: [1, 1, 1],
    kind: 'write',
    op: 'put',
    run: (ctx, args) => expireCommand(ctx, args, key(args[1]), 'ex'),
  },
  pexpire: {
    arity: -3,
    flags: ['write', 'fast'],
    keys: [1, 1, 1],
    kind: 'write',
    op: 'put',
    run: (ctx, args) => expireCommand(ctx, args, key(args[1]), 'px'),
  },
  expireat: {
    arity: -3,
    flags: ['write', 'fast'],
    keys: [1, 1, 1],
    kind: 'write',
    op: 'put',
    run: (ctx, args) => expireCommand(ctx, args, key(args[1]), 'exat'),
  },
  pexpireat: {
    arity: -3,
    flags: ['write', 'fast'],
    keys: [1, 1, 1],
    kind: 'write',
    op: 'put',
    run: (ctx, args) => expireCommand(ctx, args, key(args[1]), 'pxat'),
  },
  ttl: {
    arity: 2,
    flags: ['readonly', 'fast'],
    keys: [1, 1, 1],
    kind: 'read',
    op: 'get',
    run: (ctx, args) => ttlCommand(ctx, key(args[1]), false),
  },
  pttl: {
    arity: 2,
    flags: ['readonly', 'fast'],
    keys: [1, 1, 1],
    kind: 'read',
    op: 'get',
    run: (ctx, args) => ttlCommand(ctx, key(args[1]), true),
  },
  persist: {
    arity: 2,
    flags: ['write', 'fast'],
    keys: [1, 1, 1],
    kind: 'write',
    op: 'put',
    run: (ctx, args) => persistCommand(ctx, key(args[1])),
  },
  mget: { arity: -2, flags: ['readonly', 'fast'], keys: [1, -1, 1], kind: 'read', op: 'mget', run: mgetCommand },
  mset: { arity: -3, flags: ['write', 'denyoom'], keys: [1, -1, 2], kind: 'write', op: 'batch', run: msetCommand },
  del: { arity: -2, flags: ['write'], keys: [1, -1, 1], kind: 'write', op: 'del', run: delCommand },
  unlink: { arity: -2, flags: ['write', 'fast'], keys: [1, -1, 1], kind: 'write', op: 'del', run: delCommand },
  exists: { arity: -2, flags: ['readonly', 'fast'], keys: [1, -1, 1], kind: 'read', op: 'mget', run: existsCommand },
  scan: { arity: -2, flags: ['readonly'], keys: [0, 0, 0], kind: 'read', op: 'scan', run: scanCommand },
  dbsize: { arity: 1, flags: ['readonly', 'fast'], keys: [0, 0, 0], kind: 'read', op: 'dbsize', run: dbsizeCommand },
  info: { arity: -1, flags: ['loading', 'stale'], keys: [0, 0, 0], kind: 'read', op: 'status', run: infoCommand },
  role: {
    arity: 1,
    flags: ['noscript', 'loading', 'stale', 'fast'],
    keys: [0, 0, 0],
    kind: 'read',
    op: 'status',
    run: (ctx) => roleReply(ctx.host.node, ctx.host.config.groupName),
  },
  wait: { arity: 3, flags: ['noscript'], keys: [0, 0, 0], kind: 'barrier', op: 'wait', run: waitCommand },
  replicaof: {
    arity: 3,
    flags: ['admin', 'noscript', 'stale'],
    keys: [0, 0, 0],
    kind: 'barrier',
    op: 'replicaof',
    run: replicaofCommand,
  },
  slaveof: {
    arity: 3,
    flags: ['admin', 'noscript', 'stale'],
    keys: [0, 0, 0],
    kind: 'barrier',
    op: 'replicaof',
    run: replicaofCommand,
  },
  failover: {
    arity: -1,
    flags: ['admin', 'noscript', 'stale'],
    keys: [0, 0, 0],
    kind: 'barrier',
    op: 'promote',
    run: failoverCommand,
  },
  sentinel: {
    arity: -2,
    flags: ['admin', 'loading', 'stale'],
    keys: [0, 0, 0],
    kind: 'local',
    op: 'sentinel',
    run: (ctx, args) =>
      sentinelCommand(
        ctx.host.node,
        ctx.host.config.groupName,
        args.slice(1).map((a) => text(a)),
      ),
  },
  ping: {
    arity: -1,
    flags: ['fast', 'stale'],
    keys: [0, 0, 0],
    kind: 'local',
    op: 'ping',
    inSubscribe: true,
    run: pingCommand,
  },
  echo: { arity: 2, flags: ['fast'], keys: [0, 0, 0], kind: 'local', op: 'echo', run: (_ctx, a) => Buffer.from(a[1]) },
  auth: {
    arity: -2,
    flags: ['noscript', 'loading', 'stale', 'fast', 'no_auth'],
    keys: [0, 0, 0],
    kind: 'local',
    op: 'auth',
    noAuth: true,
    run: authCommand,
  },
  hello: {
    arity: -1,
    flags: ['noscript', 'loading', 'stale', 'fast', 'no_auth'],
    keys: [0, 0, 0],
    kind: 'local',
    op: 'hello',
    noAuth: true,
    run: helloCommand,
  },
  select: {
    arity: 2,
    flags: ['loading', 'stale', 'fast'],
    keys: [0, 0, 0],
    kind: 'local',
    op: 'select',
    run: selectCommand,
  },
  quit: {
    arity: -1,
    flags: ['noscript', 'loading', 'stale', 'fast', 'no_auth'],
    keys: [0, 0, 0],
    kind: 'local',
    op: 'quit',
    noAuth: true,
    inSubscribe: true,
    run: (ctx) => {
      ctx.session.closeAfterReplies()
      return OK
    },
  },
  reset: {
    arity: 1,
    flags: ['noscript', 'loading', 'stale', 'fast', 'no_auth'],
    keys: [0, 0, 0],
    kind: 'local',
    op: 'reset',
    noAuth: true,
    inSubscribe: true,
    run: (ctx) => {
      ctx.session.reset()
      return new SimpleString('RESET')
    },
  },
  client: {
    arity: -2,
    flags: ['admin', 'noscript', 'loading', 'stale'],
    keys: [0, 0, 0],
    kind: 'local',
    op: 'client',
    run: clientCommand,
  },
  command: {
    arity: -1,
    flags: ['loading', 'stale'],
    keys: [0, 0, 0],
    kind: 'local',
    op: 'command',
    run: commandCommand,
  },
  config: {
    arity: -2,
    flags: ['admin', 'noscript', 'loading', 'stale'],
    keys: [0, 0, 0],
    kind: 'local',
    op: 'config',
    run: configCommand,
  },
  subscribe: {
    arity: -2,
    flags: ['pubsub', 'noscript', 'loading', 'stale'],
    keys: [0, 0, 0],
    kind: 'local',
    op: 'subscribe',
    inSubscribe: true,
    run: (ctx, args) => subscribeCommand(ctx, args, false),
  },
  psubscribe: {
    arity: -2,
    flags: ['pubsub', 'noscript', 'loading', 'stale'],
    keys: [0, 0, 0],
    kind: 'local',
    op: 'subscribe',
    inSubscribe: true,
    run: (ctx, args) => subscribeCommand(ctx, args, true),
  },
  unsubscribe: {
    arity: -1,
    flags: ['pubsub', 'noscript', 'loading', 'stale'],
    keys: [0, 0, 0],
    kind: 'local',
    op: 'subscribe',
    inSubscribe: true,
    run: (ctx, args) => unsubscribeCommand(ctx, args, false),
  },
  punsubscribe: {
    arity: -1,
    flags: ['pubsub', 'noscript', 'loading', 'stale'],
    keys: [0, 0, 0],
    kind: 'local',
    op: 'subscribe',
    inSubscribe: true,
    run: (ctx, args) => unsubscribeCommand(ctx, args, true),
  },
}

/** Every command, by lower-case name. */
const COMMANDS: ReadonlyMap<string, CommandSpec> = new Map(
  Object.entries(table).map(([name, spec]) => [name, { name, ...spec }]),
)

export const GET_SPEC = COMMANDS.get('get') as CommandSpec
export const SET_SPEC = COMMANDS.get('set') as CommandSpec

/**
 * The command named by a request's first argument, matched without case.
 * GET and SET, most of a pipelined load, are matched on their bytes,
 * without building a lower-case string per command.
 */
export function commandNamed(name: Buffer): CommandSpec | undefined {
  if (name.length === 3 && (name[1] | 0x20) === 0x65 && (name[2] | 0x20) === 0x74) {
    const first = name[0] | 0x20
    if (first === 0x67) return GET_SPEC
    if (first === 0x73) return SET_SPEC
  }
  return COMMANDS.get(name.toString('latin1').toLowerCase())
}

/** Whether a command's argument count fits its arity. */
export function arityFits(spec: CommandSpec, argc: number): boolean {
  return spec.arity >= 0 ? argc === spec.arity : argc >= -spec.arity
}
