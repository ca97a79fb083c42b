import { TandemClient } from '@tandem/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type NodeProcess, startNode } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'

/**
 * A leading U+FEFF is part of a key or a value like any other character.
 * msgpackr decodes strings over 64 bytes with a TextDecoder when its native
 * addon is not there, and a default TextDecoder drops a leading U+FEFF; the
 * nodes here run without the addon (MSGPACKR_NATIVE_ACCELERATION_DISABLED),
 * a master and its replica, so every decoding on the write path, the log
 * and the replication stream takes the JavaScript path.
 */
describe('strings that start with U+FEFF, on nodes without msgpackr native decoding', () => {
  const masterDir = tempDir()
  const replicaDir = tempDir()
  const env = { MSGPACKR_NATIVE_ACCELERATION_DISABLED: 'true' }
  let master: NodeProcess
  let replica: NodeProcess
  let db: TandemClient

  beforeAll(async () => {
    master = await startNode(masterDir.path, [], env)
    replica = await startNode(replicaDir.path, ['--replicaof', master.address], env)
    db = await TandemClient.connect({ servers: [master.address] })
  })
  afterAll(async () => {
    await db?.close()
    await replica?.stop()
    await master?.stop()
    masterDir.remove()
    replicaDir.remove()
  })

  it('keeps the BOM in long and short keys and string values, on the master and on its replica', async () => {
    const pairs: [string, string][] = [
      [`\uFEFF${'k'.repeat(80)}`, `\uFEFF${'v'.repeat(200)}`],
      ['\uFEFFshort', '\uFEFFv'],
      [`plain-${'p'.repeat(70)}`, `\uFEFF\uFEFF${'w'.repeat(70)}`],
    ]
    for (const [key, value] of pairs) await db.put(key, value, { w: 1, timeoutMs: 10_000 })
    for (const [key, value] of pairs) expect(await db.get(key)).toBe(value)
    const scanned = new Map<string, unknown>()
    for await (const [key, value] of db.scan({})) scanned.set(key, value)
    expect(scanned).toEqual(new Map(pairs))

    const fromReplica = await TandemClient.connect({ servers: [replica.address], readFrom: 'replica' })
    try {
      await waitFor(async () => (await fromReplica.get(pairs[2][0])) !== undefined, {
        what: 'the last write on the replica',
      })
      for (const [key, value] of pairs) expect(await fromReplica.get(key)).toBe(value)
    } finally {
      await fromReplica.close()
    }
  })
})
