import { parseArgs } from 'node:util'
import { FloorStore } from './floor-store.js'
import { startRespFloor } from './resp-floor.js'
import { startWsFloor } from './ws-floor.js'

/**
 * The floor server: no tandem server code, only what a put must cost with
 * tandem's storage (floor-store.ts) behind the two protocols tandem speaks
 * (resp-floor.ts for redis-benchmark, ws-floor.ts for the SDK). With
 * --no-storage it answers at once and stores nothing: Node's own floor.
 * tandem-bench starts it as the `floor` and `floor-bare` targets; it
 * prints one JSON line once it listens, and on SIGTERM waits for the
 * writes it accepted, closes LevelDB and exits 0.
 *
 *   node floor-server.js --data-dir DIR [--sync always|periodic|none] | --no-storage
 *                        [--host H] [--resp-port P] [--ws-port P]
 */

const { values } = parseArgs({
  options: {
    'data-dir': { type: 'string' },
    'no-storage': { type: 'boolean', default: false },
    sync: { type: 'string', default: 'periodic' },
    host: { type: 'string', default: '127.0.0.1' },
    'resp-port': { type: 'string', default: '0' },
    'ws-port': { type: 'string', default: '0' },
  },
})

async function main(): Promise<void> {
  const dir = values['data-dir']
  if (!values['no-storage'] && !dir) throw new Error('give --data-dir DIR or --no-storage')
  const sync = values.sync
  if (sync !== 'always' && sync !== 'periodic' && sync !== 'none') throw new Error('--sync always|periodic|none')
  const store = values['no-storage'] ? null : new FloorStore(dir!, sync)
  await store?.start()
  const host = values.host!
  const resp = await startRespFloor(store, host, Number(values['resp-port']))
  const ws = await startWsFloor(store, host, Number(values['ws-port']))
  const port = (s: typeof resp | typeof ws) => (s.address() as { port: number }).port
  process.stdout.write(
    `${JSON.stringify({ msg: 'listening', resp: `${host}:${port(resp)}`, address: `${host}:${port(ws)}`, storage: store !== null })}\n`,
  )
  process.once('SIGTERM', () => {
    resp.close()
    ws.close()
    resp.unref()
    ws.unref()
    void (async () => {
      await store?.close()
      process.stdout.write(`${JSON.stringify({ msg: 'closed', groups: store?.groups ?? 0, puts: store?.puts ?? 0 })}\n`)
      process.exit(0)
    })()
  })
}

main().catch((err) => {
  process.stderr.write(`floor server: ${(err as Error).stack ?? err}\n`)
  process.exit(1)
})
