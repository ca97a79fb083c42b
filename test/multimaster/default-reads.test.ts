import { TandemClient } from '@tandem/client'
import { describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { startNode } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'

/**
 * A client that has not yet heard what the nodes are sends its first read
 * as linearizable, the safe choice for a fail-over group; a multi-master
 * peer refuses that (INVALID). Once discovery finds no fail-over group the
 * read goes without it, so a fresh client's first read (and every read of
 * the CLI, which is a fresh client each time) is answered by a peer.
 */
describe('multi-master: a fresh client reads with the node default', () => {
  it('answers the first get, getAll, mget and scan of a new client, and the CLI get', async () => {
    const dir = tempDir('tandem-mm-reads-')
    const node = await startNode(dir.path, ['--mode', 'multi', '--conflict', 'lww'])
    const clients: TandemClient[] = []
    const fresh = async () => {
      const db = await TandemClient.connect({ servers: [node.address] })
      clients.push(db)
      return db
    }
    try {
      await (await fresh()).put('k', 'v')
      expect(await (await fresh()).get('k')).toBe('v')
      expect((await (await fresh()).getAll('k')).values).toEqual(['v'])
      expect(await (await fresh()).mget(['k', 'missing'])).toEqual(['v', undefined])
      const entries: [string, unknown][] = []
      for await (const entry of (await fresh()).scan({ prefix: 'k' })) entries.push(entry)
      expect(entries).toEqual([['k', 'v']])
      // Asked for explicitly, linearizable is still refused, not quietly served local.
      await expect((await fresh()).get('k', { consistency: 'linearizable' })).rejects.toMatchObject({
        code: 'INVALID',
      })

      const get = await runCli(['--server', node.address, 'get', 'k'])
      expect(get).toMatchObject({ code: 0, stdout: 'v\n' })
      const json = await runCli(['--server', node.address, '--json', 'get', 'k'])
      expect(json.code).toBe(0)
      expect(JSON.parse(json.stdout)).toMatchObject({ key: 'k', value: 'v' })
      const missing = await runCli(['--server', node.address, 'get', 'missing'])
      expect(missing.code).toBe(1)
    } finally {
      for (const db of clients) await db.close()
      await node.stop()
      dir.remove()
    }
  })
})
