import type { TandemError } from '@tandem/protocol'
import { describe, expect, it } from 'vitest'
import { Topology } from './replication/topology.js'
import { type Role, Roles } from './roles.js'
import type { HistoryEpoch } from './storage/store.js'
import { silentLogger } from './util/logger.js'

/** Roles over fakes that record what each transition did to the rest of the node. */
function machine(initial: Role, options: { inGroup?: boolean } = {}) {
  const history: HistoryEpoch[] = [{ epoch: 1, startSeq: 1, by: 'other' }]
  const did: string[] = []
  const failed: TandemError[] = []
  const store = {
    nodeId: 'me',
    lastSeq: 10,
    get history() {
      return history
    },
    get epoch() {
      return history[history.length - 1].epoch
    },
    beginEpoch: async (epoch: number, by: string) => {
      did.push(`beginEpoch ${epoch}`)
      history.push({ epoch, startSeq: 11, by })
      return history[history.length - 1]
    },
    idle: async () => {},
  }
  const topology = new Topology([])
  const announced: [string | null, number][] = []
  topology.onNewMaster = (master, epoch) => announced.push([master, epoch])
  const roles = new Roles(
    {
      store: store as never,
      logger: silentLogger,
      topology,
      address: '127.0.0.1:1',
      nodeId: 'me',
      upstreamSide: {
        historyChanged: () => did.push('historyChanged'),
        disconnectAll: () => did.push('disconnectAll'),
      } as never,
      watchers: { roleChanged: () => did.push('roleChanged') } as never,
      acks: { failAll: (err: TandemError) => failed.push(err) } as never,
      readIndex: { failAll: (err: TandemError) => failed.push(err) } as never,
      inGroup: options.inGroup ?? false,
      dial: (upstream: string) => {
        did.push(`dial ${upstream}`)
        return {
          stop: async () => {
            did.push(`stop ${upstream}`)
          },
        } as never
      },
    },
    initial,
  )
  return { roles, topology, did, failed, announced }
}

describe('role transitions', () => {
  it('a witness follows no one, and stays a witness', async () => {
    const { roles, did } = machine('witness')
    await expect(roles.follow('127.0.0.1:2')).rejects.toMatchObject({ code: 'INVALID' })
    expect(roles.role).toBe('witness')
    expect(did).toEqual([])
  })

  it('a node does not follow itself', async () => {
    const { roles } = machine('master')
    await expect(roles.follow('127.0.0.1:1')).rejects.toMatchObject({ code: 'INVALID' })
    expect(roles.role).toBe('master')
  })

  it('stepping down fences a master at once and fails what waits on it; a replica ignores it', () => {
    const { roles, did, failed } = machine('master')
    roles.stepDown(3)
    expect(roles.role).toBe('replica')
    expect(roles.fenced).toBe(true)
    expect(failed.map((e) => e.code)).toEqual(['UNCERTAIN', 'FENCED'])
    expect(did).toEqual(['disconnectAll', 'roleChanged'])
    roles.stepDown(4)
    expect(failed).toHaveLength(2)
  })

  it('following clears the fence and the master its old upstream named (outside a group)', async () => {
    const { roles, topology } = machine('master')
    roles.stepDown(2)
    topology.master = '127.0.0.1:9'
    await roles.follow('127.0.0.1:2')
    expect(roles.role).toBe('replica')
    expect(roles.fenced).toBe(false)
    expect(topology.upstream).toBe('127.0.0.1:2')
    expect(roles.following()).toBe('127.0.0.1:2')
    expect(topology.master).toBeNull()
  })

  it('in a fail-over group the master comes from heartbeats: following keeps it', async () => {
    const { roles, topology } = machine('replica', { inGroup: true })
    topology.master = '127.0.0.1:9'
    await roles.follow('127.0.0.1:2')
    expect(topology.master).toBe('127.0.0.1:9')
  })

  it('transitions run one at a time: a take-over waits for the follow before it, then stops its link', async () => {
    const { roles, topology, did, announced } = machine('replica', { inGroup: true })
    const follow = roles.follow('127.0.0.1:2')
    const takeOver = roles.takeOver(5, 'election')
    await Promise.all([follow, takeOver])
    expect(did).toEqual([
      'roleChanged',
      'dial 127.0.0.1:2',
      'stop 127.0.0.1:2',
      'beginEpoch 5',
      'historyChanged',
      'roleChanged',
    ])
    expect(roles.role).toBe('master')
    expect(roles.following()).toBeNull()
    expect(topology.upstream).toBeNull()
    expect(announced).toEqual([['127.0.0.1:1', 5]])
  })

  it('becoming master begins an epoch past any it stepped down for', async () => {
    const { roles, did } = machine('master')
    roles.stepDown(7)
    roles.newestEpoch = 7
    await roles.becomeMaster('replicaof no one')
    expect(roles.role).toBe('master')
    expect(did).toContain('beginEpoch 8')
  })
})
