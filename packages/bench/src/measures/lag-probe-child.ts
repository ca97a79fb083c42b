/**
 * The replication-lag probe in a process of its own (see ProcessLagProbe):
 * on {type:'open'} connects and answers {type:'ready'}; probes from
 * {type:'start'} to {type:'stop'}, then sends back its ReplicaLag[] and
 * exits. Leaves when the harness does (IPC disconnect).
 */
import type { DriverSpec } from '../drivers/driver.js'
import { LagProbe } from './replication-lag.js'

interface Open {
  type: 'open'
  master: DriverSpec
  replicas: string[]
  intervalMs: number
}

let probe: LagProbe | null = null

/** Tells the harness why, then exits. */
function fail(err: unknown): void {
  process.send?.({ type: 'error', message: String((err as Error)?.message ?? err) }, () => process.exit(1))
}

process.on('message', (message: Open | { type: 'start' } | { type: 'stop' }) => {
  if (message.type === 'open' && probe === null) {
    const opening = new LagProbe(message.master, message.replicas, message.intervalMs)
    probe = opening
    opening.open().then(() => process.send?.({ type: 'ready' }), fail)
  } else if (message.type === 'start') {
    probe?.start()
  } else if (message.type === 'stop') {
    const running = probe
    void (running ? running.stop() : Promise.resolve([])).then(
      (result) => process.send?.({ type: 'result', result }, () => process.exit(0)),
      fail,
    )
  }
})
process.on('disconnect', () => process.exit(0))
