import { TandemError } from '@tandem/client'
import { afterEach, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { PeerGroup } from './peers.js'

/**
 * `w: N` on a multi-master node counts the peers that hold the write, and
 * its group is itself and its --peers (as for 'majority'). A write asking
 * for more peers than that is refused with INVALID before anything is
 * written, naming N and the peer count, instead of being committed and
 * then waiting out its whole timeout for acks that cannot come.
 */
const groups: PeerGroup[] = []
afterEach(async () => {
  await Promise.all(groups.splice(0).map((g) => g.teardown()))
})

const refusal = (p: Promise<unknown>) =>
  p.then(
    () => null,
    (err: unknown) => (err instanceof TandemError ? { code: err.code, message: err.message } : { code: String(err) }),
  )

describe('multi-master w', () => {
  it('the CLI and the SDK are refused w above the peer count with INVALID, and nothing is written', async () => {
    const group = new PeerGroup()
    groups.push(group)
    await group.start({ size: 2, conflict: 'lww' })
    const server = group.nodes[0].address
    const before = (await group.status(0)).seq

    // A timeout far above any wait the test tolerates: the refusal cannot be a TIMEOUT come early.
    const put = await runCli(['--server', server, 'put', 'k', 'v', '--w', '2', '--timeout', '600000'])
    expect(put.code).toBe(2)
    expect(put.stdout).toBe('')
    expect(put.stderr.trim()).toBe(
      'error INVALID: w 2 asks for more peers than this node has (1 in --peers): a multi-master write waits for at most its peers; nothing was written',
    )

    const db = await group.client(0, { timeoutMs: 600_000 })
    expect(await refusal(db.put('k', 'v', { w: 2, timeoutMs: 600_000 }))).toMatchObject({ code: 'INVALID' })
    expect(
      await refusal(db.batch([{ type: 'put', key: 'b', value: '1' }], { w: 5, timeoutMs: 600_000 })),
    ).toMatchObject({ code: 'INVALID', message: expect.stringContaining('w 5 ') })
    expect(await refusal(db.del('k', { w: 3, timeoutMs: 600_000 }))).toMatchObject({ code: 'INVALID' })

    // Nothing of the refused writes reached the log or the data, on either node.
    expect((await group.status(0)).seq).toBe(before)
    for (const i of [0, 1]) {
      const get = await runCli(['--server', group.nodes[i].address, '--direct', 'get', 'k'])
      expect(get.code).toBe(1)
    }

    // w up to the peer count, and majority, are taken as before.
    const ok = await runCli(['--server', server, 'put', 'k', 'v', '--w', '1'])
    expect(ok).toMatchObject({ code: 0, stdout: 'OK\n' })
    expect(await db.put('m', 'v', { w: 'majority', timeoutMs: 10_000 })).toMatchObject({ origin: expect.any(String) })
  })

  it('each node counts its own --peers: in a line of three, w 2 is refused at an end and taken in the middle', async () => {
    const group = new PeerGroup()
    groups.push(group)
    await group.start({ size: 3, conflict: 'lww', topology: 'line' })
    const end = await runCli(['--server', group.nodes[0].address, 'put', 'e', 'v', '--w', '2'])
    expect(end.code).toBe(2)
    expect(end.stderr).toMatch(/^error INVALID: w 2 asks for more peers than this node has \(1 in --peers\)/)
    const middle = await runCli(['--server', group.nodes[1].address, 'put', 'm', 'v', '--w', '2'])
    expect(middle).toMatchObject({ code: 0, stdout: 'OK\n' })
  })
})
