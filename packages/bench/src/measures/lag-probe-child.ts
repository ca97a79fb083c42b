/**
 * The replication-lag probe in a process of its own (see ProcessLagProbe):
 * on {type:'open'} connects and answers {type:'ready'}; probes from
 * {type:'start'} to {type:'stop'}, then sends back its ReplicaLag[] and
 * exits. Leaves when the harness does (IPC disconnect).
 */
import { MarkerLagProbe } from './marker-lag.js'
import { LagProbe, type LagProbeSpec } from './replication-lag.js'

interface Open {
  type: 'open'
  spec: LagProbeSpec
}

let probe: LagProbe | MarkerLagProbe | null = null

/** Tells the harness why, then exits. */
function fail(err: unknown): void {
  process.send?.({ type: 'error', message: String((err as Error)?.message ?? err) }, () => process.exit(1))
}

process.on('message', (message: Open | { type: 'start' } | { type: 'stop' }) => {
  if (message.type === 'open' && probe === null) {
    const s = message.spec
    const opening =
      s.kind === 'poll'
        ? new LagProbe(s.master, s.replicas, s.intervalMs)
        : new MarkerLagProbe(s.writers, s.readers, s.authToken, s.intervalMs, undefined, s.traceDir)
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
