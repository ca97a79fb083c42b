import { TandemClient } from '@tandem/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type NodeProcess, startNode } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { RawClient } from './raw-client.js'

/**
 * Rule: a scan page fits in one frame of the node's --max-frame-bytes.
 * Pages are cut at 1,000 entries or 1 MiB of keys and values, and also
 * where one more entry would take the reply past the frame limit, so a
 * scan of values that each fit is served whole, in as many pages as it
 * needs. Before, a page was cut only once it had passed the byte budget:
 * on a node at --max-frame-bytes 65536 a page of 2 KiB values came to
 * more than a frame, and the scan failed with TOOLARGE.
 */
describe('scan pages under --max-frame-bytes', () => {
  const dir = tempDir()
  let node: NodeProcess
  let db: TandemClient
  const value = 'v'.repeat(2048)
  beforeAll(async () => {
    node = await startNode(dir.path, ['--max-frame-bytes', '65536'])
    db = await TandemClient.connect({ servers: [node.address], maxFrameBytes: 65536 })
    for (let i = 0; i < 200; i += 20) {
      await db.batch(
        Array.from({ length: 20 }, (_, j) => ({
          type: 'put' as const,
          key: `k${String(i + j).padStart(4, '0')}`,
          value,
        })),
      )
    }
  })
  afterAll(async () => {
    await db?.close()
    await node?.stop()
    dir.remove()
  })

  it('serves a scan of 200 values of 2 KiB whole, every page under the frame limit', async () => {
    const seen: string[] = []
    for await (const [key, v] of db.scan()) {
      expect(v).toBe(value)
      seen.push(key)
    }
    expect(seen).toEqual(Array.from({ length: 200 }, (_, i) => `k${String(i).padStart(4, '0')}`))

    const raw = await RawClient.open(node.address)
    const reply = await raw.request({ id: 1, op: 'scan' })
    raw.terminate()
    const page = reply.result as { entries: unknown[]; more: boolean }
    expect(page.more).toBe(true)
    expect(page.entries.length).toBeGreaterThan(20)
    expect(Math.max(...raw.frameSizes)).toBeLessThanOrEqual(65536)
  })
})
