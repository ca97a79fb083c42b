import { createHash, randomBytes } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { metricSum } from '@tandem/bench/fixtures'
import { TandemClient } from '@tandem/client'
import { afterEach, describe, expect, it } from 'vitest'
import { FailoverGroup } from '../failover/group.js'
import { runCli } from '../helpers/cli.js'
import { NodeProcess } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'
import { cli, has, respPortOf } from '../resp/helpers.js'
import { command, RawResp } from '../resp/raw.js'

/** The message of the one -CORRUPT line in RESP replies. */
function corruptMessage(replies: string): string {
  return /-CORRUPT ([^\r]*)\r\n/.exec(replies)?.[1] ?? ''
}

/**
 * Damage that the start-time check does not see, for real: one byte flipped
 * inside a value in a table of a stopped node's LevelDB, then the node
 * started with --verify-at-start logs (tables are not read at start).
 * LevelDB checks no block checksum on reads, so only tandem's own record
 * checksum stands between that byte and a client.
 */
describe('a record damaged in a table, found on read', () => {
  const cleanups: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })

  /** A memtable of 4 MiB (LevelDB's own default): the fills below then surely leave tables to damage. */
  const SMALL_MEMTABLE = ['--tune', 'writeBufferBytes=4194304']

  function node(args: string[] = []): NodeProcess {
    const dir = tempDir()
    cleanups.push(() => dir.remove())
    const n = new NodeProcess(dir.path, ['--verify-at-start', 'logs', ...SMALL_MEMTABLE, ...args])
    cleanups.push(() => n.stop())
    return n
  }

  /** Keys k00000.. with 1 KiB random binary values (incompressible, so a table holds their bytes as they are). */
  async function fill(address: string, count: number, prefix = 'k'): Promise<Map<string, Buffer>> {
    const db = await TandemClient.connect({ servers: [address] })
    const written = new Map<string, Buffer>()
    try {
      for (let i = 0; i < count; i += 100) {
        const ops = Array.from({ length: Math.min(100, count - i) }, (_, j) => {
          const key = `${prefix}${String(i + j).padStart(5, '0')}`
          const value = randomBytes(1024)
          written.set(key, value)
          return { type: 'put' as const, key, value }
        })
        await db.batch(ops)
      }
    } finally {
      await db.close()
    }
    return written
  }

  /**
   * Flips one bit in the middle of the value of one key that a table holds
   * (not the write-ahead log, which the start-time check would find);
   * returns that key.
   */
  function damageOneValue(dataDir: string, written: Map<string, Buffer>): string {
    const dir = join(dataDir, 'db')
    const tables = readdirSync(dir)
      .filter((f) => f.endsWith('.ldb'))
      .map((f) => ({ file: join(dir, f), bytes: readFileSync(join(dir, f)) }))
    expect(tables.length, `tables in ${dir}`).toBeGreaterThan(0)
    for (const [key, value] of written) {
      for (const { file, bytes } of tables) {
        const at = bytes.indexOf(value.subarray(256, 320))
        if (at < 0) continue
        bytes[at + 20] ^= 0x04
        writeFileSync(file, bytes)
        return key
      }
    }
    throw new Error(`no table in ${dir} holds a written value`)
  }

  async function health(n: NodeProcess): Promise<{ code: number; body: { status: string; reason?: string } }> {
    const res = await fetch(`http://${n.address}/health`)
    return { code: res.status, body: await res.json() }
  }

  async function status(n: NodeProcess): Promise<{
    seq: number
    keys: number
    sync: { fullSyncs: number }
    rollbacks: { count: number; entries: number; lastFile: string | null }
  }> {
    return (await fetch(`http://${n.address}/status`)).json()
  }

  /** SHA-256 over every key and value the node holds, in key order. */
  async function digest(address: string): Promise<{ keys: number; sha: string }> {
    const db = await TandemClient.connect({ servers: [address], direct: true })
    try {
      const hash = createHash('sha256')
      let keys = 0
      for await (const [k, v] of db.scan()) {
        hash.update(`${k}\0`).update(typeof v === 'string' ? Buffer.from(v) : v)
        keys++
      }
      return { keys, sha: hash.digest('hex') }
    } finally {
      await db.close()
    }
  }

  // Rule: a node never returns bytes its disk damaged; with no other copy, it refuses reads of that key with CORRUPT.
  it('a single node refuses get, mget, scan, RESP GET and a backup of the damaged key with CORRUPT, and heals on a write', async () => {
    const n = node(['--resp-port', '0'])
    await n.start()
    const written = await fill(n.address, 8000)
    await n.stop()
    const damaged = damageOneValue(n.dataDir, written)
    await n.start()

    const db = await TandemClient.connect({ servers: [n.address] })
    cleanups.push(() => db.close())
    const refused = { code: 'CORRUPT', message: expect.stringContaining(JSON.stringify(damaged)) }
    await expect(db.get(damaged)).rejects.toMatchObject(refused)
    // Twice: a key found damaged stays refused (it is not read as it was once and then trusted).
    await expect(db.get(damaged)).rejects.toMatchObject(refused)
    const other = [...written.keys()].find((k) => k !== damaged) as string
    await expect(db.mget([other, damaged])).rejects.toMatchObject(refused)
    const scanAll = async () => {
      for await (const _ of db.scan()) {
      }
    }
    await expect(scanAll()).rejects.toMatchObject(refused)

    // Every other key still reads back exactly.
    let checked = 0
    for (const [k, v] of written) {
      if (k === damaged) continue
      if (checked++ % 40 !== 0) continue
      expect(Buffer.from((await db.get(k)) as Uint8Array).equals(v), `value of ${k}`).toBe(true)
    }

    const line = n.logs.find((l) => l.msg === 'a damaged record was found on read: its checksum does not match')
    expect(line?.key).toBe(damaged)
    const h = await health(n)
    expect(h.code).toBe(503)
    expect(h.body.status).toBe('degraded')
    expect(h.body.reason).toContain('CORRUPT')
    expect(h.body.reason).toContain(damaged)
    expect(await metricSum(n, 'tandem_damaged_reads_total')).toBeGreaterThanOrEqual(4)
    expect(await metricSum(n, 'tandem_damaged_keys')).toBe(1)

    if (has('redis-cli')) {
      const got = cli(respPortOf(n), ['get', damaged])
      expect(got.stdout + got.stderr).toContain('CORRUPT')
    }
    // Pipelined GETs are read together (one LevelDB read for the run); the damaged key fails alone.
    const others = [...written.keys()].filter((k) => k !== damaged).slice(0, 2)
    const raw = await RawResp.open(respPortOf(n))
    cleanups.push(() => raw.close())
    await raw.write(Buffer.concat([command('GET', others[0]), command('GET', damaged), command('GET', others[1])]))
    const bulk = (k: string) => `$1024\r\n${(written.get(k) as Buffer).toString('latin1')}\r\n`
    const replies = await raw.until((t) => t.endsWith(bulk(others[1])), 10_000, 'three replies')
    expect(replies).toBe(`${bulk(others[0])}-CORRUPT ${corruptMessage(replies)}\r\n${bulk(others[1])}`)
    expect(corruptMessage(replies)).toContain(JSON.stringify(damaged))

    const backup = await runCli(['--server', n.address, 'snapshot', 'save', join(n.dataDir, '..', 'backup.tsnap')])
    expect(backup.code).not.toBe(0)
    expect(backup.stderr).toContain('CORRUPT')

    // What the operator does on a node with no other copy: write the key again.
    const fresh = randomBytes(1024)
    await db.put(damaged, fresh)
    expect(Buffer.from((await db.get(damaged)) as Uint8Array).equals(fresh)).toBe(true)
    expect((await health(n)).code).toBe(200)
    let count = 0
    for await (const _ of db.scan()) count++
    expect(count).toBe(written.size)
  })

  // Rule: a replica that finds damage on read saves its log to a rollback file, discards its data and takes a full sync.
  it('a replica refuses the damaged key, then resyncs in full from its master and ends with its contents', async () => {
    const master = node()
    await master.start()
    const replica = node(['--replicaof', master.address])
    await replica.start()
    const written = await fill(master.address, 8000)
    const head = (await status(master)).seq
    await waitFor(async () => (await status(replica)).seq === head, { what: `the replica at seq ${head}` })
    await replica.stop()
    const damaged = damageOneValue(replica.dataDir, written)
    // Writes the replica missed while down come with the resync too.
    await fill(master.address, 100, 'late')
    await replica.start()

    const db = await TandemClient.connect({ servers: [replica.address], direct: true })
    cleanups.push(() => db.close())
    await expect(db.get(damaged)).rejects.toMatchObject({
      code: 'CORRUPT',
      message: expect.stringContaining(JSON.stringify(damaged)),
    })
    await replica.waitForLog((l) => l.msg === 'discarded the damaged data; resyncing from the upstream')
    const want = await digest(master.address)
    expect(want.keys).toBe(8100)
    await waitFor(async () => (await digest(replica.address)).sha === want.sha, {
      what: "the replica to hold the master's contents",
      timeoutMs: 60_000,
    })
    expect(Buffer.from((await db.get(damaged)) as Uint8Array).equals(written.get(damaged) as Buffer)).toBe(true)
    const st = await status(replica)
    expect(st.seq).toBe((await status(master)).seq)
    // Its key count starts again from the data it took, not the data it dropped.
    expect(st.keys).toBe(8100)
    expect(st.sync.fullSyncs).toBeGreaterThanOrEqual(1)
    expect(st.rollbacks.count).toBeGreaterThanOrEqual(1)
    expect(st.rollbacks.lastFile && existsSync(st.rollbacks.lastFile)).toBeTruthy()
    expect((await health(replica)).code).toBe(200)
  })

  // Rule: a fail-over member that is not master has a healthy copy in its master: it resyncs like a replica.
  it('a fail-over member that is not master resyncs from the master after a read finds damage', async () => {
    const group = await new FailoverGroup().start({ size: 3, args: ['--verify-at-start', 'logs', ...SMALL_MEMTABLE] })
    cleanups.push(() => group.teardown())
    const master = await group.waitForMaster()
    const written = await fill(master.address, 8000)
    const head = (await status(master)).seq
    const member = group.nodes.find((n) => n !== master) as NodeProcess
    await waitFor(async () => (await status(member)).seq === head, { what: `the member at seq ${head}` })
    await member.stop()
    const damaged = damageOneValue(member.dataDir, written)
    await member.start()
    // Read at once: the member may not follow its master yet, and then resyncs once it does.

    const db = await TandemClient.connect({ servers: [member.address], direct: true })
    cleanups.push(() => db.close())
    await expect(db.get(damaged)).rejects.toMatchObject({ code: 'CORRUPT' })
    await member.waitForLog((l) => l.msg === 'discarded the damaged data; resyncing from the upstream')
    const want = await digest(master.address)
    await waitFor(async () => (await digest(member.address)).sha === want.sha, {
      what: "the member to hold the master's contents",
      timeoutMs: 60_000,
    })
    expect((await status(member)).rollbacks.count).toBeGreaterThanOrEqual(1)
  })
})
