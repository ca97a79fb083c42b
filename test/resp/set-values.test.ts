import { afterAll, describe, expect, it } from 'vitest'
import { PeerGroup } from '../multimaster/peers.js'
import { Cluster, waitCaughtUp } from '../replication/cluster.js'
import { respPortOf } from './helpers.js'
import { command, RawResp } from './raw.js'

/**
 * A plain SET's value is a string when it is valid UTF-8 and bytes
 * otherwise, whatever path it takes: the master's record, its log entry (what
 * a replica applies and a peer resolves), and reads through the SDK and
 * RESP on every node. The node carries a UTF-8 value's bytes to the record
 * and the entry without making a string of it: these check that what
 * arrives everywhere is still the string, byte for byte.
 */
const VALUES: [string, Buffer][] = [
  ['ascii', Buffer.from('x'.repeat(100))],
  ['accents', Buffer.from('h\u00e9llo \u2713 \u{1f600} \u00e9t\u00e9')],
  ['empty', Buffer.alloc(0)],
  // Each string header size: str8, str16, str32.
  ['str8', Buffer.from('\u00e9'.repeat(100))],
  ['str16', Buffer.from('\u20ac'.repeat(3000))],
  ['str32', Buffer.from('v'.repeat(70_000))],
  ['binary', Buffer.from([0xff, 0x00, 0x0d, 0x0a, 0x80, 0x41, 0xc3])],
  // A character cut in half: not UTF-8, so bytes.
  ['cut', Buffer.from('\u00e9\u00e9').subarray(0, 3)],
]

/** SETs every value in one pipelined write and waits for the OKs. */
async function setAll(port: number, prefix: string): Promise<void> {
  const resp = await RawResp.open(port)
  try {
    await resp.write(Buffer.concat(VALUES.map(([name, bytes]) => command('SET', `${prefix}${name}`, bytes))))
    const ok = '+OK\r\n'.repeat(VALUES.length)
    expect(await resp.until((t) => t.length >= ok.length, 30_000, 'the OKs')).toBe(ok)
  } finally {
    resp.close()
  }
}

/** GETs every value over RESP: each reply's bulk bytes. */
async function getAll(port: number, prefix: string): Promise<Buffer[]> {
  const resp = await RawResp.open(port)
  try {
    await resp.write(Buffer.concat(VALUES.map(([name]) => command('GET', `${prefix}${name}`))))
    const want = VALUES.reduce((n, [, b]) => n + `$${b.length}\r\n`.length + b.length + 2, 0)
    await resp.until((t) => t.length >= want, 30_000, 'the values')
    const all = Buffer.concat(resp.received)
    const out: Buffer[] = []
    let at = 0
    for (let i = 0; i < VALUES.length; i++) {
      const end = all.indexOf('\r\n', at)
      const length = Number(all.toString('latin1', at + 1, end))
      out.push(all.subarray(end + 2, end + 2 + length))
      at = end + 2 + length + 2
    }
    return out
  } finally {
    resp.close()
  }
}

/** What the SDK must read for a value SET over RESP. */
function expected(bytes: Buffer): string | Buffer {
  const text = bytes.toString('utf8')
  return Buffer.from(text, 'utf8').equals(bytes) ? text : bytes
}

function asRead(value: unknown): string | Buffer {
  return typeof value === 'string' ? value : Buffer.from(value as Uint8Array)
}

describe('RESP SET values: strings when UTF-8, bytes otherwise, on every node', () => {
  const cluster = new Cluster()
  const groups: PeerGroup[] = []
  afterAll(async () => {
    await Promise.all(groups.map((g) => g.teardown()))
    await cluster.teardown()
  })

  it('a master and its replica store and answer each value as the SDK reads it, and RESP byte for byte', async () => {
    const master = await cluster.start(['--resp-port', '0'])
    const replica = await cluster.start(['--replicaof', master.address, '--resp-port', '0'])
    await setAll(respPortOf(master), 'k:')
    await waitCaughtUp(master, [replica])
    for (const node of [master, replica]) {
      const db = await cluster.client({ servers: [node.address], direct: true })
      for (const [name, bytes] of VALUES) {
        expect(asRead(await db.get(`k:${name}`)), `${name} on ${node.address}`).toEqual(expected(bytes))
      }
      expect(await getAll(respPortOf(node), 'k:')).toEqual(VALUES.map(([, b]) => b))
    }
    // A TTL SET takes the other path (options): the same values read the same.
    const resp = await RawResp.open(respPortOf(master))
    await resp.write(command('SET', 'ttl', VALUES[1][1], 'PX', '600000'))
    expect(await resp.until((t) => t.endsWith('\r\n'))).toBe('+OK\r\n')
    resp.close()
    const db = await cluster.client({ servers: [master.address] })
    expect(await db.get('ttl')).toBe(expected(VALUES[1][1]))
  })

  it('a pipelined run of SETs answers each in order: refused ones among them, a GET after, and a replica refusing all', async () => {
    const master = await cluster.start(['--resp-port', '0', '--max-key-bytes', '100'])
    const replica = await cluster.start(['--replicaof', master.address, '--resp-port', '0'])
    const pipeline = Buffer.concat([
      command('SET', 'r', '1'),
      command('SET', Buffer.from([0x72, 0xff]), 'not a UTF-8 key'),
      command('SET', 'r', '2'),
      command('SET', 'k'.repeat(101), 'key too large'),
      command('SET', 's', 'x'),
      command('GET', 'r'),
      command('SET', 'r', '3'),
      command('SET', 's', 'y', 'NX'),
      command('SET', 't', 'z'),
      command('GET', 'r'),
      command('MGET', 's', 't'),
    ])
    const resp = await RawResp.open(respPortOf(master))
    await resp.write(pipeline)
    const want = [
      '+OK',
      '-ERR tandem keys are UTF-8 text; this key is not valid UTF-8',
      '+OK',
      '-TOOLARGE key is 101 bytes; the limit is 100',
      '+OK',
      '$1',
      '2',
      '+OK',
      '$-1',
      '+OK',
      '$1',
      '3',
      '*2',
      '$1',
      'x',
      '$1',
      'z',
      '',
    ].join('\r\n')
    expect(await resp.until((t) => t.length >= want.length, 30_000, 'every reply')).toBe(want)
    resp.close()
    await waitCaughtUp(master, [replica])
    const db = await cluster.client({ servers: [replica.address], direct: true })
    expect([await db.get('r'), await db.get('s'), await db.get('t')]).toEqual(['3', 'x', 'z'])
    // A replica refuses every SET of a run, each with READONLY, and nothing is written.
    const onReplica = await RawResp.open(respPortOf(replica))
    await onReplica.write(Buffer.concat([command('SET', 'r', '4'), command('SET', 'u', '1'), command('GET', 'r')]))
    const replies = await onReplica.until((t) => t.endsWith('$1\r\n3\r\n'), 30_000, 'the replies')
    expect(replies.split('\r\n').map((line) => line.split(' ')[0])).toEqual(['-READONLY', '-READONLY', '$1', '3', ''])
    onReplica.close()
  })

  it('a multi-master peer resolves each value written over RESP on the other into the same', async () => {
    for (const conflict of ['lww', 'vclock'] as const) {
      const group = new PeerGroup()
      groups.push(group)
      await group.start({ size: 2, conflict, args: ['--resp-port', '0'] })
      await setAll(respPortOf(group.nodes[0]), `${conflict}:`)
      await group.waitConverged()
      for (const i of [0, 1]) {
        const db = await group.client(i, { direct: true })
        for (const [name, bytes] of VALUES) {
          expect(asRead(await db.get(`${conflict}:${name}`)), `${conflict} ${name} on node ${i}`).toEqual(
            expected(bytes),
          )
        }
        expect(await getAll(respPortOf(group.nodes[i]), `${conflict}:`)).toEqual(VALUES.map(([, b]) => b))
      }
    }
  })
})
