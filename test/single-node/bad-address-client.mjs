// A client in a process of its own, against a node (argv: ADDRESS) that
// reports addresses nobody can dial. Prints one line per call with how it
// settled; anything the SDK throws outside a call's promise kills the
// process before "done".
import { TandemClient } from '@tandem/client'

const outcome = (p) =>
  p.then(
    () => 'OK',
    (err) => `${err.code ?? err.name}: ${err.message}`,
  )

console.log('bad seed', await outcome(TandemClient.connect({ servers: ['127.0.0.1:99999'] })))
const db = await TandemClient.connect({ servers: [process.argv[2]], timeoutMs: 1500, connectTimeoutMs: 1000 })
console.log('put', await outcome(db.put('k', 'v')))
console.log('get', await outcome(db.get('k')))
console.log('status', await outcome(db.status()))
const replicas = await TandemClient.connect({ servers: [process.argv[2]], readFrom: 'replica', timeoutMs: 1500 })
console.log('replica get', await outcome(replicas.get('k')))
await Promise.all([db.close(), replicas.close()])
console.log('done')
