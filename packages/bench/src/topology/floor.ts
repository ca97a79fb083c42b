import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ServerProcess } from './server-process.js'
import type { Topology } from './topology.js'

/**
 * The floor server (floor/floor-server.ts) as a target: `floor` with
 * tandem's storage in LevelDB, `floor-bare` without storage. Its WebSocket
 * address is the master the SDK driver loads; its RESP address is what
 * redis-benchmark loads. Extra node flags from TANDEM_BENCH_NODE_ARGS, as
 * for tandem's servers (e.g. --cpu-prof).
 */

/** The compiled server, from dist/topology or src/topology alike (a test runs the source). */
const FLOOR_BIN = fileURLToPath(new URL('../../dist/floor/floor-server.js', import.meta.url))
const NODE_ARGS = (process.env.TANDEM_BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean)

export type FloorTopology = Topology & { dataDir: string | null }

export async function startFloor(options: {
  storage: boolean
  sync?: 'always' | 'periodic' | 'none'
  root?: string
}): Promise<FloorTopology> {
  const root = options.root ?? (await mkdtemp(join(tmpdir(), 'tandem-bench-floor-')))
  const dataDir = options.storage ? join(root, 'db') : null
  const args = [
    ...NODE_ARGS,
    FLOOR_BIN,
    ...(dataDir ? ['--data-dir', dataDir, '--sync', options.sync ?? 'periodic'] : ['--no-storage']),
  ]
  const server = new ServerProcess(options.storage ? 'floor' : 'floor-bare', process.execPath, args)
  const close = async () => {
    await server.stop()
    if (!options.root) await rm(root, { recursive: true, force: true })
  }
  try {
    const listening = await server.waitForLine((line) => {
      try {
        const l = JSON.parse(line) as { msg?: string; resp?: string; address?: string }
        return l.msg === 'listening' ? l : undefined
      } catch {
        return undefined
      }
    }, 20_000)
    return {
      target: options.storage ? 'floor' : 'floor-bare',
      master: String(listening.address),
      replicas: [],
      respAddress: String(listening.resp),
      processes: [server],
      root,
      dataDir,
      waitForReplicas: async () => true,
      close,
    }
  } catch (err) {
    await close()
    throw err
  }
}
