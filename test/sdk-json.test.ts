import { TandemClient } from '@tandem/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from './helpers/cli.js'
import { type NodeProcess, startNode } from './helpers/node-process.js'
import { tempDir } from './helpers/temp-dir.js'

interface User {
  name: string
  tags: string[]
  age: number | null
}

describe('SDK JSON value helpers', () => {
  const dir = tempDir()
  let node: NodeProcess
  let db: TandemClient

  beforeAll(async () => {
    node = await startNode(dir.path)
    db = await TandemClient.connect({ servers: [node.address] })
  })
  afterAll(async () => {
    await db?.close()
    await node?.stop()
    dir.remove()
  })

  it('putJson stores JSON text that getJson parses back, and the CLI prints', async () => {
    const ada: User = { name: 'Ada ✓', tags: ['a', 'b\nc'], age: null }
    await db.putJson('user:1', ada, { w: 0 })
    expect(await db.getJson<User>('user:1')).toEqual(ada)
    expect(await db.get('user:1')).toBe(JSON.stringify(ada))
    expect((await runCli(['--server', node.address, 'get', 'user:1'])).stdout).toBe(`${JSON.stringify(ada)}\n`)
    expect(await db.getJson('user:none')).toBeUndefined()
  })

  it('refuses what JSON cannot hold, and reads of values that are not JSON fail with INVALID', async () => {
    await expect(db.putJson('j', undefined)).rejects.toBeInstanceOf(TypeError)
    await expect(db.putJson('j', 1n)).rejects.toBeInstanceOf(TypeError)
    const cycle: Record<string, unknown> = {}
    cycle.self = cycle
    await expect(db.putJson('j', cycle)).rejects.toBeInstanceOf(TypeError)
    expect(await db.get('j')).toBeUndefined()
    await db.put('text', 'not json')
    await expect(db.getJson('text')).rejects.toMatchObject({ code: 'INVALID' })
    await db.put('bytes', new Uint8Array([123, 125]))
    await expect(db.getJson('bytes')).rejects.toMatchObject({ code: 'INVALID' })
  })
})
