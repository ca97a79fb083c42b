import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { type ErrorCode, TandemError, type Value } from '@tandem/protocol'
import { TandemClient } from '../client.js'
import type { ClientTls } from '../connection.js'
import { saveSnapshot, verifySnapshot } from './snapshot-file.js'

const USAGE = `usage: tandem [--server HOST:PORT[,HOST:PORT...]] [--direct] [--auth-token T] [--tls] [--tls-ca FILE] [--json] COMMAND

commands:
  put KEY VALUE [--w N|majority] [--timeout MS]   write; prints OK
  get KEY                                         print the value; exit 1 when missing
  del KEY                                         delete
  scan [--prefix P] [--limit N] [--reverse]       key<TAB>value per line, in key order
  snapshot save FILE                              back up the node at --server to FILE (streamed, checked)
  snapshot verify FILE                            check a snapshot file offline
  watch [KEY] [--prefix P] [--from SEQ] [--limit N]
                                                  follow changes: seq<TAB>put|del<TAB>key[<TAB>value] per line
  status [--json]                                 role, node id, epoch, seq, upstream, replicas
  promote                                         make the node at --server a master
  replicaof HOST:PORT | replicaof no one          re-point the node at --server
  wait N [--timeout MS]                           wait until N replicas hold the current seq

--tls connects over TLS checking the servers' certificates against the system's CAs;
--tls-ca FILE (or TANDEM_TLS_CA) against the CA in FILE (PEM) instead.

environment: TANDEM_SERVER (default 127.0.0.1:7379), TANDEM_AUTH_TOKEN, TANDEM_TLS_CA
exit status: 0 ok, 1 key not found, 2 bad usage or input, 3 unavailable`

/** Exit statuses, as documented in the README. */
const EXIT = { ok: 0, notFound: 1, usage: 2, unavailable: 3 } as const

function exitFor(code: ErrorCode): number {
  switch (code) {
    case 'NOTFOUND':
      return EXIT.notFound
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

/** Binary values print as base64 with a prefix so a line stays a line. */
function show(value: Value): string {
  return typeof value === 'string' ? value : `base64:${Buffer.from(value).toString('base64')}`
}

function jsonValue(value: Value): unknown {
  return typeof value === 'string' ? value : { base64: Buffer.from(value).toString('base64') }
}

async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({
      args: argv,
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
        prefix: { type: 'string' },
        limit: { type: 'string' },
        reverse: { type: 'boolean' },
        from: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    })
  } catch (err) {
    throw new Usage((err as Error).message)
  }
  const flags = parsed.values as Record<string, string | boolean | undefined>
  const [command, ...args] = parsed.positionals
  if (flags.help || command === 'help') {
    process.stdout.write(`${USAGE}\n`)
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
  const timeoutMs = intFlag('timeout', 1)
  const limit = intFlag('limit', 0)
  const fromSeq = intFlag('from', 1)
  const json = flags.json === true

  // Validate the command's shape before connecting: bad usage is exit 2 even with no server.
  switch (command) {
    case 'put':
      arity(2, 'KEY VALUE')
      break
    case 'get':
    case 'del':
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
    case 'watch':
      if (args.length > 1) throw new Usage('watch takes at most one KEY (or --prefix P)')
      if (args.length === 1 && flags.prefix !== undefined) throw new Usage('watch takes a KEY or --prefix, not both')
      break
    case 'scan':
    case 'status':
    case 'promote':
      arity(0, 'no arguments')
      break
    case 'replicaof':
      if (
        !(args.length === 1 && /^[^\s:]+:\d{1,5}$/.test(args[0])) &&
        !(args.length === 2 && `${args[0]} ${args[1]}`.toLowerCase() === 'no one')
      ) {
        throw new Usage('replicaof takes HOST:PORT or "no one"')
      }
      break
    case 'wait':
      arity(1, 'N (number of replicas)')
      if (!/^\d+$/.test(args[0])) throw new Usage(`wait takes a number of replicas, got ${args[0]}`)
      break
    default:
      throw new Usage(`unknown command ${JSON.stringify(command)}`)
  }

  const servers = String(flags.server ?? process.env.TANDEM_SERVER ?? '127.0.0.1:7379')
  const tlsCa = (flags['tls-ca'] as string | undefined) || process.env.TANDEM_TLS_CA || undefined
  let tls: ClientTls | undefined = flags.tls === true ? true : undefined
  if (tlsCa !== undefined) {
    try {
      tls = { ca: readFileSync(tlsCa) }
    } catch (err) {
      throw new Usage(`--tls-ca ${tlsCa}: ${(err as Error).message}`)
    }
  }
  let client: TandemClient
  try {
    client = await TandemClient.connect({
      servers,
      // Node commands act on the node named by --server, whatever its role.
      direct: flags.direct === true || ['status', 'promote', 'replicaof', 'wait', 'snapshot'].includes(command),
      authToken: (flags['auth-token'] as string | undefined) ?? process.env.TANDEM_AUTH_TOKEN,
      tls,
      connectTimeoutMs: 3000,
      timeoutMs: timeoutMs ?? 10_000,
    })
  } catch (err) {
    if (err instanceof TypeError) throw new Usage(err.message)
    throw err
  }
  const out = (line: string) => process.stdout.write(`${line}\n`)
  try {
    switch (command) {
      case 'put': {
        const result = await client.put(args[0], args[1], { w, timeoutMs })
        out(json ? JSON.stringify({ ok: true, seq: result.seq }) : 'OK')
        break
      }
      case 'get': {
        const value = await client.get(args[0])
        if (value === undefined) fail('NOTFOUND', `key ${JSON.stringify(args[0])} not found`)
        if (json) out(JSON.stringify({ key: args[0], value: jsonValue(value) }))
        else if (typeof value === 'string') out(value)
        else process.stdout.write(value)
        break
      }
      case 'del': {
        const result = await client.del(args[0], { w, timeoutMs })
        out(json ? JSON.stringify({ ok: true, seq: result.seq }) : 'OK')
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
        const watch = client.watch({ key: args[0], prefix: flags.prefix as string | undefined, fromSeq })
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
            : `${event.seq}\t${event.type}\t${event.key}${event.value === undefined ? '' : `\t${show(event.value)}`}`
          // Waits when stdout is full: the watch then holds back, and the node with it.
          if (!process.stdout.write(`${line}\n`)) await new Promise((resolve) => process.stdout.once('drain', resolve))
          if (limit !== undefined && ++seen >= limit) break
        }
        break
      }
      case 'scan': {
        for await (const [key, value] of client.scan({
          prefix: flags.prefix as string | undefined,
          limit,
          reverse: flags.reverse === true,
        })) {
          out(json ? JSON.stringify({ key, value: jsonValue(value) }) : `${key}\t${show(value)}`)
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
          for (const r of status.replicas) {
            out(
              `replica ${r.nodeId} ${r.addr}  acked ${r.ackedSeq}  lag ${r.lagEntries} entries / ${r.lagMs} ms${r.link ? `  ${r.link}` : ''}`,
            )
          }
        }
        break
      }
      case 'promote': {
        const status = await client.promote()
        out(json ? JSON.stringify(status) : `OK master at epoch ${status.epoch}`)
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

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof Usage) {
      process.stderr.write(`error INVALID: ${err.message}\n${USAGE}\n`)
      process.exit(EXIT.usage)
    }
    if (err instanceof TandemError) {
      process.stderr.write(`error ${err.code}: ${err.message}\n`)
      process.exit(exitFor(err.code))
    }
    process.stderr.write(`error INTERNAL: ${(err as Error)?.message ?? String(err)}\n`)
    process.exit(EXIT.unavailable)
  },
)
