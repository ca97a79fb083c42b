import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import {
  type BatchOp,
  type Consistency,
  consistencySchema,
  type ErrorCode,
  hostPortProblem,
  type MultiStatus,
  TandemError,
  type Value,
} from '@tandem/protocol'
import { forgetAll } from '../cli/forget-all.js'
import { groupStatus, groupTable } from '../cli/group-status.js'
import { bytesToValue, readStdin, readValueFile } from '../cli/input.js'
import { escapeText, jsonValue, showValue, valueFromJson } from '../cli/text.js'
import { TandemClient } from '../client.js'
import type { ClientTls } from '../connection.js'
import { parseConnectionUrl } from '../url.js'
import { saveSnapshot, verifySnapshot } from './snapshot-file.js'

const USAGE = `usage: tandem [--server HOST:PORT[,HOST:PORT...] | --server tandem://...] [--direct] [--auth-token T]
              [--tls] [--tls-ca FILE] [--connect-timeout MS] [--json] COMMAND [ARGS] [--] [ARGS]

commands:
  put KEY VALUE [--w N|majority] [--timeout MS] [--context C]
                                                  write; prints OK (--context: from get --json, multi-master)
  put KEY -  |  put KEY < FILE  |  put KEY --file FILE [--binary]
                                                  the value from stdin or a file, bytes as read
      [--if-seq N] [--if-absent] [--if-present]   (put) only if the key is so (else CONFLICT, exit 4)
      [--ttl MS]                                  (put) the key expires MS after the master takes it
  get KEY [--consistency C]                       print the value (concurrent values: one per line); exit 1 when missing
      [--meta]                                    seq<TAB>value: the key's modification seq first
  mget KEY... [--consistency C]                   key<TAB>value per key found, the key alone when missing
  del KEY [--context C] [--if-seq N] [--if-present]
                                                  delete
  del --prefix P --yes                            delete every key under P; prints how many
  batch [--w N|majority]                          atomic writes from stdin, one JSON object a line:
                                                  {"type":"put","key":K,"value":V} or {"type":"del","key":K}
  scan [--prefix P] [--limit N] [--reverse] [--consistency C]
                                                  key<TAB>value per line, in key order
  count [--prefix P]                              how many keys (under P)
  snapshot save FILE                              back up the node at --server to FILE (streamed, checked)
  snapshot verify FILE                            check a snapshot file offline
  watch [KEY] [--prefix P] [--from SEQ] [--limit N]
                                                  follow changes: seq<TAB>put|del<TAB>key[<TAB>value] per line
  status [--all] [--json]                         role, node id, epoch, seq, upstream, replicas;
                                                  --all: one row per node of the group, from any seed
  promote                                         make the node at --server a master
  replicaof HOST:PORT | replicaof no one          re-point the node at --server
  wait N [--timeout MS]                           wait until N replicas hold the current seq
  converged [--timeout MS]                        multi-master: every --server at the same cursors and digest
                                                  (exit 0), else exit 1; --timeout: keep checking that long
  forget ORIGIN --yes [--force] [--all]           multi-master: the node at --server forgets a dead or replaced
                                                  peer's origin for good (its links refused from then on);
                                                  --all: every node reachable through the peers;
                                                  --force: even while a link of it is up

Text output escapes \\, newlines, tabs and control characters (\\n, \\t, \\xHH) and shows
a binary value as base64:...; --json prints one JSON object a line, a binary value as
{"base64": "..."}, and errors as {"error":{"code","message"}} on stderr.
Arguments after -- are never options (tandem put k -- -v); a negative number needs no --.

--tls connects over TLS checking the servers' certificates against the system's CAs;
--tls-ca FILE (or TANDEM_TLS_CA) against the CA in FILE (PEM) instead.

consistency (get, mget, scan): linearizable (default in a --cluster group), lease, local
environment: TANDEM_SERVER (default 127.0.0.1:7379), TANDEM_AUTH_TOKEN, TANDEM_TLS_CA
exit status: 0 ok, 1 key not found (or not converged), 2 bad usage or input, 3 unavailable, 4 condition not met (CONFLICT)`

/** Exit statuses, as documented in the README. */
const EXIT = { ok: 0, notFound: 1, usage: 2, unavailable: 3, conflict: 4 } as const

/** Keys deleted per batch by `del --prefix`. */
const DELETE_BATCH = 1000

function exitFor(code: string): number {
  switch (code) {
    case 'NOTFOUND':
      return EXIT.notFound
    case 'CONFLICT':
      return EXIT.conflict
    case 'INVALID':
    case 'TOOLARGE':
    case 'UNAUTHORIZED':
    case 'CORRUPT':
      return EXIT.usage
    default:
      return EXIT.unavailable
  }
}

class Usage extends Error {}

function fail(code: ErrorCode, message: string): never {
  throw new TandemError(code, message)
}

/**
 * A peer's lag counts what this node lacks from it, as far as the peer has
 * said: a peer that is gone shows the lag it last had. Off a streaming link,
 * when it last spoke says how old that is.
 */
function heard(p: MultiStatus['peers'][number]): string {
  if (p.link === 'streaming') return ''
  return p.lastHeardMsAgo === null ? '  never heard' : `  last heard ${p.lastHeardMsAgo} ms ago`
}

function printMulti(m: MultiStatus, out: (line: string) => void): void {
  out(`mode multi  conflict ${m.conflict}  origin ${m.origin}  digest ${m.digest}`)
  for (const [origin, counter] of Object.entries(m.vv)) out(`cursor ${origin} ${counter}`)
  for (const p of m.peers) {
    const clock = p.clockOffsetMs === null ? '' : `  clock ${p.clockOffsetMs >= 0 ? '+' : ''}${p.clockOffsetMs} ms`
    out(
      `peer ${p.addr} ${p.nodeId ?? '-'}  ${p.link}  lag ${p.lagEntries} entries / ${p.lagMs} ms${heard(p)}${clock}${p.reason ? `  (${p.reason})` : ''}${otherHash(m, p)}`,
    )
  }
  const t = m.tombstones
  out(
    `tombstones ${t.count} pending${t.count > 0 ? ` (oldest ${t.oldestAgeMs} ms)` : ''}, ${t.collected} collected${t.blockedBy ? `; collection waits for ${t.blockedBy}` : ''}`,
  )
  out(`siblings ${m.siblings.keys} keys (most ${m.siblings.max}), ${m.siblings.dropped} dropped  lww lost ${m.lwwLost}`)
  if (m.forgotten?.length) out(`forgotten ${m.forgotten.join(' ')}`)
  if (m.clockFence) out(`writes refused: ${m.clockFence}`)
  if (m.digestAlarm) out(`ALARM: ${m.digestAlarm}`)
}

/** A note for a peer whose digest is of another hash than this node's (another build, in a rolling upgrade). */
function otherHash(m: MultiStatus, p: MultiStatus['peers'][number]): string {
  // A peer that has said nothing yet (no digest) has no hash to compare.
  if (!p.digest) return ''
  const mine = m.digestHash ?? 1
  const theirs = p.digestHash ?? 1
  return theirs === mine
    ? ''
    : `  (digest of hash ${theirs}, this node's of ${mine}: not comparable until both run one build)`
}

/** One node's part of a convergence check: its cursors and digest, or why it has none. */
interface NodeView {
  server: string
  role: string | null
  vv: Record<string, number> | null
  digest: string | null
  error: string | null
}

/** A version vector as text, zeros left out (a node that has seen nothing of an origin may not list it). */
const canonicalVv = (vv: Record<string, number>): string =>
  Object.keys(vv)
    .filter((origin) => vv[origin] > 0)
    .sort()
    .map((origin) => `${origin}:${vv[origin]}`)
    .join(',')

/**
 * `tandem converged`: asks every server for its version vector and
 * convergence digest. Equal cursors and equal digests on every node mean
 * they hold the same data (README, Multi-master); a node that cannot be
 * reached, or is not multi-master, means not converged. With a timeout it
 * asks again until they agree or the time is up (right after a partition
 * heals, say).
 */
async function checkConverged(
  servers: string[],
  open: (address: string) => Promise<TandemClient>,
  timeoutMs: number,
  json: boolean,
  out: (line: string) => void,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const views = await Promise.all(servers.map((server) => viewOf(server, open)))
    const first = views[0]
    const agree =
      views.length > 0 &&
      views.every(
        (v) =>
          v.error === null &&
          v.vv !== null &&
          v.digest === first.digest &&
          canonicalVv(v.vv) === canonicalVv(first.vv ?? {}),
      )
    if (agree || Date.now() >= deadline) {
      if (json) {
        out(JSON.stringify({ converged: agree, nodes: views }))
      } else {
        for (const v of views) {
          if (v.error !== null) out(`${v.server}  ${v.error}`)
          else out(`${v.server}  ${v.role}  digest ${v.digest}  vv ${canonicalVv(v.vv ?? {}) || '-'}`)
        }
        out(agree ? 'converged' : 'NOT converged')
      }
      return agree
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

async function viewOf(server: string, open: (address: string) => Promise<TandemClient>): Promise<NodeView> {
  let client: TandemClient | null = null
  try {
    client = await open(server)
    const status = await client.status()
    const vv = (status.vv ?? null) as Record<string, number> | null
    const digest = typeof status.digest === 'string' ? status.digest : null
    const error = vv === null || digest === null ? 'not a multi-master node: no cursors or digest' : null
    return { server, role: status.role, vv, digest, error }
  } catch (err) {
    const code = err instanceof TandemError ? `${err.code}: ` : ''
    return { server, role: null, vv: null, digest: null, error: `${code}${(err as Error).message}` }
  } finally {
    await client?.close().catch(() => {})
  }
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

/**
 * A negative number (`put n -5`) is a value, not an option: no option
 * starts with a digit. Such arguments are swapped for a placeholder that
 * parseArgs takes as a positional (an argument never holds a NUL), then
 * swapped back.
 */
const NEGATIVE = /^-\d/
const placeholder = (i: number) => `\0${i}`

function parse(argv: string[]) {
  const negatives: string[] = []
  const args: string[] = []
  let afterDashes = false
  for (const a of argv) {
    if (a === '--') afterDashes = true
    if (!afterDashes && NEGATIVE.test(a)) {
      args.push(placeholder(negatives.length))
      negatives.push(a)
    } else args.push(a)
  }
  const restore = (s: string) => (s.startsWith('\0') ? negatives[Number(s.slice(1))] : s)
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        server: { type: 'string' },
        direct: { type: 'boolean' },
        'auth-token': { type: 'string' },
        tls: { type: 'boolean' },
        'tls-ca': { type: 'string' },
        json: { type: 'boolean' },
        w: { type: 'string' },
        timeout: { type: 'string' },
        'connect-timeout': { type: 'string' },
        prefix: { type: 'string' },
        limit: { type: 'string' },
        reverse: { type: 'boolean' },
        from: { type: 'string' },
        context: { type: 'string' },
        file: { type: 'string' },
        binary: { type: 'boolean' },
        all: { type: 'boolean' },
        yes: { type: 'boolean' },
        force: { type: 'boolean' },
        version: { type: 'boolean' },
        consistency: { type: 'string' },
        'if-seq': { type: 'string' },
        'if-absent': { type: 'boolean' },
        'if-present': { type: 'boolean' },
        ttl: { type: 'string' },
        meta: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    })
  } catch (err) {
    // node:util's own wording for an unknown option quotes its advice unevenly; tandem says it plainly.
    const unknown = /^Unknown option '([^']*)'/.exec((err as Error).message)
    if (unknown) {
      throw new Usage(
        `unknown option ${unknown[1]} (a value or key that starts with a dash goes after --, as in: tandem put k -- ${unknown[1]})`,
      )
    }
    throw new Usage((err as Error).message)
  }
  const flags = parsed.values as Record<string, string | boolean | undefined>
  for (const [name, value] of Object.entries(flags)) if (typeof value === 'string') flags[name] = restore(value)
  return { flags, positionals: parsed.positionals.map(restore) }
}

async function main(argv: string[]): Promise<number> {
  const { flags, positionals } = parse(argv)
  const [command, ...args] = positionals
  if (flags.help || command === 'help') {
    process.stdout.write(`${USAGE}\n`)
    return EXIT.ok
  }
  if (flags.version || command === 'version') {
    process.stdout.write(`tandem ${version()}\n`)
    return EXIT.ok
  }
  if (!command) throw new Usage('no command given')

  const intFlag = (name: string, min: number): number | undefined => {
    const raw = flags[name]
    if (raw === undefined) return undefined
    const n = Number(raw)
    if (!Number.isInteger(n) || n < min) throw new Usage(`--${name} must be an integer >= ${min}, got ${raw}`)
    return n
  }
  const arity = (n: number, shape: string) => {
    if (args.length !== n) throw new Usage(`${command} takes ${shape}`)
  }
  let w: number | 'majority' | undefined
  if (flags.w !== undefined) {
    w = flags.w === 'majority' ? 'majority' : intFlag('w', 0)
  }
  let consistency: Consistency | undefined
  if (flags.consistency !== undefined) {
    const parsedConsistency = consistencySchema.safeParse(flags.consistency)
    if (!parsedConsistency.success) {
      throw new Usage(`--consistency must be linearizable, lease or local, got ${String(flags.consistency)}`)
    }
    if (command !== 'get' && command !== 'mget' && command !== 'scan')
      throw new Usage('--consistency applies to get, mget and scan')
    consistency = parsedConsistency.data
  }
  const timeoutMs = intFlag('timeout', 1)
  const connectTimeoutMs = intFlag('connect-timeout', 1) ?? 3000
  const limit = intFlag('limit', 0)
  const fromSeq = intFlag('from', 1)
  const context = flags.context as string | undefined
  const json = flags.json === true
  const prefix = flags.prefix as string | undefined
  const conditions = {
    ifSeq: intFlag('if-seq', 0),
    ifAbsent: flags['if-absent'] === true ? true : undefined,
    ifPresent: flags['if-present'] === true ? true : undefined,
  }
  if (conditions.ifAbsent && command !== 'put') throw new Usage('--if-absent is for put')
  if ((conditions.ifSeq !== undefined || conditions.ifPresent) && command !== 'put' && command !== 'del') {
    throw new Usage('--if-seq and --if-present are for put and del')
  }
  if (flags.meta === true && command !== 'get') throw new Usage('--meta is for get')
  const ttlMs = intFlag('ttl', 1)
  if (ttlMs !== undefined && command !== 'put') throw new Usage('--ttl is for put')

  // Validate the command's shape, and read its input, before connecting:
  // bad usage is exit 2 even with no server.
  let value: Value | undefined
  let batchOps: BatchOp[] | undefined
  switch (command) {
    case 'put':
      value = await putValue(args, flags)
      break
    case 'get':
      arity(1, 'KEY')
      break
    case 'snapshot':
      if (args.length !== 2 || (args[0] !== 'save' && args[0] !== 'verify')) {
        throw new Usage('snapshot takes save FILE or verify FILE')
      }
      if (args[0] === 'verify') {
        const file = await verifySnapshot(args[1])
        process.stdout.write(
          json
            ? `${JSON.stringify({ ok: true, ...file })}\n`
            : `OK seq ${file.seq}, ${file.records} keys, ${file.bytes} bytes, taken on ${file.nodeId} at ${new Date(file.createdAt).toISOString()}\n`,
        )
        return EXIT.ok
      }
      break
    case 'mget':
      if (args.length === 0) throw new Usage('mget takes one KEY or more')
      break
    case 'del':
      if (prefix !== undefined) {
        if (args.length > 0) throw new Usage('del takes a KEY or --prefix P, not both')
      } else arity(1, 'KEY (or --prefix P --yes)')
      break
    case 'batch':
      arity(0, 'no arguments (the ops come on stdin)')
      batchOps = parseBatch((await readStdin()).toString('utf8'))
      break
    case 'watch':
      if (args.length > 1) throw new Usage('watch takes at most one KEY (or --prefix P)')
      if (args.length === 1 && prefix !== undefined) throw new Usage('watch takes a KEY or --prefix, not both')
      break
    case 'scan':
    case 'count':
    case 'status':
    case 'promote':
    case 'converged':
      arity(0, 'no arguments')
      break
    case 'forget':
      arity(1, 'ORIGIN (a peer origin, as status shows it)')
      if (flags.yes !== true) {
        throw new Usage(
          `forget ${args[0]} is for good: the node gives up that origin's writes no surviving node holds and refuses its links from then on; add --yes`,
        )
      }
      break
    case 'replicaof':
      if (args.length === 2 && `${args[0]} ${args[1]}`.toLowerCase() === 'no one') break
      if (args.length !== 1) throw new Usage('replicaof takes HOST:PORT or "no one"')
      if (hostPortProblem(args[0]) !== null) throw new Usage(`replicaof: ${hostPortProblem(args[0])}`)
      break
    case 'wait':
      arity(1, 'N (number of replicas)')
      if (!/^\d+$/.test(args[0])) throw new Usage(`wait takes a number of replicas, got ${args[0]}`)
      break
    default:
      throw new Usage(`unknown command ${JSON.stringify(command)}`)
  }

  const servers = String(flags.server ?? process.env.TANDEM_SERVER ?? '127.0.0.1:7379')
  const fromUrl = /^tandems?:\/\//.test(servers) ? parseUrl(servers) : undefined
  const tlsCa = (flags['tls-ca'] as string | undefined) || process.env.TANDEM_TLS_CA || undefined
  let tls: ClientTls | undefined = flags.tls === true || fromUrl?.tls === true ? true : undefined
  if (tlsCa !== undefined) {
    try {
      tls = { ca: readFileSync(tlsCa) }
    } catch (err) {
      throw new Usage(`--tls-ca ${tlsCa}: ${(err as Error).message}`)
    }
  }
  const authToken = (flags['auth-token'] as string | undefined) ?? process.env.TANDEM_AUTH_TOKEN ?? fromUrl?.authToken
  const connect = async (to: string | string[], direct: boolean): Promise<TandemClient> => {
    try {
      return await TandemClient.connect({
        ...fromUrl,
        servers: to,
        direct,
        authToken,
        tls,
        // A refused connection fails at once; a host that does not answer, within --connect-timeout.
        failFast: true,
        connectTimeoutMs,
        timeoutMs: timeoutMs ?? 10_000,
      })
    } catch (err) {
      if (err instanceof TypeError) throw new Usage(err.message)
      throw err
    }
  }
  const seeds = fromUrl ? fromUrl.servers : servers
  const out = (line: string) => process.stdout.write(`${line}\n`)

  if (command === 'converged') {
    const list = (typeof seeds === 'string' ? seeds.split(',') : seeds).map((s) => s.trim()).filter(Boolean)
    const agree = await checkConverged(list, (address) => connect(address, true), timeoutMs ?? 0, json, out)
    return agree ? EXIT.ok : EXIT.notFound
  }

  if (flags.force === true && command !== 'forget') throw new Usage('--force is for forget')
  if (command === 'forget' && flags.all === true) {
    const seedList = (typeof seeds === 'string' ? seeds.split(',') : seeds).map((s) => s.trim()).filter(Boolean)
    const rows = await forgetAll(seedList, args[0], flags.force === true, (address) => connect(address, true))
    for (const r of rows) {
      if (json) out(JSON.stringify(r))
      else if (r.outcome === 'forgotten') out(`${r.address} ${r.nodeId}  forgotten  (${r.closedLinks} links closed)`)
      else if (r.outcome === 'skipped') out(`${r.address} ${r.nodeId}  skipped: this node is origin ${args[0]} itself`)
      else out(`${r.address} ${r.nodeId ?? '-'}  failed: ${r.error?.code}: ${r.error?.message}`)
    }
    // An address that does not answer may be the dead peer's own; a node that answered and refused is an error.
    const refused = rows.find((r) => r.outcome === 'failed' && r.nodeId !== null)
    if (refused?.error) fail(refused.error.code as ErrorCode, `${refused.address}: ${refused.error.message}`)
    if (!rows.some((r) => r.outcome === 'forgotten')) fail('UNAVAILABLE', 'no node could be asked to forget')
    return EXIT.ok
  }

  if (command === 'status' && flags.all === true) {
    const seedList = (typeof seeds === 'string' ? seeds.split(',') : seeds).map((s) => s.trim()).filter(Boolean)
    // The seed must answer: a group view from nowhere is an error, not an empty table.
    const first = await connect(seedList, false)
    const seed = (await first.status()).address as string | undefined
    await first.close()
    const rows = await groupStatus(seed ?? seedList[0], async (address) => {
      const client = await connect(address, true)
      try {
        return await client.status()
      } finally {
        await client.close()
      }
    })
    if (json) for (const r of rows) out(JSON.stringify(r))
    else for (const line of groupTable(rows)) out(line)
    return EXIT.ok
  }

  // Node commands act on the node named by --server, whatever its role.
  const client = await connect(
    seeds,
    flags.direct === true ||
      fromUrl?.direct === true ||
      ['status', 'promote', 'replicaof', 'wait', 'snapshot', 'forget'].includes(command),
  )
  try {
    switch (command) {
      case 'put': {
        const result = await client.put(args[0], value as Value, { w, timeoutMs, context, ttlMs, ...conditions })
        out(json ? JSON.stringify({ ok: true, seq: result.seq }) : 'OK')
        break
      }
      case 'get': {
        if (flags.meta === true) {
          const meta = await client.get(args[0], { consistency, meta: true })
          if (meta === undefined) fail('NOTFOUND', `key ${JSON.stringify(args[0])} not found`)
          out(
            json
              ? JSON.stringify({ key: args[0], value: jsonValue(meta.value), seq: meta.seq, expiresAt: meta.expiresAt })
              : `${meta.seq}\t${showValue(meta.value)}${meta.expiresAt ? `\texpires ${new Date(meta.expiresAt).toISOString()}` : ''}`,
          )
          break
        }
        // Every concurrent value (multi-master vclock), so none is picked behind the user's back.
        const { values, context } = await client.getAll(args[0], { consistency })
        if (values.length === 0) fail('NOTFOUND', `key ${JSON.stringify(args[0])} not found`)
        const got = values[0]
        if (json) {
          const single = values.length === 1 ? { value: jsonValue(got) } : {}
          out(JSON.stringify({ key: args[0], ...single, values: values.map(jsonValue), context }))
        } else if (values.length > 1) for (const v of values) out(showValue(v))
        else if (typeof got === 'string') out(got)
        else process.stdout.write(got)
        break
      }
      case 'mget': {
        const values = await client.mget(args, { consistency }).catch((err: unknown) => {
          if (err instanceof TandemError && err.code === 'SIBLINGS') return null
          throw err
        })
        if (values === null) {
          // A key holds concurrent values (multi-master vclock): each key is
          // read with all of its values, printed as scan prints them (a line
          // each, the key repeated), and with --json as get prints them.
          for (const key of args) {
            const all = await client.getAll(key, { consistency })
            if (json) {
              const one = all.values.length === 1 ? jsonValue(all.values[0]) : null
              const many = all.values.length > 1 ? { values: all.values.map(jsonValue), context: all.context } : {}
              out(JSON.stringify({ key, value: one, ...many }))
            } else if (all.values.length === 0) out(escapeText(key))
            else for (const v of all.values) out(`${escapeText(key)}\t${showValue(v)}`)
          }
          break
        }
        args.forEach((key, i) => {
          const v = values[i]
          if (json) out(JSON.stringify({ key, value: v === undefined ? null : jsonValue(v) }))
          else out(v === undefined ? escapeText(key) : `${escapeText(key)}\t${showValue(v)}`)
        })
        break
      }
      case 'del': {
        if (prefix === undefined) {
          const { ifAbsent: _, ...delConditions } = conditions
          const result = await client.del(args[0], { w, timeoutMs, context, ...delConditions })
          out(json ? JSON.stringify({ ok: true, seq: result.seq }) : 'OK')
          break
        }
        if (flags.yes !== true) {
          const n = await countKeys(client, prefix)
          fail('INVALID', `${n} keys under prefix ${JSON.stringify(prefix)}; add --yes to delete them`)
        }
        const deleted = await deletePrefix(client, prefix, { w, timeoutMs })
        out(json ? JSON.stringify({ deleted }) : String(deleted))
        break
      }
      case 'batch': {
        const result = await client.batch(batchOps as BatchOp[], { w, timeoutMs })
        out(json ? JSON.stringify({ ok: true, seq: result.seq, ops: batchOps?.length }) : 'OK')
        break
      }
      case 'count': {
        const n = await countKeys(client, prefix)
        out(json ? JSON.stringify({ count: n }) : String(n))
        break
      }
      case 'snapshot': {
        const file = await saveSnapshot(client, args[1])
        out(
          json
            ? JSON.stringify({ ok: true, ...file })
            : `OK seq ${file.seq}, ${file.records} keys, ${file.bytes} bytes written to ${args[1]}`,
        )
        break
      }
      case 'watch': {
        // Runs until --limit events, SIGINT/SIGTERM (exit 0) or an error.
        const watch = client.watch({ key: args[0], prefix, fromSeq })
        const stop = () => watch.close()
        process.once('SIGINT', stop)
        process.once('SIGTERM', stop)
        let seen = 0
        if (limit === 0) break
        for await (const event of watch) {
          const line = json
            ? JSON.stringify({
                seq: event.seq,
                type: event.type,
                key: event.key,
                ...(event.value === undefined ? {} : { value: jsonValue(event.value) }),
              })
            : `${event.seq}\t${event.type}\t${escapeText(event.key)}${event.value === undefined ? '' : `\t${showValue(event.value)}`}`
          // Waits when stdout is full: the watch then holds back, and the node with it.
          if (!process.stdout.write(`${line}\n`)) await new Promise((resolve) => process.stdout.once('drain', resolve))
          if (limit !== undefined && ++seen >= limit) break
        }
        break
      }
      case 'scan': {
        for await (const [key, v] of client.scan({ prefix, limit, reverse: flags.reverse === true, consistency })) {
          const line = json ? JSON.stringify({ key, value: jsonValue(v) }) : `${escapeText(key)}\t${showValue(v)}`
          if (!process.stdout.write(`${line}\n`)) await new Promise((resolve) => process.stdout.once('drain', resolve))
        }
        break
      }
      case 'status': {
        const status = await client.status()
        if (json) {
          out(JSON.stringify(status, null, 2))
        } else {
          out(`node ${status.nodeId}  role ${status.role}  epoch ${status.epoch}  seq ${status.seq}`)
          out(`upstream ${status.upstream ?? '-'}  read-only ${status.readOnly ? 'yes' : 'no'}`)
          const { log } = status
          out(
            `keys ${status.keys}  disk ${status.diskBytes === null ? '-' : `${status.diskBytes} bytes`}  log ${log.entries === 0 ? 'empty' : `${log.oldestSeq}..${log.newestSeq}`} (${log.entries} entries)`,
          )
          for (const r of status.replicas) {
            out(
              `replica ${r.nodeId} ${r.addr}  acked ${r.ackedSeq}  lag ${r.lagEntries} entries / ${r.lagMs} ms${r.link ? `  ${r.link}` : ''}`,
            )
          }
          if (status.multi) printMulti(status.multi as MultiStatus, out)
          else if (status.digest) out(`conflict ${status.conflict}  digest ${status.digest}`)
        }
        break
      }
      case 'promote': {
        const status = await client.promote()
        out(json ? JSON.stringify(status) : `OK master at epoch ${status.epoch}`)
        break
      }
      case 'forget': {
        const result = await client.forget(args[0], { force: flags.force === true, timeoutMs })
        out(
          json
            ? JSON.stringify(result)
            : `OK forgot ${result.origin}${result.closedLinks > 0 ? ` (${result.closedLinks} links closed)` : ''}`,
        )
        break
      }
      case 'replicaof': {
        const upstream = args.length === 2 ? null : args[0]
        const status = await client.replicaof(upstream)
        out(json ? JSON.stringify(status) : 'OK')
        break
      }
      case 'wait': {
        const reached = await client.wait(Number(args[0]), timeoutMs ?? 10_000)
        out(json ? JSON.stringify({ replicas: reached }) : String(reached))
        if (reached < Number(args[0]))
          fail('TIMEOUT', `${reached} of ${args[0]} replicas reached the current seq in time`)
        break
      }
    }
  } finally {
    await client.close()
  }
  return EXIT.ok
}

function parseUrl(url: string) {
  try {
    return parseConnectionUrl(url)
  } catch (err) {
    throw new Usage((err as Error).message)
  }
}

/** put's value: the argument, stdin (`-`, or no value with stdin not a terminal), or --file. */
async function putValue(args: string[], flags: Record<string, string | boolean | undefined>): Promise<Value> {
  const file = flags.file as string | undefined
  const binary = flags.binary === true
  if (args.length === 0 || args.length > 2) throw new Usage('put takes KEY VALUE, KEY - (stdin), or KEY --file FILE')
  if (file !== undefined) {
    if (args.length !== 1) throw new Usage('put takes a VALUE or --file FILE, not both')
    try {
      return bytesToValue(await readValueFile(file), binary)
    } catch (err) {
      throw new Usage(`--file ${file}: ${(err as Error).message}`)
    }
  }
  if (args.length === 2 && args[1] !== '-') {
    return binary ? new Uint8Array(Buffer.from(args[1], 'utf8')) : args[1]
  }
  if (args.length === 1 && process.stdin.isTTY) {
    throw new Usage('put takes KEY VALUE; to read the value from stdin, pipe it in or give - as the VALUE')
  }
  return bytesToValue(await readStdin(), binary)
}

/** batch's ops: one JSON object a line; blank lines are skipped. */
function parseBatch(text: string): BatchOp[] {
  const ops: BatchOp[] = []
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return
    let op: unknown
    try {
      op = JSON.parse(line)
    } catch (err) {
      throw new Usage(`batch line ${i + 1}: not JSON (${(err as Error).message})`)
    }
    const o = op as { type?: unknown; key?: unknown; value?: unknown }
    if (typeof o !== 'object' || o === null || typeof o.key !== 'string') {
      throw new Usage(`batch line ${i + 1}: expected {"type":"put","key":K,"value":V} or {"type":"del","key":K}`)
    }
    if (o.type === 'del' && Object.keys(o).length === 2) ops.push({ type: 'del', key: o.key })
    else if (o.type === 'put' && Object.keys(o).length === 3) {
      const value = valueFromJson(o.value)
      if (value === null) throw new Usage(`batch line ${i + 1}: a value is a string or {"base64": "..."}`)
      ops.push({ type: 'put', key: o.key, value })
    } else {
      throw new Usage(`batch line ${i + 1}: expected {"type":"put","key":K,"value":V} or {"type":"del","key":K}`)
    }
  })
  if (ops.length === 0) throw new Usage('batch read no ops from stdin')
  return ops
}

async function countKeys(client: TandemClient, prefix: string | undefined): Promise<number> {
  let n = 0
  for await (const _ of distinctKeys(client, prefix)) n++
  return n
}

/**
 * The keys of a scan, each once: a vclock node's scan has an entry for
 * each of a key's concurrent values, one after the other.
 */
async function* distinctKeys(client: TandemClient, prefix: string | undefined): AsyncGenerator<string> {
  let last: string | undefined
  for await (const [key] of client.scan({ prefix })) {
    if (key === last) continue
    last = key
    yield key
  }
}

/**
 * Deletes every key under `prefix`, DELETE_BATCH keys to an atomic batch:
 * the whole deletion is not atomic, a key written under the prefix
 * meanwhile may survive it.
 */
async function deletePrefix(
  client: TandemClient,
  prefix: string,
  options: { w?: number | 'majority'; timeoutMs?: number },
): Promise<number> {
  let deleted = 0
  let keys: string[] = []
  const flush = async () => {
    if (keys.length === 0) return
    await client.batch(
      keys.map((key) => ({ type: 'del' as const, key })),
      options,
    )
    deleted += keys.length
    keys = []
  }
  for await (const key of distinctKeys(client, prefix)) {
    keys.push(key)
    if (keys.length >= DELETE_BATCH) await flush()
  }
  await flush()
  return deleted
}

function report(code: string, message: string, json: boolean): void {
  process.stderr.write(json ? `${JSON.stringify({ error: { code, message } })}\n` : `error ${code}: ${message}\n`)
}

const jsonErrors = process.argv.slice(2).includes('--json')
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof Usage) {
      report('INVALID', err.message, jsonErrors)
      // The whole usage for a bare `tandem`; after a mistake in a command
      // line, a pointer to it, so the one line that says what is wrong is
      // not buried under 45 lines of help.
      if (!jsonErrors) {
        process.stderr.write(process.argv.length <= 2 ? `${USAGE}\n` : 'tandem --help lists the commands and flags\n')
      }
      process.exit(EXIT.usage)
    }
    if (err instanceof TandemError) {
      report(err.code, err.message, jsonErrors)
      process.exit(exitFor(err.code))
    }
    report('INTERNAL', (err as Error)?.message ?? String(err), jsonErrors)
    process.exit(EXIT.unavailable)
  },
)
