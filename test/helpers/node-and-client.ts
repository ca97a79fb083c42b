import { type ConnectOptions, TandemClient } from '@tandem/client'
import { afterAll, beforeAll } from 'vitest'
import { type NodeProcess, startNode } from './node-process.js'
import { tempDir } from './temp-dir.js'

/** One node and a client to it; `node` and `db` are set once the describe block's beforeAll has run. */
export interface NodeAndClient {
  readonly dir: { path: string; remove(): void }
  node: NodeProcess
  db: TandemClient
}

/**
 * A tandem-server with extra flags `args` on a temp dir of its own, and an
 * SDK client to it (with `client` options), for the tests of the describe
 * block that calls this: started before them; closed, stopped and removed
 * after them. `env` is added to the node process's environment.
 */
export function useNodeAndClient(
  args: string[] = [],
  client: Partial<ConnectOptions> = {},
  env: Record<string, string> = {},
): NodeAndClient {
  const fixture = { dir: tempDir() } as NodeAndClient
  beforeAll(async () => {
    fixture.node = await startNode(fixture.dir.path, args, env)
    fixture.db = await TandemClient.connect({ ...client, servers: [fixture.node.address] })
  })
  afterAll(async () => {
    await fixture.db?.close()
    await fixture.node?.stop()
    fixture.dir.remove()
  })
  return fixture
}
