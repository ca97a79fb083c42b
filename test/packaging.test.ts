import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT } from './helpers/node-process.js'

const run = promisify(execFile)
const PACKAGES = ['protocol', 'server', 'client', 'bench']

interface Manifest {
  name: string
  version?: string
  private?: boolean
  license?: string
  files?: string[]
  types?: string
  exports?: Record<string, { types: string; default: string }>
  bin?: Record<string, string>
  engines?: { node?: string }
}

const manifest = (dir: string): Manifest => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))

/**
 * The packages can be published as they are (`pnpm publish -r` replaces
 * the workspace: versions): only the root is private, and each package's
 * tarball holds what its exports, types and bins name.
 */
describe('packages', () => {
  it('the root is private and has a LICENSE the packages name', () => {
    const root = manifest(REPO_ROOT)
    expect(root.private).toBe(true)
    expect(readFileSync(join(REPO_ROOT, 'LICENSE'), 'utf8')).toMatch(/^MIT License/)
    for (const p of PACKAGES) expect(manifest(join(REPO_ROOT, 'packages', p)).license).toBe('MIT')
  })

  it.each(PACKAGES)(
    '@tandem/%s is publishable: not private, versioned, its tarball holds its exports, types and bins',
    async (p) => {
      const dir = join(REPO_ROOT, 'packages', p)
      const m = manifest(dir)
      expect(m.private).toBeUndefined()
      expect(m.version).toMatch(/^\d+\.\d+\.\d+/)
      expect(m.engines?.node).toBe(manifest(REPO_ROOT).engines?.node)
      expect(m.files?.length).toBeGreaterThan(0)
      const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: dir })
      const packed = new Set((JSON.parse(stdout)[0].files as { path: string }[]).map((f) => f.path))
      const named = [
        m.types,
        ...Object.values(m.exports ?? {}).flatMap((e) => [e.types, e.default]),
        ...Object.values(m.bin ?? {}),
      ].filter((f): f is string => typeof f === 'string')
      expect(named.length).toBeGreaterThan(0)
      for (const f of named) {
        const path = f.replace(/^\.\//, '')
        expect(existsSync(join(dir, path)), `${f} exists after the build`).toBe(true)
        expect(packed.has(path), `${f} is in the tarball`).toBe(true)
      }
      // Nothing of the sources' tests or the bench's results ships.
      expect([...packed].filter((f) => f.startsWith('src/') || f.startsWith('results/'))).toEqual([])
    },
  )
})
