import { setFlagsFromString } from 'node:v8'
import { TandemError } from '@tandem/protocol'
import { loadConfig, UsageError } from '../config.js'
import { usage } from '../flag-docs.js'
import { SERVER_VERSION } from '../http/self-report.js'
import { TandemServer } from '../server.js'
import { DataDirMismatchError } from '../storage/store.js'
import { createLogger } from '../util/logger.js'
import { watchLauncher } from './launcher.js'

// Young-generation collections on the main thread alone. A node's
// survivors are small, and a parallel scavenge waits for helper threads
// that, on a machine whose cores are busy (LevelDB's own threads, other
// processes), are not scheduled at once: the pause grows, and replication
// lag with it (the lag suite shows it, with
// TANDEM_BENCH_NODE_ARGS=--trace-gc-nvp). `node --parallel-scavenge` keeps
// V8's default.
if (!process.execArgv.some((arg) => arg.endsWith('parallel-scavenge'))) setFlagsFromString('--no-parallel-scavenge')

// Old-generation room: after each mark-compact V8 lets the old generation
// grow by a factor it picks to spend little CPU on marking, and on a node
// taking tens of thousands of writes a second it often picks 1.4 or less
// (of ~20 MB live): what a write leaves alive across two scavenges (a group
// waiting for its fsync, a peer frame in flight) fills that in about a
// second, so mark-compacts come every 1-4 s, each stopping the event loop
// for ~10 ms and every write, peer frame and watch event with it. A factor
// of 4 (the most V8 picks by itself, on a fast mutator) spaces them out by
// about as much for some tens of MB more heap. V8 reads the flag at each
// mark-compact, so setting it here takes effect. `node
// --heap-growing-percent=N` (0: V8's own choice) overrides it.
if (!process.execArgv.some((arg) => arg.includes('heap-growing-percent')))
  setFlagsFromString('--heap-growing-percent=300')

/** Exit statuses: 0 clean shutdown, 1 could not start, 2 bad usage (flags, or flags the data dir contradicts). */
async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>
  try {
    config = loadConfig(process.argv.slice(2))
  } catch (err) {
    if (err instanceof UsageError && err.message === 'help') {
      process.stdout.write(`${usage()}\n`)
      process.exit(0)
    }
    if (err instanceof UsageError && err.message === 'version') {
      process.stdout.write(`tandem-server ${SERVER_VERSION}\n`)
      process.exit(0)
    }
    process.stderr.write(`error INVALID: ${(err as Error).message}\n(tandem-server --help lists the flags)\n`)
    process.exit(2)
  }
  const logger = createLogger({ level: config.logLevel, format: config.logFormat })
  // Signal handlers go in before start: a SIGTERM that arrives while the node
  // is opening still ends in a clean shutdown once it is open.
  let server: TandemServer | undefined
  let stopping = false
  const shutdown = (running: TandemServer) =>
    running.close().then(
      () => process.exit(0),
      (err) => {
        logger.error('shutdown failed', { err })
        process.exit(1)
      },
    )
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    logger.info('stopping', { signal })
    if (server) void shutdown(server)
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  watchLauncher((launcher) => {
    logger.warn('the package manager that started this node exited; shutting down as on SIGTERM', { launcher })
    stop('launcher exited')
  })
  try {
    server = await TandemServer.start(config, logger)
  } catch (err) {
    const code = err instanceof TandemError ? err.code : ((err as NodeJS.ErrnoException).code ?? 'INTERNAL')
    logger.error('could not start', { code, err })
    process.stderr.write(`error ${code}: ${(err as Error).message}\n`)
    // A flag the data dir contradicts (--conflict, --mode) is bad usage, like a bad flag.
    process.exit(err instanceof UsageError || err instanceof DataDirMismatchError ? 2 : 1)
  }
  if (stopping) void shutdown(server)
}

void main()
