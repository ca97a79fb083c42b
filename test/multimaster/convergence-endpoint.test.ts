import { afterEach, describe, expect, it } from 'vitest'
import { type NodeProcess, startNode } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'
import { PeerGroup, type PeerStatus } from './peers.js'

/**
 * GET /convergence: the version vector, digest and lag a node's status
 * holds, answered alone (for pollers that time a heal), behind the same
 * auth as /status.
 */
interface Convergence {
  vv: Record<string, number>
  digest: string | null
  lagEntries: number
}

async function convergenceOf(node: NodeProcess, token?: string): Promise<Response> {
  return fetch(`http://${node.address}/convergence`, token ? { headers: { authorization: `Bearer ${token}` } } : {})
}

const nonZero = (vv: Record<string, number>) => Object.fromEntries(Object.entries(vv).filter(([, n]) => n > 0))
const lagOf = (s: PeerStatus) => (s.multi?.peers ?? []).reduce((n, p) => n + p.lagEntries, 0)

describe('GET /convergence', () => {
  let group: PeerGroup | undefined
  let single: NodeProcess | undefined
  const dir = tempDir()
  afterEach(async () => {
    await group?.teardown()
    group = undefined
    await single?.stop()
    single = undefined
    dir.remove()
  })

  it('answers what status says of the version vector, digest and lag, apart and once healed', async () => {
    group = await new PeerGroup().start({ size: 2, conflict: 'lww' })
    const g = group
    g.cut(0, 1)
    const clients = await Promise.all([0, 1].map((i) => g.client(i)))
    await Promise.all(clients.map((db, i) => Promise.all([...Array(50).keys()].map((k) => db.put(`n${i}:${k}`, 'v')))))
    // Apart: each node's own figures, which differ between them (a status read
    // after a still idle node's answer must say the same).
    const apart: Convergence[] = []
    for (let i = 0; i < 2; i++) {
      const res = await convergenceOf(g.nodes[i])
      expect(res.status).toBe(200)
      const view = (await res.json()) as Convergence
      const status = await g.status(i)
      expect(nonZero(view.vv)).toEqual(nonZero(status.vv))
      expect(view.digest).toBe(status.digest)
      expect(view.lagEntries).toBe(lagOf(status))
      apart.push(view)
    }
    expect(apart[0].digest).not.toBe(apart[1].digest)

    g.healAll()
    const views: Convergence[] = []
    await waitFor(
      async () => {
        views.length = 0
        for (const node of g.nodes) views.push((await (await convergenceOf(node)).json()) as Convergence)
        return (
          views.every((v) => v.lagEntries === 0 && v.digest === views[0].digest) &&
          JSON.stringify(nonZero(views[0].vv)) === JSON.stringify(nonZero(views[1].vv))
        )
      },
      { what: 'both nodes to say they converged', timeoutMs: 60_000 },
    )
    const statuses = await g.waitConverged()
    expect(views[0].digest).toBe(statuses[0].digest)
    expect(nonZero(views[0].vv)).toEqual(nonZero(statuses[1].vv))
  })

  it('needs the auth token as /status does; a single-master node has no digest', async () => {
    single = await startNode(dir.path, ['--auth-token', 'conv-token'])
    expect((await convergenceOf(single)).status).toBe(401)
    expect((await convergenceOf(single, 'wrong')).status).toBe(401)
    const res = await convergenceOf(single, 'conv-token')
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ vv: {}, digest: null, lagEntries: 0 })
  })
})
