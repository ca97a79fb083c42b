import { describe, expect, it } from 'vitest'
import { runCli } from './helpers/cli.js'
import { useNodeAndClient } from './helpers/node-and-client.js'

interface User {
  name: string
  tags: string[]
  age: number | null
}

describe('SDK JSON value helpers', () => {
  const one = useNodeAndClient()

  it('putJson stores JSON text that getJson parses back, and the CLI prints', async () => {
    const ada: User = { name: 'Ada ✓', tags: ['a', 'b\nc'], age: null }
    await one.db.putJson('user:1', ada, { w: 0 })
    expect(await one.db.getJson<User>('user:1')).toEqual(ada)
    expect(await one.db.get('user:1')).toBe(JSON.stringify(ada))
    expect((await runCli(['--server', one.node.address, 'get', 'user:1'])).stdout).toBe(`${JSON.stringify(ada)}\n`)
    expect(await one.db.getJson('user:none')).toBeUndefined()
  })

  it('refuses what JSON cannot hold, and reads of values that are not JSON fail with INVALID', async () => {
    await expect(one.db.putJson('j', undefined)).rejects.toBeInstanceOf(TypeError)
    await expect(one.db.putJson('j', 1n)).rejects.toBeInstanceOf(TypeError)
    const cycle: Record<string, unknown> = {}
    cycle.self = cycle
    await expect(one.db.putJson('j', cycle)).rejects.toBeInstanceOf(TypeError)
    expect(await one.db.get('j')).toBeUndefined()
    await one.db.put('text', 'not json')
    await expect(one.db.getJson('text')).rejects.toMatchObject({ code: 'INVALID' })
    await one.db.put('bytes', new Uint8Array([123, 125]))
    await expect(one.db.getJson('bytes')).rejects.toMatchObject({ code: 'INVALID' })
  })
})
