import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { TandemClient } from '@tandem/client'
import { describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { startNode } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { statusOf } from './peers.js'

/**
 * A --peers address where something answers HTTP but is no tandem node (a
 * typo'd port, another service) leaves the link connecting forever; status
 * must say why, and the text status must not blame a digest the peer never
 * sent.
 */
describe('multi-master: a peer address that is not a tandem node', () => {
  it('shows why in the link reason and logs it once', async () => {
    const http = createServer((_req, res) => {
      res.statusCode = 404
      res.end('not here')
    })
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    const notTandem = `127.0.0.1:${(http.address() as AddressInfo).port}`
    const dir = tempDir('tandem-mm-notpeer-')
    const node = await startNode(dir.path, ['--mode', 'multi', '--peers', notTandem])
    try {
      const deadline = Date.now() + 15_000
      let reason: string | null = null
      while (Date.now() < deadline) {
        reason = (await statusOf(node)).multi!.peers[0].reason
        if (reason !== null) break
        await new Promise((r) => setTimeout(r, 100))
      }
      expect(reason).toMatch(new RegExp(`not a tandem node: ${notTandem} answered the peer handshake with HTTP 404`))
      const peer = (await statusOf(node)).multi!.peers[0]
      expect(peer.link).toBe('connecting')
      expect(node.logs.filter((l) => l.msg === 'peer address does not answer as a tandem node')).toHaveLength(1)

      const text = await runCli(['--server', node.address, 'status'])
      expect(text.code).toBe(0)
      expect(text.stdout).toMatch(/not a tandem node/)
      expect(text.stdout).not.toMatch(/not comparable/)

      // The node itself still serves: writes taken (no peer ever answered: after 2 s) and read back.
      const db = await TandemClient.connect({ servers: [node.address] })
      try {
        await db.put('k', 'v')
        expect(await db.get('k')).toBe('v')
      } finally {
        await db.close()
      }
    } finally {
      await node.stop()
      dir.remove()
      await new Promise<void>((resolve) => http.close(() => resolve()))
    }
  })
})
