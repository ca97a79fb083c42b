import { existsSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { runNodeBin } from '../helpers/cli.js'
import { freePort } from '../helpers/fault-proxy.js'
import { SERVER_BIN, startNode } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'

/** --mode and --conflict are fixed when a data dir is created; flags that contradict each other are bad usage. */
describe('multi-master flags', () => {
  it('refuses to open a data dir with another --conflict, or as single-master, with exit 2 and a clear message', async () => {
    const dir = tempDir('tandem-mm-conf-')
    try {
      const node = await startNode(dir.path, ['--mode', 'multi', '--conflict', 'vclock'])
      await node.stop()
      const other = await runNodeBin(SERVER_BIN, [
        '--port',
        '0',
        '--data-dir',
        dir.path,
        '--mode',
        'multi',
        '--conflict',
        'lww',
      ])
      expect(other.code).toBe(2)
      expect(other.stderr).toMatch(
        /created with --mode multi --conflict vclock; it cannot be opened with --mode multi --conflict lww \(/,
      )
      const single = await runNodeBin(SERVER_BIN, ['--port', '0', '--data-dir', dir.path])
      expect(single.code).toBe(2)
      expect(single.stderr).toMatch(/--mode multi --conflict vclock/)
      // With the flags it was created with, it starts.
      const again = await startNode(dir.path, ['--mode', 'multi', '--conflict', 'vclock'])
      await again.stop()
      expect(again.exitCode).toBe(0)
    } finally {
      dir.remove()
    }
  })

  it('refuses a single-master data dir as multi-master (exit 2)', async () => {
    const dir = tempDir('tandem-mm-conf-')
    try {
      const node = await startNode(dir.path)
      const { TandemClient } = await import('@tandem/client')
      const db = await TandemClient.connect({ servers: [node.address] })
      await db.put('a', '1')
      await db.close()
      await node.stop()
      const multi = await runNodeBin(SERVER_BIN, ['--port', '0', '--data-dir', dir.path, '--mode', 'multi'])
      expect(multi.code).toBe(2)
      expect(multi.stderr).toMatch(
        /created as a single-master node; it cannot be opened with --mode multi --conflict lww \(/,
      )
    } finally {
      dir.remove()
    }
  })

  for (const [args, message] of [
    [['--peers', '127.0.0.1:1'], /--peers needs --mode multi/],
    [['--conflict', 'vclock'], /--conflict needs --mode multi/],
    [['--mode', 'single', '--conflict', 'lww'], /--conflict needs --mode multi/],
    [['--max-siblings', '3'], /--max-siblings needs --mode multi/],
    [['--replicaof', '127.0.0.1:1', '--conflict', 'vclock'], /--conflict needs --mode multi/],
    [['--mode', 'multi', '--replicaof', '127.0.0.1:1'], /cannot have --replicaof/],
    [['--mode', 'multi', '--cluster', '127.0.0.1:1'], /fail-over group/],
    [['--mode', 'multi', '--conflict', 'newest'], /--conflict/],
    [['--mode', 'multi', '--restore', 'backup.tandem'], /cannot --restore/],
  ] as const) {
    it(`exits 2 on ${args.join(' ')}`, async () => {
      const dir = tempDir('tandem-mm-conf-')
      try {
        const result = await runNodeBin(SERVER_BIN, ['--port', '0', '--data-dir', dir.path, ...args])
        expect(result.code).toBe(2)
        expect(result.stderr).toMatch(message)
      } finally {
        dir.remove()
      }
    })
  }

  /**
   * A --peers mistake names the entry itself, not its place in the list,
   * and stops the node before it touches its data dir: an entry that is
   * not HOST:PORT, one given twice, and the node's own address (as
   * --advertise, or as --host:--port), which would be a link refused as
   * `self` at every retry and a peer counted towards `w` that is not there.
   */
  it.each([
    [['--port', '0', '--peers', '127.0.0.1:7380,127.0.0.1:x'], '--peers: "127.0.0.1:x" is not HOST:PORT'],
    [['--port', '0', '--peers', '127.0.0.1:7380,127.0.0.1:99999'], '--peers: port 99999 of "127.0.0.1:99999"'],
    [['--port', '0', '--peers', 'a:1,b:2,a:1'], '--peers: "a:1" is given twice'],
    [['--port', '0', '--peers', 'a:1,b:2,A:01'], '--peers: "A:01" is "a:1" again'],
    [['--port', '0', '--peers', '[::1]:5,[0:0:0:0:0:0:0:1]:5'], '--peers: "[0:0:0:0:0:0:0:1]:5" is "[::1]:5" again'],
    [
      ['--host', '::1', '--port', '@port', '--peers', '[::1]:1,[0::1]:@port'],
      `--peers: "[0::1]:@port" is this node's own address`,
    ],
    [
      ['--port', '0', '--advertise', 'db-1.example:7379', '--peers', 'db-2.example:7379,db-1.example:7379'],
      `--peers: "db-1.example:7379" is this node's own address`,
    ],
    [
      ['--host', '127.0.0.1', '--port', '@port', '--peers', '127.0.0.1:1,127.0.0.1:@port'],
      `--peers: "127.0.0.1:@port" is this node's own address`,
    ],
  ])('exits 2 naming the --peers entry: %j', async (args, line) => {
    const dir = tempDir('tandem-mm-conf-')
    // A port of this machine's that nothing holds now (the node must refuse before it binds one).
    const port = String(await freePort())
    const withPort = (s: string) => s.replaceAll('@port', port)
    try {
      const result = await runNodeBin(SERVER_BIN, [
        '--data-dir',
        `${dir.path}/never`,
        '--mode',
        'multi',
        ...args.map(withPort),
      ])
      expect(result.code).toBe(2)
      const first = result.stderr.split('\n')[0]
      expect(first).toMatch(/^error INVALID: --peers: /)
      expect(first).toContain(withPort(line))
      expect(result.stderr).not.toMatch(/--peers: \d/)
      expect(existsSync(`${dir.path}/never`)).toBe(false)
    } finally {
      dir.remove()
    }
  })
})
