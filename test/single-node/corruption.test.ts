import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { TandemClient, type Value } from '@tandem/client'
import { liveTables } from '@tandem/server'
import { afterEach, describe, expect, it } from 'vitest'
import { NodeProcess } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'
import { waitFor } from '../helpers/wait.js'

/**
 * Damage on disk, for real: one byte flipped in a file of a stopped node's
 * LevelDB (a table, or the write-ahead log), then the node restarted. A
 * node alone must refuse to serve, naming the file; a replica must discard
 * its copy and take a full sync from its upstream.
 */
describe('a damaged data dir', () => {
  const cleanups: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })

  /** A memtable of 4 MiB (LevelDB's own default): the fills below then surely leave tables to damage. */
  const SMALL_MEMTABLE = ['--tune', 'writeBufferBytes=4194304']

  function node(args: string[] = []): NodeProcess {
    const dir = tempDir()
    cleanups.push(() => dir.remove())
    const n = new NodeProcess(dir.path, [...SMALL_MEMTABLE, ...args])
    cleanups.push(() => n.stop())
    return n
  }

  /** Keys t0000.. with 1 KiB random values: enough for LevelDB to write tables, not just its log. */
  async function fill(address: string, count: number, prefix = 't'): Promise<Map<string, string>> {
    const db = await TandemClient.connect({ servers: [address] })
    const written = new Map<string, string>()
    try {
      for (let i = 0; i < count; i += 100) {
        const ops = Array.from({ length: 100 }, (_, j) => {
          const key = `${prefix}${String(i + j).padStart(5, '0')}`
          const value = randomBytes(512).toString('hex')
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
   * Flips one bit of the byte a third of the way into the largest file of `kind` in the node's db dir; returns its name.
   * Tables are chosen among those the manifest lists as live: a stop or a kill during a memtable flush leaves
   * a table on disk that LevelDB deletes at its next open, so damage in it harms nothing and is not looked for.
   */
  async function flipByte(dataDir: string, kind: '.ldb' | '.log'): Promise<string> {
    const dir = join(dataDir, 'db')
    const live = kind === '.ldb' ? new Set(await liveTables(dir)) : null
    const files = readdirSync(dir).filter((f) => f.endsWith(kind) && f !== 'LOG' && (!live || live.has(f)))
    expect(files.length, `${kind} files in ${dir}`).toBeGreaterThan(0)
    const file = files.sort((a, b) => statSync(join(dir, b)).size - statSync(join(dir, a)).size)[0]
    const bytes = readFileSync(join(dir, file))
    bytes[Math.floor(bytes.length / 3)] ^= 0x10
    writeFileSync(join(dir, file), bytes)
    return file
  }

  async function contents(address: string): Promise<Map<string, Value>> {
    const db = await TandemClient.connect({ servers: [address], direct: true })
    try {
      const out = new Map<string, Value>()
      for await (const [k, v] of db.scan()) out.set(k, v)
      return out
    } finally {
      await db.close()
    }
  }

  /** Starts a node that must refuse; returns what it said on stderr. */
  async function expectRefusal(n: NodeProcess): Promise<string> {
    await expect(n.start()).rejects.toThrow(/exited \(1\) before listening/)
    return n.logs.map((l) => JSON.stringify(l)).join('\n')
  }

  // Rule: a node alone never serves a table whose checksum fails; it names the file.
  it('a single node with a flipped byte in a table refuses to start, naming the file', async () => {
    const n = node()
    await n.start()
    await fill(n.address, 8000)
    await n.stop()
    const file = await flipByte(n.dataDir, '.ldb')
    const said = await expectRefusal(n)
    expect(said).toContain('CORRUPT')
    expect(said).toContain(file)
  })

  // Rule: a damaged write-ahead log record is never dropped in silence (it held acknowledged writes).
  it('a single node with a flipped byte in its write-ahead log refuses to start, naming the file', async () => {
    const n = node()
    await n.start()
    const db = await TandemClient.connect({ servers: [n.address] })
    for (let i = 0; i < 130; i++) await db.put(`w${i}`, `value ${i}`)
    await db.close()
    await n.kill('SIGKILL')
    const file = await flipByte(n.dataDir, '.log')
    const said = await expectRefusal(n)
    expect(said).toContain('CORRUPT')
    expect(said).toContain(file)
  })

  for (const kind of ['.ldb', '.log'] as const) {
    // Rule: a damaged replica discards its copy, keeps what it could read in a rollback file, and resyncs in full.
    it(`a replica with a flipped byte in ${kind === '.ldb' ? 'a table' : 'its write-ahead log'} resyncs from its upstream`, async () => {
      const master = node()
      await master.start()
      const replica = node(['--replicaof', master.address])
      await replica.start()
      const written = await fill(master.address, kind === '.ldb' ? 8000 : 300)
      const head = await seqOf(master)
      await waitFor(async () => (await seqOf(replica)) === head, { what: `the replica at seq ${head}` })
      await replica.kill('SIGKILL')
      const file = await flipByte(replica.dataDir, kind)
      // Writes the replica missed while down come with the full sync too.
      for (const [k, v] of await fill(master.address, 100, 'late')) written.set(k, v)

      await replica.start()
      const damaged = await replica.waitForLog(
        (l) => l.msg === 'the data dir is damaged; discarding it and resyncing from the upstream',
      )
      expect(JSON.stringify(damaged)).toContain(file)
      const masterHead = await seqOf(master)
      await waitFor(async () => (await seqOf(replica)) === masterHead, { what: 'the replica resynced' })
      const got = await contents(replica.address)
      expect(got.size).toBe(written.size)
      for (const [k, v] of written) if (got.get(k) !== v) throw new Error(`replica has a wrong value for ${k}`)
      const st = await (await fetch(`http://${replica.address}/status`)).json()
      expect(st.sync.fullSyncs).toBeGreaterThanOrEqual(1)
    })
  }
})

async function seqOf(n: NodeProcess): Promise<number> {
  return ((await (await fetch(`http://${n.address}/status`)).json()) as { seq: number }).seq
}
