import { spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { tempDir } from '../helpers/temp-dir.js'

const script = resolve(import.meta.dirname, '../../tools/unused-exports.mjs')

describe('tools/unused-exports.mjs (part of pnpm lint)', () => {
  let dir: ReturnType<typeof tempDir>
  const write = (path: string, text: string) => {
    mkdirSync(dirname(join(dir.path, path)), { recursive: true })
    writeFileSync(join(dir.path, path), text)
  }
  const run = (...args: string[]) => {
    const r = spawnSync(process.execPath, [script, dir.path, ...args], { encoding: 'utf8' })
    return { code: r.status, out: r.stdout + r.stderr }
  }

  beforeEach(() => {
    dir = tempDir('tandem-unused-')
    write('packages/a/package.json', JSON.stringify({ name: '@x/a', exports: { '.': { default: './dist/index.js' } } }))
    write('packages/a/src/index.ts', "export { api } from './lib.js'\n")
    write(
      'packages/a/src/lib.ts',
      [
        'export const api = 1',
        'export function usedByTest() {}',
        'export type UsedInside = number',
        'export const orphan = 2',
      ].join('\n'),
    )
    write('packages/a/src/inner.ts', "import type { UsedInside } from './lib.js'\nexport const x: UsedInside = 1\n")
    write('packages/b/package.json', JSON.stringify({ name: '@x/b', exports: { '.': { default: './dist/index.js' } } }))
    write('packages/b/src/index.ts', "import { x } from '@x/a'\nexport const y = x\n")
    write('test/a.test.ts', "import { usedByTest } from '../packages/a/src/lib.js'\nusedByTest()\n")
  })
  afterEach(() => dir.remove())

  it('fails on an export nothing imports, naming file, line and export, and only that one', () => {
    const { code, out } = run()
    expect(code).toBe(1)
    expect(out).toContain('packages/a/src/lib.ts:4: orphan')
    // Public API (index re-exports), imports from test/ and type imports count as uses;
    // `x` is imported through the package name, which @x/a does not re-export.
    expect(out).not.toMatch(/: (api|usedByTest|UsedInside|y)\b/)
    expect(out).toContain('packages/a/src/inner.ts:2: x')
  })

  it('passes once the unused export is gone', () => {
    write(
      'packages/a/src/lib.ts',
      'export const api = 1\nexport function usedByTest() {}\nexport type UsedInside = number\n',
    )
    write('packages/a/src/index.ts', "export { api } from './lib.js'\nexport { x } from './inner.js'\n")
    const { code, out } = run()
    expect(out).toContain('none new')
    expect(code).toBe(0)
  })

  it('tolerates the known list, and fails when a known entry is no longer unused', () => {
    write('known.txt', '# waiting\npackages/a/src/lib.ts: orphan\npackages/a/src/inner.ts: x\n')
    expect(run('--known', join(dir.path, 'known.txt')).code).toBe(0)
    write('test/b.test.ts', "import { orphan } from '../packages/a/src/lib.js'\nvoid orphan\n")
    const { code, out } = run('--known', join(dir.path, 'known.txt'))
    expect(code).toBe(1)
    expect(out).toMatch(/no longer unused[^\n]*\n {2}packages\/a\/src\/lib\.ts: orphan/)
  })
})
