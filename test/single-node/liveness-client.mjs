// A client in a process of its own, so that a test can pause it (SIGSTOP)
// the way a stalled VM or a long GC pause would, without burning a core.
// argv: ADDRESS. stdin: one line per call, "put KEY VALUE [W TIMEOUT_MS]".
// stdout: "ready", then "sent N" once call N is on the wire and
// "outcome N CODE: MESSAGE" (or "outcome N OK") when it settles.
import { createInterface } from 'node:readline'
import { TandemClient } from '@tandem/client'

const db = await TandemClient.connect({ servers: [process.argv[2]], livenessTimeoutMs: 1000, timeoutMs: 60_000 })
console.log('ready')
let n = 0
for await (const line of createInterface({ input: process.stdin })) {
  const [op, key, value, w, timeoutMs] = line.trim().split(' ')
  if (op !== 'put') continue
  const id = ++n
  const options = w === undefined ? {} : { w: Number(w), timeoutMs: Number(timeoutMs) }
  db.put(key, value, options).then(
    () => console.log(`outcome ${id} OK`),
    (err) => console.log(`outcome ${id} ${err.code}: ${err.message}`),
  )
  // Calls leave on the next tick; after a timer turn this one is written.
  setTimeout(() => console.log(`sent ${id}`), 20)
}
await db.close()
