import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { configSchema, DEFAULT_TUNING, flagsMarkdown, loadConfig, tuningMarkdown, tuningSchema } from '@tandem/server'
import { describe, expect, it } from 'vitest'
import { runNodeBin } from '../helpers/cli.js'
import { REPO_ROOT, SERVER_BIN } from '../helpers/node-process.js'
import { tempDir } from '../helpers/temp-dir.js'

const runServer = (args: string[], env: Record<string, string> = {}) => runNodeBin(SERVER_BIN, args, env, 20_000)

describe('tandem-server --help', () => {
  it('lists every flag with its description, value and default from the schema', async () => {
    const { code, stdout } = await runServer(['--help'])
    expect(code).toBe(0)
    expect(stdout).toMatch(/--repl-timeout DURATION {2}\(default 10s\)\n\s+A downstream that sends nothing/)
    expect(stdout).toMatch(/--sync always\|periodic\|none {2}\(default always\)\n\s+always: fsync every group commit/)
    expect(stdout).toMatch(/--node-id ID {2}\(default generated once, kept in the data dir\)/)
    for (const name of Object.keys(configSchema.shape)) {
      const flag = `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`
      expect(new RegExp(`^  ${flag}[ \n]`, 'm').test(stdout), flag).toBe(true)
    }
    // Multi-master flags are checked against each other: --peers without --mode multi is exit 2.
    const peers = await runServer(['--peers', '127.0.0.1:1'])
    expect(peers.code).toBe(2)
    expect(peers.stderr).toMatch(/--peers needs --mode multi/)
  })

  it('prints the version with --version', async () => {
    const { code, stdout } = await runServer(['--version'])
    expect(code).toBe(0)
    const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'packages/server/package.json'), 'utf8'))
    expect(stdout).toBe(`tandem-server ${version}\n`)
  })

  it("README's flag table is the one the schema generates (npx -y pnpm@12.4.2 run readme:flags)", () => {
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8')
    const block = /<!-- flags:begin[^\n]*-->\n([\s\S]*?)\n<!-- flags:end -->/.exec(readme)
    expect(block?.[1]).toBe(flagsMarkdown())
    const tuning = /<!-- tuning:begin[^\n]*-->\n([\s\S]*?)\n<!-- tuning:end -->/.exec(readme)
    expect(tuning?.[1]).toBe(tuningMarkdown())
    for (const name of Object.keys(tuningSchema.shape)) expect(tuning?.[1], name).toContain(`| \`${name}\` |`)
  })
})

describe('--tune', () => {
  it('sets tunables by name from flags (once or more), TANDEM_TUNE and a config file; the rest keep their defaults', () => {
    expect(loadConfig([], {}).tune).toEqual(DEFAULT_TUNING)
    expect(DEFAULT_TUNING.periodicSyncMs).toBe(1000)
    const tune = loadConfig(['--tune', 'periodicSyncMs=200,replBatchEntries=500', '--tune', 'expiryTickMs=50'], {}).tune
    expect(tune).toEqual({ ...DEFAULT_TUNING, periodicSyncMs: 200, replBatchEntries: 500, expiryTickMs: 50 })
    // One by one: a flag wins over the environment, which wins over the file.
    const dir = tempDir('tandem-tune-')
    try {
      const file = join(dir.path, 'config.json')
      writeFileSync(file, JSON.stringify({ tune: { periodicSyncMs: 300, drainTimeoutMs: 700, mgetSliceKeys: 10 } }))
      const merged = loadConfig(['--config', file, '--tune', 'periodicSyncMs=100'], {
        TANDEM_TUNE: 'periodicSyncMs=150,drainTimeoutMs=800',
      }).tune
      expect(merged).toEqual({ ...DEFAULT_TUNING, periodicSyncMs: 100, drainTimeoutMs: 800, mgetSliceKeys: 10 })
    } finally {
      dir.remove()
    }
  })

  it('refuses an unknown name, a value that is not a positive whole number, and what is not NAME=VALUE, with exit 2', async () => {
    expect(() => loadConfig(['--tune', 'noSuchTunable=1'], {})).toThrow(/^--tune: .*noSuchTunable/)
    expect(() => loadConfig(['--tune', 'periodicSyncMs=0'], {})).toThrow(/^--tune: periodicSyncMs: /)
    expect(() => loadConfig(['--tune', 'replBatchBytes=1.5'], {})).toThrow(/^--tune: replBatchBytes: /)
    expect(loadConfig(['--tune', 'blockCacheBytes=67108864'], {}).tune.blockCacheBytes).toBe(67108864)
    expect(() => loadConfig(['--tune', 'blockCacheBytes=4294967296'], {})).toThrow(/^--tune: blockCacheBytes: /)
    expect(loadConfig(['--tune', 'writeBufferBytes=1048576'], {}).tune.writeBufferBytes).toBe(1048576)
    expect(() => loadConfig(['--tune', 'writeBufferBytes=1024'], {})).toThrow(/^--tune: writeBufferBytes: /)
    expect(() => loadConfig(['--tune', 'periodicSyncMs'], {})).toThrow(/^--tune: expected NAME=VALUE/)
    const { code, stderr } = await runServer(['--tune', 'periodicSyncMs=soon'])
    expect(code).toBe(2)
    expect(stderr).toMatch(/^error INVALID: --tune: periodicSyncMs: /)
  })

  it('--help lists every tunable with its default and unit', async () => {
    const { code, stdout } = await runServer(['--help'])
    expect(code).toBe(0)
    for (const name of Object.keys(tuningSchema.shape)) {
      expect(
        new RegExp(`^  ${name} {2}\\(default ${DEFAULT_TUNING[name as keyof typeof DEFAULT_TUNING]} `, 'm').test(
          stdout,
        ),
        name,
      ).toBe(true)
    }
  })
})

describe('durations', () => {
  it('take a unit (ms, s, m, h, fractions) or a plain number of ms, from flags, the environment and a file', () => {
    expect(loadConfig(['--repl-timeout', '60s'], {}).replTimeout).toBe(60_000)
    expect(loadConfig(['--repl-timeout', '250ms'], {}).replTimeout).toBe(250)
    expect(loadConfig(['--failover-timeout', '1.5s'], {}).failoverTimeout).toBe(1500)
    expect(loadConfig(['--log-trim-interval', '2m'], {}).logTrimInterval).toBe(120_000)
    expect(loadConfig(['--max-lag', '1h'], {}).maxLag).toBe(3_600_000)
    // A plain number keeps meaning milliseconds, as before units.
    expect(loadConfig(['--repl-timeout', '60'], {}).replTimeout).toBe(60)
    expect(loadConfig([], { TANDEM_HEARTBEAT_INTERVAL: '200ms' }).heartbeatInterval).toBe(200)
    expect(loadConfig([], {}).replTimeout).toBe(10_000)
  })

  it('refuse what is not a duration with exit 2 and a message that shows the form', async () => {
    for (const bad of ['5x', '10 sec', '-1s', '0', '0.5ms', '']) {
      expect(() => loadConfig(['--repl-timeout', bad], {}), bad).toThrow(/repl-timeout/)
    }
    const { code, stderr } = await runServer(['--repl-timeout', '60sec'])
    expect(code).toBe(2)
    expect(stderr).toMatch(/^error INVALID: --repl-timeout: expected a duration such as 250ms, 60s/)
  })
})

describe('--cluster', () => {
  it('refuses a member given twice, however it is spelled, with exit 2 naming the entry', async () => {
    expect(() => loadConfig(['--cluster', 'a:1,b:2,a:1'], {})).toThrow('--cluster: "a:1" is given twice')
    expect(() => loadConfig(['--cluster', 'a:1,b:2,A:01'], {})).toThrow('--cluster: "A:01" is "a:1" again')
    expect(() => loadConfig(['--cluster', '[::1]:5,b:2,[0:0:0:0:0:0:0:1]:5'], {})).toThrow(
      '--cluster: "[0:0:0:0:0:0:0:1]:5" is "[::1]:5" again',
    )
    // Three distinct members load as given.
    expect(loadConfig(['--cluster', 'a:1,b:2,c:3'], {}).cluster).toEqual(['a:1', 'b:2', 'c:3'])
    const { code, stderr } = await runServer(['--cluster', '127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7002'])
    expect(code).toBe(2)
    expect(stderr).toMatch(/^error INVALID: --cluster: "127.0.0.1:7002" is given twice/)
  })
})
