import { describe, expect, it } from 'vitest'
import { runNodeBin } from '../helpers/cli.js'
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
})
